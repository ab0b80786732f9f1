"""Model registry (create networks by name or ``prefix:<name>``) and checkpoint loading with a clear key report.

Every registered network follows the CAM protocol the algorithm needs:
an ``nn.Module`` with ``forward_cam(x) -> (N, C, h, w)`` non-negative class maps, where ``x`` is a
normalised RGB batch. A network may carry ``mean`` and ``std`` attributes (per-channel, applied to
pixel/255); otherwise ImageNet statistics are used.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import os
import pickle
from pathlib import Path
from typing import Any, Callable, get_type_hints

import torch
from torch import nn

from ..errors import CheckpointError, InferCamError
from ..text import counted

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_DEFAULT_WEIGHTS: dict[str, Callable[[], str]] = {}
_CLASSES_IN: dict[str, Callable[[dict[str, torch.Tensor]], int | None]] = {}
BUNDLED_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"  # weights shipped in the package
_PREFIXES: dict[str, _Family] = {}

ClassCount = Callable[[str, dict[str, torch.Tensor]], int | None]


@dataclasses.dataclass(frozen=True)
class _Family:
    """A factory and its optional class-count hook: for a prefix ``factory(rest, num_classes=..., **kw)`` and
    ``classes_in(rest, state)``; for a resolved name the same with ``rest`` bound."""

    factory: Callable[..., nn.Module]
    classes_in: ClassCount | None


def head_rows(key: str, extra: int = 0) -> Callable[[dict[str, torch.Tensor]], int | None]:
    """A ``classes_in`` hook: the class count is the rows of the checkpoint's ``key`` (less ``extra`` rows that
    are not classes, e.g. a background channel); None where the checkpoint has no such tensor."""

    def classes_in(state: dict[str, torch.Tensor]) -> int | None:
        weight = state.get(key)
        return None if weight is None or weight.dim() == 0 else int(weight.shape[0]) - extra

    return classes_in


def register(name: str, default_weights: Callable[[], str] | None = None,
             classes_in: Callable[[dict[str, torch.Tensor]], int | None] | None = None
             ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a factory ``f(num_classes=..., **kw) -> nn.Module`` under ``name``.

    ``default_weights`` returns the path of bundled weights loaded when no checkpoint is given;
    ``classes_in(state_dict)`` reads the class count from a checkpoint that does not record it.
    """

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = factory
        if default_weights is not None:
            _DEFAULT_WEIGHTS[name] = default_weights
        if classes_in is not None:
            _CLASSES_IN[name] = classes_in
        return factory

    return wrap


def register_prefix(prefix: str, factory: Callable[..., nn.Module], classes_in: ClassCount | None = None) -> None:
    """Route every name ``prefix:<rest>`` to ``factory(rest, num_classes=..., **kw)`` (e.g. ``torchvision:resnet50``).

    ``classes_in(rest, state_dict)`` reads the class count from a checkpoint when nothing else gives it.
    """
    if prefix in _PREFIXES or not prefix.isidentifier():
        raise ValueError(f"prefix {prefix!r} is registered twice or is not an identifier")
    _PREFIXES[prefix] = _Family(factory, classes_in)


def list_models() -> list[str]:
    """Registered names, sorted, then each prefixed family as ``prefix:<name>``."""
    return sorted(_REGISTRY) + [f"{prefix}:<name>" for prefix in sorted(_PREFIXES)]


def _returned_class(factory: Callable[..., Any]) -> type | None:
    """The network class a factory is annotated to return, or None."""
    try:
        cls = get_type_hints(factory).get("return")
    except (NameError, TypeError):  # an annotation that does not resolve, or a partial (a prefixed family)
        return None
    return cls if isinstance(cls, type) else None


def cam_networks() -> list[str]:
    """The registered CAM classifiers (networks with ``forward_cam``, not segmentation or affinity networks), as
    their factories' annotations say, then the prefixed families (classifiers too)."""
    return [name for name in sorted(_REGISTRY) if hasattr(_returned_class(_REGISTRY[name]), "forward_cam")] + \
        [f"{prefix}:<name>" for prefix in sorted(_PREFIXES)]


def _kind_of(cls: type | None) -> str | None:
    """'classifier' (``forward_cam``), 'affinity' (``forward_features`` and ``parameter_groups``, psa's
    AffinityNet) or 'segmentation' (neither) for a registered network class; None where it is not known."""
    if cls is None:
        return None
    if hasattr(cls, "forward_cam"):
        return "classifier"
    if hasattr(cls, "forward_features") and hasattr(cls, "parameter_groups"):
        return "affinity"
    return "segmentation"


def network_kind(name: str) -> str | None:
    """What a network name builds, as its factory's annotation says: 'classifier', 'affinity' or 'segmentation';
    the prefixed families (``timm:``, ``torchvision:``) are classifiers; None for a plug-in or an unknown name."""
    if name in _REGISTRY:
        return _kind_of(_returned_class(_REGISTRY[name]))
    prefix, colon, _ = name.partition(":")
    return "classifier" if colon and prefix in _PREFIXES else None


def networks_of_kind(kind: str) -> list[str]:
    """The registered names of one :func:`network_kind`, sorted (for a command's help and its refusals)."""
    return [name for name in sorted(_REGISTRY) if network_kind(name) == kind]


def network_options(name: str) -> list[str] | None:
    """The keyword options network ``name`` takes besides ``num_classes``: its factory's, and where the factory
    passes ``**kwargs`` on, those of the network class it is annotated to return; None where that cannot be told
    (e.g. torchvision's and timm's families, which take their libraries' options)."""
    options: list[str] = []
    target: Callable[..., Any] | None = inspect.unwrap(_resolve(name).factory)
    while target is not None:
        try:
            params = inspect.signature(target).parameters.values()
        except (TypeError, ValueError):  # no signature (a builtin)
            return None
        options += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return sorted(set(options) - {"num_classes"})
        target = _returned_class(target) if not isinstance(target, type) else None
    return None


def create(name: str, num_classes: int = 20, **kwargs: Any) -> nn.Module:
    """Build a network by registered name, ``prefix:<name>``, or a user's ``package.module:Factory`` (plug-in).

    Weights are not loaded: see :func:`load_checkpoint` and :func:`build_network`.
    """
    return _resolve(name).factory(num_classes=num_classes, **kwargs)


def check_name(name: str) -> None:
    """Raise a clear error listing the known networks if ``name`` is neither registered nor a plug-in."""
    if name not in _REGISTRY and ":" not in name:
        known = ", ".join(list_models())
        raise InferCamError(f"unknown network {name!r}; known networks: {known} (or a plug-in 'package.module:Factory')")


def _resolve(name: str) -> _Family:
    """The factory of a name (bound to its ``<rest>`` for a prefixed family), and its class-count hook."""
    check_name(name)
    if name in _REGISTRY:
        return _Family(_REGISTRY[name], _CLASSES_IN.get(name))
    prefix, _, rest = name.partition(":")
    if prefix in _PREFIXES:
        family = _PREFIXES[prefix]
        hook = family.classes_in
        return _Family(functools.partial(family.factory, rest),
                       None if hook is None else functools.partial(hook, rest))
    return _Family(_plugin(name), None)


def _plugin(spec: str) -> Callable[..., nn.Module]:
    """Import ``package.module:Factory``; the factory must accept ``num_classes``."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, ValueError, TypeError) as exc:  # ValueError, TypeError: an empty or relative name
        raise InferCamError(f"cannot import plug-in network module {module_name!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise InferCamError(f"plug-in network {spec!r}: module {module_name!r} has no callable {attr!r}")

    @functools.wraps(factory)  # inspect.unwrap gives the factory back: a checkpoint of its registered name fits
    def build(**kwargs: Any) -> nn.Module:
        """The factory's network, or a clear error where its signature or result does not fit."""
        try:
            inspect.signature(factory).bind(**kwargs)
        except TypeError as exc:
            raise InferCamError(f"plug-in network {spec!r} must accept {', '.join(f'{k}=' for k in kwargs)} "
                                f"({exc})") from None
        except ValueError:  # a builtin without a signature: let the call say
            pass
        model = factory(**kwargs)
        if not isinstance(model, nn.Module):
            raise InferCamError(f"plug-in network {spec!r} returned a {type(model).__name__}, not a torch nn.Module")
        return model

    return build


def normalization(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) a network expects on pixel/255; ImageNet's unless the model says otherwise."""
    return tuple(getattr(model, "mean", IMAGENET_MEAN)), tuple(getattr(model, "std", IMAGENET_STD))


PROBE_SIDE = 64  # the blank input that tells a network's class count (any network here takes it; 8 px is the least)


def probe_shape(model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor],
                side: int = PROBE_SIDE) -> tuple[int, ...] | None:
    """The output shape of ``forward`` on a blank ``side`` x ``side`` image on ``model``'s device (eval mode, no
    grad; the mode is put back); None where the network cannot take it."""
    param = next(model.parameters(), None)
    blank = torch.zeros(1, 3, side, side, device=param.device if param is not None else "cpu")
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            return tuple(forward(blank).shape)
    except Exception:  # left to the per-image check
        return None
    finally:
        model.train(was_training)


def probe_channels(model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor]) -> int | None:
    """Dim 1 of ``forward`` on a small blank input (see :func:`probe_shape`); None where there is none."""
    shape = probe_shape(model, forward)
    return shape[1] if shape is not None and len(shape) > 1 else None


def cam_classes(model: nn.Module) -> int | None:
    """How many classes the model's CAMs have: its ``cam_classes`` where it says (a class map, Grad-CAM), else the
    channels of one ``forward_cam`` of a small blank input; None where that fails (each image is checked anyway)."""
    known = getattr(model, "cam_classes", None)
    if known is not None:
        return int(known)
    return probe_channels(model, model.forward_cam) if hasattr(model, "forward_cam") else None


@dataclasses.dataclass
class LoadReport:
    """What :func:`load_checkpoint` found when matching a checkpoint to a network."""

    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # key, checkpoint shape, model shape
    source: str = ""  # the checkpoint file (build_network: the bundled one when none was given)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def head_classes(self, classes: int) -> tuple[str, int] | None:
        """(key, checkpoint's class count) when a tensor differs from the network's only in its first
        dimension, which is ``classes`` in the network: a classifier head for another number of classes."""
        for key, theirs, ours in self.mismatched:
            if ours[:1] == (classes,) and theirs[1:] == ours[1:] and theirs[:1] != ours[:1]:
                return key, theirs[0]
        return None

    def describe(self, limit: int = 20) -> str:
        """A readable multi-line listing of every problem (at most ``limit`` lines per kind)."""
        lines: list[str] = []

        def section(title: str, items: list[str]) -> None:
            if not items:
                return
            lines.append(f"{title} ({len(items)}):")
            lines.extend(f"  {item}" for item in items[:limit])
            if len(items) > limit:
                lines.append(f"  ... and {len(items) - limit} more")

        section("missing keys (in the network, not in the checkpoint)", self.missing)
        section("unexpected keys (in the checkpoint, not in the network)", self.unexpected)
        section(
            "shape mismatches (checkpoint vs network)",
            [f"{k}: {list(a)} vs {list(b)}" for k, a, b in self.mismatched],
        )
        return "\n".join(lines)


# Keys a network may lack in a checkpoint without harm: psa's PyTorch 0.4 files predate them.
_OPTIONAL_SUFFIXES = ("num_batches_tracked",)


STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")  # where checkpoints keep their weights


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, config) of a checkpoint file: a plain state_dict, or one under ``state_dict`` /
    ``model_state_dict`` (PyTorch's tutorials) / ``model`` / ``net`` (infercam's own files also carry ``config``:
    arch, num_classes, ...). Only tensors are unpickled (``weights_only``), for safety.

    A ``module.`` prefix (DataParallel / DistributedDataParallel) is stripped.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint path is a folder, not a file: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's text for it suggests weights_only=False: no advice for a user
        raise CheckpointError(
            f"not a PyTorch checkpoint, or one that holds Python objects besides tensors (e.g. the argparse Namespace "
            f"of timm's training checkpoints, or a whole pickled model): {path}. infercam unpickles tensors only; "
            f"from a file you trust, save the weights alone: obj = torch.load(FILE, weights_only=False), then "
            f"torch.save(obj['state_dict'], 'weights.pth') (a whole model: obj.state_dict())") from None
    except RuntimeError as exc:  # torch's archive reader: a damaged (e.g. truncated) checkpoint
        raise CheckpointError(f"damaged PyTorch checkpoint: {path} ({str(exc).split('. ')[0]})") from None
    except Exception:  # a file of another kind makes the unpickler fail in many ways
        raise CheckpointError(f"not a PyTorch checkpoint: {path}") from None
    config: dict[str, Any] = {}
    top = obj
    if isinstance(obj, dict):
        if isinstance(obj.get("config"), dict):
            config = obj["config"]
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict) and obj[key]:
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        found = f"its top-level keys: {', '.join(map(str, list(top)[:10]))}" if isinstance(top, dict) and top \
            else f"it holds {'an empty dict' if isinstance(top, dict) else 'a ' + type(top).__name__}"
        raise CheckpointError(f"no state_dict of tensors found in checkpoint: {path} ({found}; infercam reads a "
                              f"dict of tensors, or one under {' / '.join(map(repr, STATE_DICT_KEYS))})")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj, config


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state_dict of a checkpoint file (see :func:`read_checkpoint`)."""
    return read_checkpoint(path)[0]


def match_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> LoadReport:
    """Compare a state_dict with a network's own: missing, unexpected and shape-mismatched keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(_OPTIONAL_SUFFIXES)]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        (k, tuple(state[k].shape), tuple(own[k].shape))
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    return LoadReport(missing, unexpected, mismatched)


def load_state_dict(model: nn.Module, state: dict[str, torch.Tensor], strict: bool = True,
                    source: str = "state_dict", classes: int | None = None) -> LoadReport:
    """Load ``state`` into ``model``; with ``strict`` any key problem raises :class:`CheckpointError`
    (saying so plainly when the checkpoint's head has another number of classes than ``classes``).

    Without ``strict`` the keys that fit are loaded and the report says what was left out; a checkpoint of
    which nothing fits is refused even then.
    """
    report = match_state_dict(model, state)
    report.source = source
    if strict and not report.ok:
        head = None if classes is None else report.head_classes(classes)
        plain = "" if head is None else (
            f"checkpoint {source} has a {head[1]}-class classifier ({head[0]}) but the network was built for "
            f"{counted(classes, 'class', 'classes')}: give --num-classes {head[1]} if that is intended, or a "
            f"{classes}-class checkpoint\n")
        raise CheckpointError(f"{plain}checkpoint {source} does not fit the network:\n{report.describe()}")
    bad = {k for k, _, _ in report.mismatched}
    fitting = {k: v for k, v in state.items() if k not in bad and k not in report.unexpected}
    if not fitting and state:  # even a non-strict load must load something, or the network runs on random weights
        raise CheckpointError(f"checkpoint {source} fits the network nowhere (not one of its {len(state)} tensors "
                              f"matches a key and shape of the network): it is for another network\n"
                              f"{report.describe()}")
    model.load_state_dict(fitting, strict=False)
    return report


def load_checkpoint(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> LoadReport:
    """Load a checkpoint file into ``model`` (see :func:`read_state_dict` and :func:`load_state_dict`)."""
    return load_state_dict(model, read_state_dict(path), strict=strict, source=os.fspath(path))


def has_bundled_weights(name: str) -> bool:
    """Whether ``name`` loads weights of its own when no checkpoint is given."""
    return name in _DEFAULT_WEIGHTS


def build_network(name: str, weights: str | os.PathLike | None = None, num_classes: int | None = None,
                  strict: bool = True, **kwargs: Any) -> tuple[nn.Module, LoadReport]:
    """Create ``name`` and load ``weights`` (or the network's bundled weights) in one step.

    The number of classes is ``num_classes`` if given, else the checkpoint's recorded one, else the one
    its head shape shows (families with a ``classes_in`` hook), else 20.
    """
    family = _resolve(name)
    if weights is None:
        if name not in _DEFAULT_WEIGHTS:
            raise CheckpointError(f"network {name!r} has no bundled weights: give a checkpoint with `weights`")
        weights = _DEFAULT_WEIGHTS[name]()
    state, config = read_checkpoint(weights)
    saved = config.get("arch")
    if saved not in (None, name) and _REGISTRY.get(saved) is not _REGISTRY.get(name, inspect.unwrap(family.factory)):
        raise CheckpointError(f"checkpoint {weights} was saved for network {saved!r}, not {name!r}")
    classes = num_classes if num_classes is not None else config.get("num_classes")
    if classes is None and family.classes_in is not None:
        classes = family.classes_in(state)
    classes = 20 if classes is None else int(classes)
    model = family.factory(num_classes=classes, **{**config.get("arch_kwargs", {}), **kwargs})
    report = load_state_dict(model, state, strict=strict, source=os.fspath(weights), classes=classes)
    return model.eval(), report
