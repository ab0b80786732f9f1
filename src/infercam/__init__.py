"""infercam: class-conditional CAM inference for weakly supervised semantic segmentation.

    from infercam import InferCam, models
    model, _ = models.build_network("demo")    # or any nn.Module with forward_cam(x) -> (N, C, h, w)
    engine = InferCam(model, mode="default")
    result = engine(image, labels)             # image: H x W x 3 uint8 RGB (or a PIL Image); labels: class indices
    result.cams[c], result.baseline[c]         # refined and baseline H x W float32 maps of class c

help(infercam.InferCam) lists the inputs and options; README "Python API" the rest. Errors of input that can be
fixed are infercam.errors.InferCamError, with a one-line message.
"""
__version__ = "0.1.0"
__all__ = ["InferCam", "InferCamResult", "Prepared", "__version__"]


def __getattr__(name: str):
    """Import the engine (and torch) only when it is used, so light modules stay quick to import."""
    if name in ("InferCam", "InferCamResult", "Prepared"):
        from .method import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'infercam' has no attribute {name!r}")
