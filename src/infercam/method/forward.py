"""The network's ``forward_cam`` as the engine runs it: optional autocast, channels_last and torch.compile.

The defaults (fp32, eager, contiguous) call ``model.forward_cam`` unchanged, so the maps are exact. A model
converted to another float type (``model.half()``) gets its inputs cast to that type, its maps cast back.
``bf16``/``fp16`` run the forward only under ``torch.autocast``; the engine casts the maps back to float32
before upsampling and normalising them. ``compile`` compiles ``forward_cam`` with dynamic shapes (the engine
feeds many input sizes) and compiles it at once, on a small dummy batch, so a platform where torch.compile
does not work fails at construction with a clear error.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Sequence

import torch
from torch import nn

from ..errors import InferCamError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Batch 2: the engine batches a pass with its flip. Sizes all different (dynamo gives equal sizes one symbol, so a
# square dummy would recompile for every non-square input) and, like most images, not multiples of the stride.
WARMUP_SHAPE = (2, 3, 75, 61)


def _autocasts(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether torch.autocast on this device type runs with ``dtype`` (rather than refusing or disabling itself)."""
    if not torch.amp.is_autocast_available(device.type):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unsupported dtype warns and disables autocast
        try:
            with torch.autocast(device.type, dtype=dtype):
                return torch.is_autocast_enabled(device.type)
        except RuntimeError:  # e.g. bf16 on a CUDA device without it
            return False


def supported_precisions(device: torch.device) -> tuple[str, ...]:
    """The precisions usable on ``device``: fp32 always, bf16/fp16 where autocast supports them."""
    return ("fp32",) + tuple(name for name, dtype in _DTYPES.items() if _autocasts(device, dtype))


def check_precision(precision: str, device: torch.device) -> None:
    """A known precision that autocast supports on ``device``, or a clear error naming what is supported."""
    if precision not in PRECISIONS:
        raise InferCamError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    supported = supported_precisions(device)
    if precision not in supported:
        raise InferCamError(f"precision {precision} is not supported on {device} by torch {torch.__version__}: "
                            f"use {' or '.join(supported)}")


class CamForward:
    """``model.forward_cam`` with the engine's speed options; called on (N, 3, h, w) float32 batches (cast to the
    model's own float type where it was converted, e.g. by ``model.half()``). A model whose
    ``cam_takes_classes`` is true (Grad-CAM) is asked for the labelled ``classes`` only (``takes_classes``)."""

    def __init__(self, model: nn.Module, device: torch.device, precision: str = "fp32", compile: bool = False,
                 channels_last: bool = False) -> None:
        check_precision(precision, device)
        self.device = device
        self.dtype = _DTYPES.get(precision)
        self.channels_last = channels_last
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self.fn = model.forward_cam
        self.takes_classes = bool(getattr(model, "cam_takes_classes", False))
        # a model converted to another float type (model.half(), .bfloat16(), .double()) gets its inputs in it
        weights = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        self.input_dtype = None if weights == torch.float32 else weights
        if compile:
            self._compile(model)

    def __call__(self, x: torch.Tensor, classes: Sequence[int] | None = None) -> torch.Tensor:
        """Maps (N, C, h, w); (N, L, h, w) of ``classes`` where the model ``takes_classes`` and they are given."""
        if self.input_dtype is not None:
            x = x.to(self.input_dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        cast = contextlib.nullcontext() if self.dtype is None else torch.autocast(self.device.type, dtype=self.dtype)
        with cast:
            return self.fn(x, classes) if classes is not None and self.takes_classes else self.fn(x)

    def _compile(self, model: nn.Module) -> None:
        """torch.compile ``forward_cam`` (dynamic shapes) and compile it now, on a dummy batch."""
        try:
            self.fn = torch.compile(model.forward_cam, dynamic=True)
            with torch.inference_mode():  # the engine's grad mode, so the graph compiled here is the one reused
                self(torch.zeros(WARMUP_SHAPE, device=self.device))
        except Exception as exc:  # any failure of the compile stack (no C++ compiler, no triton, unsupported Python)
            lines = str(exc).strip().splitlines()
            raise InferCamError(f"torch.compile of {type(model).__name__}.forward_cam failed on this platform "
                                f"({type(exc).__name__}: {lines[0] if lines else 'no message'}); "
                                "run without `compile`") from None
