"""infercam: class-conditional CAM inference for weakly supervised semantic segmentation."""
__version__ = "0.1.0"
