"""torchvision's ``VisionTransformer`` at any input size, and the token layout Grad-CAM needs to map its tokens.

torchvision's ViT refuses every input size but its training size (``image_size``): InferCam feeds each scale of
each patch. :class:`AnySizeVit` (mixed into the network, its modules and state_dict untouched) cuts the input into
``patch_size`` patches (a partial patch at the right or bottom edge is dropped, as the strided patch convolution
does) and interpolates the position embeddings of the patch tokens to that token grid, bicubic with corners
aligned, as torchvision's own ``interpolate_embeddings`` does for checkpoints; the class token's embedding is kept.
The class token makes the head read one token, so the CAM of a ViT is Grad-CAM (or Grad-CAM++) over a token layer:
by default the input of the last block's attention (its first LayerNorm), the layer the class token reads the patch
tokens through. At the last block's *output* the gradient of the logits reaches the class token only, and the patch
tokens' maps would be zero.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ImageError


def interpolate_positions(pos: torch.Tensor, prefix: int, grid: tuple[int, int]) -> torch.Tensor:
    """Position embeddings (1, prefix + S*S, D) of a square S x S training grid resized to ``grid`` (h, w):
    bicubic, corners aligned; the ``prefix`` (class) tokens' embeddings unchanged."""
    head, patches = pos[:, :prefix], pos[:, prefix:]
    side = int(round(patches.shape[1] ** 0.5))
    if (side, side) == tuple(grid):
        return pos
    square = patches.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(square, size=grid, mode="bicubic", align_corners=True)
    return torch.cat([head, resized.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)], dim=1)


class AnySizeVit:
    """Mixin for torchvision's ``VisionTransformer``: ``forward`` at any input of at least one patch a side."""

    cam_target_layer: str

    def token_layout(self, size: tuple[int, int]) -> tuple[int, int, int]:
        """(prefix tokens, token rows, token columns) of an input of ``size`` (h, w)."""
        h, w = size
        if h < self.patch_size or w < self.patch_size:
            raise ImageError(f"an input of {h}x{w} px is smaller than one {self.patch_size} px patch of the vision "
                             "transformer: use larger images or patches, or drop the smallest scales")
        return 1, h // self.patch_size, w // self.patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, C) from the class token, at the input's own token grid."""
        prefix, gh, gw = self.token_layout(tuple(x.shape[-2:]))
        tokens = self.conv_proj(x).flatten(2).transpose(1, 2)  # (N, gh * gw, D)
        tokens = torch.cat([self.class_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        encoder = self.encoder
        tokens = tokens + interpolate_positions(encoder.pos_embedding, prefix, (gh, gw))
        tokens = encoder.ln(encoder.layers(encoder.dropout(tokens)))
        return self.heads(tokens[:, 0])
