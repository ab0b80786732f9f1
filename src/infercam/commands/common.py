"""Options and builders shared by several subcommands (data set, network, device, outputs)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

from ..classes import VOC_CLASSES
from ..data.images import DEFAULT_MAX_SIDE, MIN_SIDE, SizeLimits
from ..data.voc import ANNOT_DIR, IMAGE_DIR, SEG_DIR, VOCDataset
from ..errors import DataError, InferCamError, OutputError
from ..io import CAM_FORMATS
from ..method.cam import DEFAULT_SCALES, check_scales
from ..method.engine import describe_device, resolve_device
from ..method.forward import PRECISIONS
from ..method.gradcam import CAM_METHODS, with_cam_method
from ..models import build_network, cam_classes
from ..models.registry import cam_networks
from ..models.class_map import CLASS_MAPS, DEFAULT_REDUCE, REDUCTIONS, with_class_map
from ..run import distributed
from ..run.dataset import NO_LABELS, ComputeFn, PrepareFn, run_dataset
from ..run.manifest import MANIFEST, MANIFEST_STEM, RunSummary, file_sha256
from ..run.outputs import LabelOutputs, Outputs
from ..text import counted
from .validate import int_at_least, positive_int


def parse_scales(text: str) -> tuple[float, ...]:
    """'1.0,0.5,1.5,2.0' -> (1.0, 0.5, 1.5, 2.0), with a clear error for bad values."""
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid scales {text!r}: use comma-separated numbers, e.g. 1.0,0.5,1.5,2.0") from None
    try:
        return check_scales(values)
    except InferCamError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_data_args(parser: argparse.ArgumentParser, labels: bool = True) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--voc-root", required=True, help="data set folder in PASCAL VOC layout (JPEGImages/, ...)")
    group.add_argument("--list", dest="list_file", default=None,
                       help="file of image names, one per line (psa-style lines accepted); default: all of JPEGImages")
    if labels:
        group.add_argument("--labels", default=None,
                           help="psa-style cls_labels.npy (dict name -> 20-vector); default: <voc-root>/cls_labels.npy, "
                                "else Annotations/<name>.xml, else SegmentationClass/<name>.png")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("network")
    group.add_argument("--network", default="resnet38",
                       help=f"CAM classifier (known: {', '.join(cam_networks())}); default: resnet38")
    group.add_argument("--weights", default=None,
                       help="checkpoint file (state_dict, or a dict holding one under 'state_dict'/'model')")
    group.add_argument("--num-classes", type=positive_int, default=None,
                       help="classes of the network's classifier (default: from the checkpoint, else 20)")
    group.add_argument("--strict", action=argparse.BooleanOptionalAction, default=True,
                       help="refuse a checkpoint with missing, unexpected or mis-shaped keys (default: on)")
    group.add_argument("--cam-method", choices=CAM_METHODS, default="cam",
                       help="cam: the network's own forward_cam (default); gradcam / gradcam++: gradient-weighted maps "
                            "at --target-layer, for any classifier (one backward per class)")
    group.add_argument("--target-layer", default=None, metavar="NAME",
                       help="module for gradcam/gradcam++, e.g. layer4 or features (default: the family's last "
                            "feature layer)")
    group.add_argument("--class-map", choices=CLASS_MAPS, default=None,
                       help="make the network a CAM source of other classes: imagenet-voc turns a 1000-class "
                            "ImageNet network into a 20-class VOC one (docs/networks.md)")
    group.add_argument("--class-map-reduce", choices=REDUCTIONS, default=DEFAULT_REDUCE,
                       help=f"how a class's map is made from its members' maps: max, sum, or top (the member with "
                            f"the largest pooled map on each input); default {DEFAULT_REDUCE}")
    group.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    group.add_argument("--scales", type=parse_scales, default=DEFAULT_SCALES,
                       help="comma-separated input scales (default: 1.0,0.5,1.5,2.0); an image that a scale makes "
                            f"shorter than {MIN_SIDE} px fails")
    group.add_argument("--batch-size", type=positive_int, default=8, help="passes per forward batch (default: 8)")
    group.add_argument("--precision", choices=PRECISIONS, default="fp32",
                       help="forward_cam precision: fp32 (default, exact), or bf16/fp16 under autocast (the maps "
                            "are upsampled and normalised in fp32); CPU: bf16, fp16; CUDA: fp16, bf16 where supported")
    group.add_argument("--compile", action="store_true",
                       help="torch.compile forward_cam (dynamic shapes; compiling takes a while at start, see "
                            "docs/speed.md)")
    group.add_argument("--channels-last", action="store_true",
                       help="network and inputs in channels_last memory format (see docs/speed.md)")


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """The InferCam keyword arguments given by the network options (scales, device, batch, speed)."""
    return {"scales": args.scales, "device": args.device, "batch_size": args.batch_size,
            "precision": args.precision, "compile": args.compile, "channels_last": args.channels_last}


def add_run_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run")
    group.add_argument("--overwrite", action="store_true", help="recompute images whose outputs exist (default: resume)")
    group.add_argument("--on-error", choices=("skip", "stop"), default="skip",
                       help="on a bad image: record it and go on (skip, default) or stop the run")
    group.add_argument("--workers", type=int_at_least(0), default=2, help="image decoding threads (default: 2)")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_size_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-side", type=positive_int, default=DEFAULT_MAX_SIDE, metavar="N",
                        help=f"refuse (as a failed image) any image whose longer side is over N px, default "
                             f"{DEFAULT_MAX_SIDE}: CAMs are written on the image's own pixel grid, so nothing is "
                             f"downscaled silently. Images whose shorter side is under {MIN_SIDE} px (the networks' "
                             f"output stride) are refused too")


def size_limits(args: argparse.Namespace) -> SizeLimits:
    """The image sizes cam / infer / split accept."""
    return SizeLimits(MIN_SIDE, args.max_side)


def open_dataset(args: argparse.Namespace) -> VOCDataset:
    return VOCDataset.open(args.voc_root, args.list_file, getattr(args, "labels", None))


def load_network(args: argparse.Namespace):
    """The network named by --network with --weights loaded, giving maps by --cam-method; prints what a
    non-strict load left out. ``args.weights`` becomes the file loaded (the bundled one if none was given)."""
    model, report = build_network(args.network, args.weights, args.num_classes, strict=args.strict)
    if not report.ok:
        print(f"warning: checkpoint loaded non-strictly:\n{report.describe()}", file=sys.stderr)
    args.weights = report.source
    model = with_class_map(with_cam_method(model, args.cam_method, args.target_layer), args.class_map,
                           args.class_map_reduce)
    args.class_names = tuple(getattr(model, "class_names", ()) or VOC_CLASSES)  # for the heatmap file names
    args.cam_classes = cam_classes(model)  # to check the label file against, before any image runs
    args.unmapped_classes = unmapped_classes(model)  # their maps are zero: said after the run
    return model


def unmapped_classes(model: object) -> tuple[int, ...]:
    """The target classes to which a class map gives no class of the network (imagenet-voc's person)."""
    return tuple(c for c, members in enumerate(getattr(model, "members", ())) if not members)


# Options that name an output path, recorded absolute in the manifest even before the path exists.
OUTPUT_PATH_OPTIONS = ("out", "out_cam", "heatmap", "save_splits", "out_pred")
# Options that name a checkpoint file: the manifest records its path and SHA-256.
CHECKPOINT_OPTIONS = ("weights", "aff_weights")
INTERNAL_OPTIONS = ("func", "sharded", "unset_defaults", "command_line", "class_names", "cam_classes", "classes_owner",
                    "cam_classes_assumed", "unmapped_classes")
# Options that do not change what a run writes: a rerun into the same folder may give other values (another
# image list or label file: each image's outputs are checked against its labels). The data set folder is not one of
# them: another data set's images may share the names, sizes and labels of those whose outputs are kept.
RUN_CONTROL_OPTIONS = ("overwrite", "on_error", "workers", "no_progress", "device", "batch_size", "compile",
                       "channels_last", "list_file", "labels", "max_side", "pred_list", *OUTPUT_PATH_OPTIONS)


# Options that name what a run reads (files or folders); no output may be one of them.
INPUT_PATH_OPTIONS = ("voc_root", "list_file", "labels", "cam", "split_path", "pseudo", "aff_labels", "weights",
                      "aff_weights", "init_weights", "train_list", "val_list", "pred_list")


def option_name(dest: str) -> str:
    """The command-line spelling of the option stored as ``dest`` (``list_file`` -> ``--list``)."""
    return "--list" if dest == "list_file" else f"--{dest.replace('_', '-')}"


def refuse_inputs_as_outputs(args: argparse.Namespace) -> None:
    """A DataError when an output option names something the run reads: an input option's file or folder, or the
    data set's images, annotations or ground truth. Its files would be replaced, --overwrite or not."""
    inputs = {}
    for key in INPUT_PATH_OPTIONS:
        path = getattr(args, key, None)
        if isinstance(path, (str, os.PathLike)):
            kind = "folder" if os.path.isdir(path) else "file"
            inputs[path] = "the data set folder" if key == "voc_root" else f"the {option_name(key)} {kind}"
    if getattr(args, "voc_root", None) is not None:
        inputs.update({Path(args.voc_root) / f: f"the data set's {f}/ folder" for f in (IMAGE_DIR, SEG_DIR, ANNOT_DIR)})
    read = {os.path.realpath(path): what for path, what in inputs.items()}
    for key in OUTPUT_PATH_OPTIONS:
        out = getattr(args, key, None)
        what = read.get(os.path.realpath(out)) if isinstance(out, (str, os.PathLike)) else None
        if what is not None:
            raise DataError(f"{option_name(key)} {out} is {what}, which this run reads: "
                            "writing there would replace what it reads, --overwrite or not; give another path")


def run_record(args: argparse.Namespace) -> dict[str, Any]:
    """A run's manifest header: the command line, its options (paths made absolute, links resolved), the checkpoints
    loaded (path and SHA-256) and the device."""
    config: dict[str, Any] = {}
    for key, value in sorted(vars(args).items()):
        if key in INTERNAL_OPTIONS:
            continue
        if isinstance(value, str) and (key in OUTPUT_PATH_OPTIONS or os.path.exists(value)):
            value = os.path.realpath(value)  # one spelling per folder: a link or a relative path is the same run
        config[key] = list(value) if isinstance(value, tuple) else value
    checkpoints = {key: {"path": os.path.abspath(path), "sha256": file_sha256(path)}
                   for key in CHECKPOINT_OPTIONS if (path := getattr(args, key, None)) and os.path.isfile(path)}
    record = {"command": getattr(args, "command_line", ""), "config": config, "checkpoints": checkpoints,
              "device": describe_device(args.device)}
    if getattr(args, "cam_classes", None) is not None and not getattr(args, "cam_classes_assumed", False):
        record["classes"] = args.cam_classes  # how many classes the maps have: pseudo checks --labels by it
    return record


def _what_it_computes(record: dict[str, Any], unset: Mapping[str, object] = {}) -> dict[str, Any]:
    """The part of a run record that decides the outputs: the options, run control aside, and checkpoint hashes;
    an option of ``unset`` at that default value counts as not given (None)."""
    skip = (*RUN_CONTROL_OPTIONS, *CHECKPOINT_OPTIONS)  # a checkpoint counts by its hash, not where it lies
    config = {k: None if k in unset and v == unset[k] else v
              for k, v in record.get("config", {}).items() if k not in skip}
    hashes = {f"{k} (SHA-256)": c.get("sha256") for k, c in record.get("checkpoints", {}).items()}
    return {**config, **hashes}


def earlier_records(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The run records in ``folder``: its manifest and those of torchrun ranks (an unreadable one counts as none)."""
    records = []
    for path in sorted(folder.glob(f"{MANIFEST_STEM}*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get("config"), dict):
            records.append((path, record))
    return records


def _holds_outputs(folder: Path, own: Collection[str]) -> bool:
    """Whether ``folder`` holds files other than run records, locks, hidden files (temporary files, .gitkeep) and
    the ``own`` files of this run (real paths)."""
    return folder.is_dir() and any(not p.name.startswith((MANIFEST_STEM, ".")) and os.path.realpath(p) not in own
                                   for p in folder.iterdir())


def _names(record: dict[str, Any], folder: Path) -> bool:
    """Whether an older infercam's run record (before every output folder had its own) names ``folder`` as its
    --heatmap or --save-splits folder, which that version left without a record."""
    paths = [v for k, v in record["config"].items() if k in OUTPUT_PATH_OPTIONS and isinstance(v, str)]
    return "outputs_since" not in record and os.path.abspath(folder) in {os.path.abspath(p) for p in paths}


def file_system_now(folders: Sequence[Path]) -> float:
    """The time stamp a file written now in the first existing output folder gets (the file system's clock and
    granularity, to compare outputs' mtimes with); the local clock where no folder exists yet (nothing to keep)."""
    folder = next((f for f in folders if f.is_dir()), None)
    if folder is None:
        return time.time()
    try:
        with tempfile.NamedTemporaryFile(prefix=".tmp-", dir=folder) as probe:
            return os.fstat(probe.fileno()).st_mtime
    except OSError as exc:
        raise OutputError(f"cannot write to the output folder {folder}: {exc.strerror or exc}") from None


def check_same_run(folders: Sequence[Path], record: dict[str, Any], overwrite: bool,
                   own: Collection[str] = (), unset: Mapping[str, object] = {}) -> float | None:
    """Refuse to resume into a folder that another computation wrote (other command, network, weights, mode,
    scales, format, class map, ...; any rank's record counts), naming what differs, or that holds outputs no run
    recorded (an older infercam's run killed before its end-of-run record, or another tool's files; ``own``: real
    paths of files this run keeps there, e.g. train-seg's checkpoint beside its predictions). Returns the
    time before which earlier outputs are not resumed from: the start of an --overwrite run (this one, or the one
    this run continues), else None (every output that loads whole is kept). ``unset``: {option: default} of options
    whose default is recorded as None when not given; given at the default, they are the same computation."""
    if overwrite:
        return file_system_now(folders)
    since, records = None, {folder: earlier_records(folder) for folder in folders}
    every = [earlier for found in records.values() for _, earlier in found]
    for folder in folders:  # files that no record vouches for
        if not records[folder] and _holds_outputs(folder, own) and not any(_names(r, folder) for r in every):
            raise InferCamError(f"{folder} holds files that no infercam run recorded (its run record {MANIFEST} "
                                "is missing): use --overwrite to recompute them, or another folder")
    now = _what_it_computes(record, unset)
    for folder in folders:
        for path, earlier in records[folder]:
            before = _what_it_computes(earlier, unset)
            differ = sorted(k for k in {*before, *now} if before.get(k) != now.get(k))
            if differ:
                shown = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in differ[:4])
                more = f" and {len(differ) - 4} more" if len(differ) > 4 else ""
                raise InferCamError(f"{folder} holds the outputs of another run ({shown}{more}; see {path}): "
                                    "use --overwrite to recompute them, or another output folder")
            if isinstance(earlier.get("outputs_since"), (int, float)):
                since = max(since or 0.0, float(earlier["outputs_since"]))
    return since


MAX_JSON_BYTES = 10 * 2**20  # larger than any score or summary file infercam writes


def check_json_target(path: str | os.PathLike, keys: Collection[str], writer: str) -> None:
    """A DataError when --json names a folder or an existing file that is not an earlier one of ``writer``'s
    (a JSON object with every one of ``keys``): an input, a manifest or anyone's file would be replaced. Checked
    before the work, so that nothing is computed in vain."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"--json {path} is a folder: give the path of a .json file to write")
    if not os.path.lexists(path) or (path.is_file() and path.stat().st_size == 0):  # new, or an empty (mktemp) file
        return
    if not path.is_file():  # the atomic write's rename would replace it (/dev/stdout, a pipe), or hang reading it
        raise DataError(f"--json {path} is not a regular file: give the path of a .json file to write")
    earlier = None
    if path.stat().st_size <= MAX_JSON_BYTES:  # a large file is no score file; not read whole
        try:
            earlier = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            pass
    if not (isinstance(earlier, dict) and set(keys) <= earlier.keys()):
        raise DataError(f"--json {path} exists and is not a file of {writer}: it would be replaced; give another "
                        "path (or delete it)")


def add_output_args(parser: argparse.ArgumentParser, splits: bool = True) -> None:
    group = parser.add_argument_group("outputs")
    group.add_argument("--out-cam", default=None, help="folder for <name>.npy CAM files")
    group.add_argument("--format", choices=CAM_FORMATS, default="psa",
                       help="psa: dict {class: HxW map}; irn: {'keys': classes, 'high_res': KxHxW} (default: psa)")
    group.add_argument("--heatmap", default=None, help="folder for <name>_<class>.png heatmap overlays")
    if splits:
        group.add_argument("--save-splits", default=None, metavar="DIR",
                           help="also write each image's four patches (<name>_1.jpg .. _4.jpg, <name>.json; the "
                                "default and evidence modes do not cut, so each is the whole image)")


def make_outputs(args: argparse.Namespace) -> Outputs:
    split_dir = getattr(args, "save_splits", None)
    return Outputs(cam_dir=Path(args.out_cam) if args.out_cam else None, fmt=args.format,
                   heatmap_dir=Path(args.heatmap) if args.heatmap else None,
                   split_dir=Path(split_dir) if split_dir else None)


def report(summary: RunSummary, prefix: str = "") -> int:
    """Print the one-line summary (a note when every image was skipped for having no class label, and the
    failures); the exit status: 0 when every image is done or skipped, 128 + the signal's number when
    interrupted, else 1 (an image failed, or the run stopped). ``prefix`` starts the summary line (a torchrun
    rank's ``[rank R/N] ``: each rank's line counts its own share of the images). Each line is one write, so that
    torchrun's ranks, printing to one stream at once, do not run their lines together."""
    lines = [prefix + summary.line()]
    if summary.images and not summary.remaining and all(s.reason == NO_LABELS for s in summary.images):
        lines.append("note: every image was skipped: none has a class label (check --labels)")
    lines += [f"  failed {status.name}: {status.reason}" for status in summary.failed[:20]]
    if len(summary.failed) > 20:
        lines.append(f"  ... and {len(summary.failed) - 20} more (see the run manifest)")
    for line in lines:
        sys.stderr.write(line + "\n")  # print() writes the line and its newline apart
        sys.stderr.flush()
    if summary.status == "interrupted":
        return 128 + (summary.signal or signal.SIGINT)
    return 1 if summary.failed or summary.status != "finished" else 0


# A command's per-image computation and the preparation run ahead of it in the prefetch threads (or None).
Stages = tuple[ComputeFn, PrepareFn | None]


def run_over_dataset(args: argparse.Namespace, outputs: Outputs | LabelOutputs,
                     make_compute: Callable[[argparse.Namespace], Stages], desc: str,
                     limits: SizeLimits = SizeLimits()) -> int:
    """The shared body of cam / infer / split / pseudo: this rank's share of the images, resumable, with a
    manifest; the output folders are created once the data set, network and device were found usable."""
    refuse_inputs_as_outputs(args)
    rank = distributed.Rank.from_env()
    args.device = rank.device(args.device)
    resolve_device(args.device)  # a clear error before the process group, whose backend depends on it
    distributed.start(rank, args.device)
    dataset = open_dataset(args)
    compute, prepare = make_compute(args)
    if getattr(args, "cam_classes", None) is not None:
        owner = getattr(args, "classes_owner", None) or (  # pseudo's: the CAMs it reads
            ("the class map" if getattr(args, "class_map", None) else "the network"), "has")
        dataset.check_label_length(args.cam_classes, *owner, guessed=getattr(args, "cam_classes_assumed", False))
    if isinstance(outputs, Outputs):
        outputs.class_names = getattr(args, "class_names", outputs.class_names)
    record = run_record(args)
    since = check_same_run(outputs.folders, record, args.overwrite, unset=getattr(args, "unset_defaults", {}))
    record["outputs_since"] = since  # a later resume of this run keeps nothing older
    summary = run_dataset(dataset, compute, outputs, names=distributed.shard(dataset.names, rank.rank, rank.world_size),
                          overwrite=args.overwrite, on_error=args.on_error, workers=args.workers,
                          progress=not args.no_progress, manifest=record, manifest_name=rank.manifest_name(),
                          peers=rank.peer_manifest_names(), since=since, desc=rank.label(desc), limits=limits,
                          prepare=prepare)
    code = report(summary, prefix=rank.label(""))  # before the barrier, so that the job's total comes last
    merged = distributed.finish(rank, outputs.folder)
    if merged is not None:
        print(distributed.job_line(merged, rank.world_size), file=sys.stderr)
    note_unmapped_classes(args, dataset, [s.name for s in summary.images if s.status == "done"])
    return code


def note_unmapped_classes(args: argparse.Namespace, dataset: VOCDataset, names: list[str]) -> None:
    """A note naming the labelled classes that the class map gives no class of the network: their maps were
    written all zero (ImageNet has no person), which eval --class-map leaves out of its scores."""
    unmapped = getattr(args, "unmapped_classes", ())
    if not unmapped:
        return
    counts = Counter(c for name in names for c in dataset.labels(name) if c in unmapped)
    for c, n in sorted(counts.items()):
        print(f"note: {counted(n, 'image')} labelled {args.class_names[c]} got an all-zero map of it: --class-map "
              f"{args.class_map} gives {args.class_names[c]} no class of the network (eval --class-map "
              f"{args.class_map} leaves it out of the scores)", file=sys.stderr)
