"""Output files: CAM dicts in psa or IRN layout, label PNGs, heatmap overlays, all written atomically.

Atomic means: written to a temporary file in the same folder, then renamed over the target, so a
crash or a full disk leaves either the complete file or none.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image

from .classes import VOC_CLASSES, voc_colormap
from .errors import DataError, OutputError, describe_write_error

CAM_FORMATS = ("psa", "irn")


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Outputs get the permissions a plain open() would give (mkstemp's files are private, 0600).
FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        # the target's extension (writers pick the format by it), or one anyway: torch.save refuses a name
        # that is only a dotted stem (".tmp-abc")
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1] or ".part", dir=folder)
    except OSError as exc:
        raise OutputError(describe_write_error(exc, path)) from None
    os.close(fd)
    try:
        os.chmod(tmp, FILE_MODE)
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise OutputError(describe_write_error(exc, path)) from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def check_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Raise :class:`OutputError` unless ``path`` is a writable folder or can be created; creates nothing."""
    path = Path(path)
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        if existing == path.absolute():
            raise OutputError(f"{what} {path} exists and is not a folder")
        raise OutputError(f"cannot create {what} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path.absolute() else f" (in {existing})"
        raise OutputError(f"{what} {path} is not writable{where}")
    return path


def ensure_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``path`` if needed; a clear error if it is a file or cannot be created or written."""
    path = check_dir(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(describe_write_error(exc, str(path))) from None
    return path


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (indented, keys in insertion order)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_file(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def save_cams(path: str | os.PathLike, cams: dict[int, np.ndarray], fmt: str = "psa") -> None:
    """Write one image's maps: psa ``{class: H x W}`` or IRN ``{"keys": classes, "high_res": K x H x W}``.
    Maps that :func:`load_cams` would refuse (not 2-D, of different sizes, not finite; a class that is not a
    whole number >= 0) raise a DataError naming the path, and nothing is written."""
    if fmt not in CAM_FORMATS:
        raise ValueError(f"format must be one of {CAM_FORMATS}")
    maps = {c: _cam_map(path, c, cams[k]) for c, k in sorted(zip(_cam_classes(path, list(cams)), cams))}
    if len({m.shape for m in maps.values()}) > 1:
        raise DataError(f"{path}: the maps have different sizes {sorted({m.shape for m in maps.values()})}")
    if fmt == "psa":
        obj: Any = maps
    else:
        stack = np.stack(list(maps.values())) if maps else np.zeros((0, 0, 0), np.float32)
        obj = {"keys": np.asarray(list(maps), dtype=np.int64), "high_res": stack}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, obj, allow_pickle=True)


# The peak above which CAMs are not normalised (psa's and IRN's maps reach 1; a normalised map resized with cubic
# interpolation afterwards overshoots 1 by a few percent, raw maps reach 5-30)
NORMALISED_PEAK = 1.25


def load_cams(path: str | os.PathLike) -> dict[int, np.ndarray]:
    """Read a CAM file in either layout as ``{class index: H x W float32}``; maps that are not 2-D arrays of
    finite numbers make the file damaged (a DataError naming it), never a traceback or a silent score."""
    try:
        obj = np.load(path, allow_pickle=True)
        obj = obj.item() if obj.dtype == object and obj.shape == () else obj
    except Exception as exc:  # a damaged file fails in numpy's or pickle's own ways (UnpicklingError, ...)
        raise DataError(f"cannot read CAM file {path} (damaged or not a .npy file): "
                        f"{type(exc).__name__}: {exc}") from None
    if isinstance(obj, dict) and "keys" in obj and "high_res" in obj:
        keys, maps = np.asarray(obj["keys"]).reshape(-1), np.asarray(obj["high_res"])
        if maps.ndim != 3 or len(keys) != len(maps):
            raise DataError(f"{path}: IRN file with {len(keys)} keys but high_res of shape {maps.shape}")
        pairs = list(zip(_cam_classes(path, list(keys)), maps))
    elif isinstance(obj, dict) and all(isinstance(k, (int, np.integer)) for k in obj):
        pairs = list(zip(_cam_classes(path, list(obj)), obj.values()))
    else:
        raise DataError(f"{path} is not a CAM file (psa dict {{class: map}} or IRN {{keys, high_res}})")
    cams = {c: _cam_map(path, c, m) for c, m in pairs}
    if _is_psa_crf_output(cams):
        raise DataError(f"{path} is psa's CRF output (infer_cls.py --out_la_crf / --out_ha_crf: the background as "
                        "class 0, class c as c + 1, maps summing to 1 at every pixel), not a CAM file: give the "
                        "--out_cam folder")
    return cams


def _is_psa_crf_output(cams: dict[int, np.ndarray]) -> bool:
    """Whether the maps are psa's CRF probabilities (background first, summing to 1 per pixel) rather than CAMs,
    whose classes would all be read one too high."""
    return 0 in cams and len(cams) > 1 and len({m.shape for m in cams.values()}) == 1 and bool(
        np.allclose(np.sum(list(cams.values()), axis=0), 1, atol=1e-3))


def _cam_classes(path: str | os.PathLike, keys: list[object]) -> list[int]:
    """The class indices of a CAM file's maps as ints: whole numbers >= 0 (no bools, strings or floats), each
    once; otherwise a DataError naming the file and the first bad key."""
    bad = next((k for k in keys if isinstance(k, (bool, np.bool_))
                or not isinstance(k, (int, np.integer)) or k < 0), None)
    if bad is not None:
        shown = bad.item() if isinstance(bad, np.generic) else bad
        raise DataError(f"{path}: CAM classes must be whole numbers >= 0, got {shown!r}")
    classes = [int(k) for k in keys]
    twice = next((c for c in classes if classes.count(c) > 1), None)
    if twice is not None:
        raise DataError(f"{path}: class {twice} appears more than once (one map per class)")
    return classes


def _cam_map(path: str | os.PathLike, cls: int, value: object) -> np.ndarray:
    """One class's map of a CAM file as H x W float32, or a DataError saying what is wrong with it."""
    try:
        cam = np.asarray(value, np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: the map of class {cls} is not an array of numbers ({exc})") from None
    if cam.ndim != 2:
        raise DataError(f"{path}: the map of class {cls} has shape {cam.shape}, not H x W")
    if not np.isfinite(cam).all():
        raise DataError(f"{path}: the map of class {cls} holds NaN or infinite values")
    return cam


def cam_file_problem(path: str | os.PathLike, classes: Sequence[int], size: tuple[int, int]) -> str | None:
    """Why ``path`` is not a finished CAM file of an image of ``size`` (H, W) labelled ``classes``: it does not
    load, holds other classes, or maps of another size; None when it is (used to resume runs)."""
    try:
        cams = load_cams(path)
    except DataError as exc:
        return str(exc)
    if sorted(cams) != sorted(classes):
        return f"{path} holds classes {sorted(cams)}, not the image's {sorted(classes)}"
    bad = next((m.shape for m in cams.values() if m.shape != tuple(size)), None)
    if bad is not None:
        return f"{path} holds maps of {bad[0]}x{bad[-1]}, not the image's {size[0]}x{size[1]}"
    return None


def save_label_png(path: str | os.PathLike, label: np.ndarray) -> None:
    """Write an H x W uint8 label map as a palette PNG with the VOC colour map."""
    img = Image.fromarray(np.asarray(label, dtype=np.uint8), mode="P")
    img.putpalette(voc_colormap().reshape(-1).tolist())
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def jet(values: np.ndarray) -> np.ndarray:
    """The JET colour map of values in [0, 1]: H x W -> H x W x 3 uint8 (blue low, red high)."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)[..., None]
    rgb = np.clip(1.5 - np.abs(4.0 * v - np.array([3.0, 2.0, 1.0], np.float32)), 0.0, 1.0)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a JET heatmap of ``cam`` over an RGB image."""
    mixed = (1 - alpha) * image.astype(np.float32) + alpha * jet(cam).astype(np.float32)
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def heatmap_path(folder: str | os.PathLike, name: str, c: int, class_names: tuple[str, ...] = VOC_CLASSES) -> Path:
    """``<folder>/<name>_<classname>.png``, the overlay of class ``c`` (``class<c>`` beyond the names; characters
    other than letters, digits, '-' and '_' become '_', e.g. ImageNet's "Border collie")."""
    label = class_names[c] if c < len(class_names) else f"class{c}"
    label = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in label)
    return Path(folder) / f"{name}_{label}.png"


def is_heatmap_of(stem: str, cam_names: set[str]) -> bool:
    """Whether ``<stem>.png`` may be the :func:`heatmap_path` overlay of one of the images ``cam_names``: its name is
    an image's name, '_' and more (a class label, which may itself hold '_')."""
    return any(stem[:i] in cam_names for i, ch in enumerate(stem) if ch == "_")


def save_heatmaps(folder: str | os.PathLike, name: str, image: np.ndarray,
                  cams: dict[int, np.ndarray], class_names: tuple[str, ...] = VOC_CLASSES) -> list[Path]:
    """Write ``<name>_<classname>.png`` overlays, one per class; returns the paths."""
    paths = []
    for c, cam in sorted(cams.items()):
        path = heatmap_path(folder, name, c, class_names)
        with atomic_path(path) as tmp:
            Image.fromarray(overlay(image, cam)).save(tmp, format="PNG")
        paths.append(path)
    return paths


def save_image(path: str | os.PathLike, image: np.ndarray, quality: int = 95) -> None:
    """Write an RGB image (format from the extension) atomically."""
    with atomic_path(path) as tmp:
        fmt = "JPEG" if str(path).lower().endswith((".jpg", ".jpeg")) else "PNG"
        kwargs = {"quality": quality} if fmt == "JPEG" else {}
        Image.fromarray(image).save(tmp, format=fmt, **kwargs)


@contextlib.contextmanager
def folder_lock(path: str | os.PathLike, target: str | os.PathLike | None = None) -> Iterator[None]:
    """Hold the lock file ``path`` (its holder's pid, host and start time) while a run writes a folder, so that
    a second run on the same folder refuses instead of doing the same work; a lock whose process is gone
    (same host) or that is unreadable is stale and taken over. The file appears with its content at once (a hard
    link to a finished temporary file), so no second run can read it half-written and call it stale; a stale
    lock is taken over by one run at a time (:func:`_takeover_guard`), so two runs that find it together cannot
    both replace it. ``target``: what the lock guards, as a refusal names it (default: the lock's folder)."""
    path = Path(path)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        try:
            _create_whole(path, json.dumps(mine))
        except FileExistsError:
            with _takeover_guard(path):
                refuse_live_holder(path, target)
                path.unlink(missing_ok=True)  # stale: its process has ended
                try:
                    _create_whole(path, json.dumps(mine))
                except FileExistsError:  # a run that did not need to take over created it meanwhile
                    refuse_live_holder(path, target)
                    raise OutputError(f"cannot take the lock file {path}: another run keeps creating it") from None
    except OSError as exc:
        raise OutputError(f"cannot create the lock file {path}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        if lock_holder(path) == mine:
            path.unlink(missing_ok=True)


def refuse_live_holder(path: Path, target: str | os.PathLike | None = None) -> None:
    """An OutputError naming the run that holds the lock ``path`` (writing to ``target``, by default the lock's
    folder), if a live one does."""
    holder = lock_holder(path)
    if holder is not None:
        raise OutputError(f"another run (pid {holder['pid']} on {holder['host']}, since {holder['since']}) is "
                          f"writing to {path.parent if target is None else target}: wait for it to end, or delete "
                          f"{path} if that run is gone")


@contextlib.contextmanager
def _takeover_guard(lock: Path, patience: float = 10.0, abandoned: float = 2.0) -> Iterator[None]:
    """Let one run at a time decide that ``lock`` is stale and replace it: an exclusively created
    ``<lock>.takeover`` file, removed afterwards. Held for microseconds, so one that stays unchanged for
    ``abandoned`` seconds was left by a run killed inside it and is removed; OutputError after ``patience``."""
    guard = lock.with_name(lock.name + ".takeover")
    start, seen = time.monotonic(), None
    while True:
        try:
            os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            break
        except FileExistsError:
            pass
        try:
            st = guard.stat()
            identity = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            continue
        now = time.monotonic()
        if seen is None or seen[0] != identity:
            seen = (identity, now)
        elif now - seen[1] > abandoned:
            guard.unlink(missing_ok=True)
            seen = None
            continue
        if now - start > patience:
            raise OutputError(f"cannot take over the stale lock {lock}: {guard} stays in place; delete it if no "
                              "run is starting in this folder")
        time.sleep(0.01)
    try:
        yield
    finally:
        guard.unlink(missing_ok=True)


def _create_whole(path: Path, text: str) -> None:
    """Create ``path`` holding ``text``, or FileExistsError if it exists: a hard link to a finished temporary file
    (so it never exists empty); where the file system has no hard links, an exclusive create, then the write."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".lock", dir=path.parent)
    try:
        os.chmod(tmp, FILE_MODE)  # readable by every user's run, as a lock must be (mkstemp's is 0600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            os.link(tmp, path)
            return
        except FileExistsError:
            raise
        except OSError:  # no hard links here (some network or FUSE file systems)
            pass
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    finally:
        _remove(tmp)


def lock_holder(path: Path) -> dict[str, Any] | None:
    """The live holder recorded in a lock file, or None when the lock is stale (unreadable, or its process
    on this host has ended). A holder on another host is assumed alive."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        pid, host = int(holder["pid"]), str(holder["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, another user's
    return holder
