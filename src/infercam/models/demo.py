"""``demo``: the compact classifier trained on the embedded synthetic data set, weights bundled.

It is :class:`~infercam.models.small.SmallResNet` under another name whose default weights ship in the
package (``infercam/weights/demo_cls.pt``); docs/demo_model.md gives the command that trained them.
"""
from __future__ import annotations

from .registry import BUNDLED_WEIGHTS, register
from .small import small_resnet

DEMO_WEIGHTS = BUNDLED_WEIGHTS / "demo_cls.pt"

register("demo", default_weights=lambda: str(DEMO_WEIGHTS))(small_resnet)
