"""AffinityNet (psa, CVPR 2018): stride-8 features whose L1 distances give pixel-pair affinities.

``resnet38-aff`` is psa's ``network/resnet38_aff.py``, with the same state_dict keys and shapes: the
ResNet-38 backbone (no ``fc8``) and 1x1 convolutions ``f8_3`` (conv4, 512 -> 64), ``f8_4`` (conv5,
1024 -> 128), ``f8_5`` (conv6, 4096 -> 256) and ``f9`` (448 -> 448), ELU after each. As in psa,
``conv1a``, ``b2``, ``b2_1``, ``b2_2`` and every BatchNorm are frozen. ``demo-aff`` puts a head of the
same form on the compact CPU backbone. Both give pair affinities (``forward``) for training and
features (``forward_features``) for the random walk.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InferCamError
from .compact import CHANNELS, CompactBackbone
from .pixel_pairs import pair_affinity
from .registry import BUNDLED_WEIGHTS, register
from .resnet38 import ResNet38

PSA_RADIUS = 5  # psa resnet38_aff.py / train_aff.py: pairs within radius 5 on the stride-8 grid


class AffinityMixin:
    """Pair affinities from ``forward_features`` and psa's four parameter groups; needs ``radius``,
    ``forward_features`` and ``scratch_layers``."""

    radius: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Affinities (N, D, F) of the pairs within ``radius`` (see :mod:`infercam.models.pixel_pairs`)."""
        return pair_affinity(self.forward_features(x), self.radius)

    def parameter_groups(self) -> tuple[list[nn.Parameter], ...]:
        """Trainable (pretrained weights, pretrained biases, new weights, new biases), psa's lr x1, x2, x10, x20."""
        scratch = {id(p) for layer in self.scratch_layers() for p in layer.parameters()}
        groups: tuple[list[nn.Parameter], ...] = ([], [], [], [])
        for name, p in self.named_parameters():
            if p.requires_grad:
                groups[2 * (id(p) in scratch) + name.endswith("bias")].append(p)
        return groups


# Short names where an AffinityNet is expected (``pseudo --aff-network``, ``train-aff --network``).
AFFINITY_ALIASES = {"demo": "demo-aff", "resnet38": "resnet38-aff"}


def affinity_network_name(name: str) -> str:
    """The registry name of an AffinityNet given by its short name (``demo``, ``resnet38``) or in full."""
    return AFFINITY_ALIASES.get(name, name)


def check_affinity_net(model: nn.Module, name: str) -> None:
    """Refuse, with a clear error, a network that lacks what AffinityNet training and the walk use."""
    missing = [a for a in ("radius", "forward_features", "parameter_groups") if not hasattr(model, a)]
    if missing:
        raise InferCamError(f"network {name!r} is not an AffinityNet (it has no {', '.join(missing)}); "
                            "use resnet38-aff, demo-aff or a plug-in with those attributes")


def _init_head(convs: tuple[nn.Conv2d, ...], last: nn.Conv2d) -> None:
    """psa's initialisation: Kaiming normal for the projections, Xavier uniform (gain 4) for f9."""
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight)
    nn.init.xavier_uniform_(last.weight, gain=4)


class ResNet38Affinity(AffinityMixin, ResNet38):
    """psa's ResNet-38 AffinityNet (checkpoint-compatible with psa's ``resnet38_aff`` weights)."""

    def __init__(self, radius: int = PSA_RADIUS) -> None:
        super().__init__()
        self.radius = radius
        self.f8_3 = nn.Conv2d(512, 64, 1, bias=False)
        self.f8_4 = nn.Conv2d(1024, 128, 1, bias=False)
        self.f8_5 = nn.Conv2d(4096, 256, 1, bias=False)
        self.f9 = nn.Conv2d(448, 448, 1, bias=False)
        _init_head((self.f8_3, self.f8_4, self.f8_5), self.f9)
        for layer in (self.conv1a, self.b2, self.b2_1, self.b2_2):
            layer.requires_grad_(False)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.requires_grad_(False)

    def scratch_layers(self) -> tuple[nn.Module, ...]:
        return self.f8_3, self.f8_4, self.f8_5, self.f9

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 448, ceil(H/8), ceil(W/8)) affinity features."""
        d = self.features(x)
        heads = [F.elu(self.f8_3(d["conv4"])), F.elu(self.f8_4(d["conv5"])), F.elu(self.f8_5(d["conv6"]))]
        return F.elu(self.f9(torch.cat(heads, 1)))


class DemoAffinity(AffinityMixin, nn.Module):
    """A compact AffinityNet for CPU: the compact backbone's three stride-8 stages, projected to
    32 + 32 + 64 channels and mixed by a 1x1 ``f9`` (128 features)."""

    def __init__(self, radius: int = PSA_RADIUS) -> None:
        super().__init__()
        self.radius = radius
        self.backbone = CompactBackbone()
        self.f8_3 = nn.Conv2d(CHANNELS["stage3"], 32, 1, bias=False)
        self.f8_4 = nn.Conv2d(CHANNELS["stage4"], 32, 1, bias=False)
        self.f8_5 = nn.Conv2d(CHANNELS["stage5"], 64, 1, bias=False)
        self.f9 = nn.Conv2d(128, 128, 1, bias=False)
        _init_head((self.f8_3, self.f8_4, self.f8_5), self.f9)

    def scratch_layers(self) -> tuple[nn.Module, ...]:
        return self.f8_3, self.f8_4, self.f8_5, self.f9

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 128, ceil(H/8), ceil(W/8)) affinity features."""
        d = self.backbone(x)
        heads = [F.elu(self.f8_3(d["stage3"])), F.elu(self.f8_4(d["stage4"])), F.elu(self.f8_5(d["stage5"]))]
        return F.elu(self.f9(torch.cat(heads, 1)))


@register("resnet38-aff")
def resnet38_aff(num_classes: int = 0, radius: int = PSA_RADIUS) -> ResNet38Affinity:
    """psa's ResNet-38 AffinityNet; ``num_classes`` is accepted for the registry and unused (no classifier)."""
    return ResNet38Affinity(radius)


DEMO_AFF_WEIGHTS = BUNDLED_WEIGHTS / "demo_aff.pt"


@register("demo-aff", default_weights=lambda: str(DEMO_AFF_WEIGHTS))
def demo_aff(num_classes: int = 0, radius: int = PSA_RADIUS) -> DemoAffinity:
    """The compact CPU AffinityNet, with bundled weights trained on the synthetic data (docs/demo_model.md);
    ``num_classes`` is accepted for the registry and unused."""
    return DemoAffinity(radius)
