"""infercam: class-conditional CAM inference for weakly supervised semantic segmentation.

    from infercam import InferCam
    engine = InferCam(model, mode="default")
    result = engine(image, labels)
"""
__version__ = "0.1.0"
__all__ = ["InferCam", "InferCamResult", "Prepared", "__version__"]


def __getattr__(name: str):
    """Import the engine (and torch) only when it is used, so light modules stay quick to import."""
    if name in ("InferCam", "InferCamResult", "Prepared"):
        from .method import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'infercam' has no attribute {name!r}")
