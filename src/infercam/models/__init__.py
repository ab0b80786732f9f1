"""Networks by name (timm-style registry) and checkpoint loading.

    from infercam import models
    net = models.create("resnet38", num_classes=20)
    report = models.load_checkpoint(net, "res38_cls.pth")
"""
from .registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LoadReport,
    build_network,
    cam_classes,
    create,
    has_bundled_weights,
    list_models,
    load_checkpoint,
    load_state_dict,
    match_state_dict,
    normalization,
    read_checkpoint,
    read_state_dict,
    register,
    register_prefix,
)
from ..errors import CheckpointError

# Importing a definition module registers its networks (timm_cam, torchvision_cam: their prefixes).
from . import affinity, demo, efficientnet_lite, resnet38, resnet38_variants, resnet50_irn, segnets, small  # noqa: F401,E402
from . import timm_cam, torchvision_cam  # noqa: F401,E402

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "CheckpointError", "LoadReport", "build_network", "cam_classes", "create",
    "list_models", "load_checkpoint", "load_state_dict", "match_state_dict", "normalization", "read_checkpoint",
    "read_state_dict", "register", "register_prefix",
]
