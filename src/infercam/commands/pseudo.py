"""``infercam pseudo``: pixel pseudo labels from CAM files (threshold, dense CRF, AffinityNet random walk)."""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from ..classes import NUM_CLASSES
from ..errors import DataError, InferCamError
from ..method.engine import resolve_device
from ..models import build_network, has_bundled_weights
from ..models.affinity import affinity_network_name, check_affinity_net
from ..pseudo import (
    PSA_CRF, PSA_HIGH_ALPHA, PSA_LOW_ALPHA, PSA_RW, PSA_THRESHOLD, Background, RandomWalkParams, cam_labeler,
    confident_labels, crf_labels, rw_labels, threshold_labels,
)
from ..pseudo.random_walk import MAX_LOGT
from ..pseudo.run import Labeler
from ..run.outputs import LabelOutputs
from ..text import counted
from .common import add_data_args, add_run_args, earlier_records, option_name, run_over_dataset
from .validate import int_at_least, number_above, unit_interval

METHODS = ("threshold", "crf", "rw")
# An exponent (--alpha, --beta) above this only rounds maps to 0 or 1 (psa uses 4 to 32), and far above it
# overflows float32.
MAX_POWER = 1000.0
power = number_above(0.0, MAX_POWER)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "pseudo", help="pixel pseudo labels from CAMs (threshold, CRF, random walk)",
        description="Turn <cam>/<name>.npy CAM files (psa or IRN format) into palette label PNGs "
                    "<out>/<name>.png (0 background, c+1 class c). threshold: argmax over [background, CAMs]; "
                    "crf: the same scores as unaries of psa's dense CRF (10 iterations, Gaussian sxy 3 compat 3, "
                    "bilateral sxy 80 srgb 13 compat 10); rw: psa's AffinityNet random walk. Resumable: images "
                    "whose PNG exists are skipped unless --overwrite.")
    parser.add_argument("--cam", required=True, help="folder of <name>.npy CAM files")
    add_data_args(parser)
    parser.add_argument("--method", choices=METHODS, required=True, help="how CAMs become labels")
    parser.add_argument("--out", required=True, help="folder for <name>.png label maps")
    bg = parser.add_argument_group("background score (threshold, crf, rw)").add_mutually_exclusive_group()
    bg.add_argument("--bg-threshold", type=unit_interval, default=None,
                    help=f"fixed background score (threshold/crf default: {PSA_THRESHOLD}, psa's infer_cls.py)")
    bg.add_argument("--alpha", type=power, default=None,
                    help="background (1 - max CAM) ** ALPHA instead of a fixed score "
                         f"(rw default: {PSA_RW.alpha:g}, psa's infer_aff.py)")
    crf = parser.add_argument_group("confident labels for train-aff (crf only)")
    crf.add_argument("--affinity-labels", action="store_true",
                     help="write psa's confident labels instead: the class of a CRF with background alpha "
                          "--low-alpha, 255 where that CRF says background, 0 where a CRF with --high-alpha does")
    crf.add_argument("--low-alpha", type=power, default=None, help=f"default: {PSA_LOW_ALPHA} (psa)")
    crf.add_argument("--high-alpha", type=power, default=None, help=f"default: {PSA_HIGH_ALPHA} (psa)")
    rw = parser.add_argument_group("random walk (rw only)")
    rw.add_argument("--aff-network", default=None,
                    help="AffinityNet: demo (the compact one, bundled weights trained on the synthetic data; = "
                         "demo-aff), resnet38 (psa's, = resnet38-aff; give --aff-weights) or any registry name "
                         "(default: demo)")
    rw.add_argument("--aff-weights", default=None,
                    help="AffinityNet checkpoint (train-aff's, or psa's resnet38_aff .pth); default: bundled weights")
    rw.add_argument("--beta", type=power, default=None, help=f"affinity power (default: {PSA_RW.beta:g}, psa)")
    rw.add_argument("--logt", type=int_at_least(0, MAX_LOGT), default=None,
                    help=f"walk length 2**LOGT, at most {MAX_LOGT} (default: {PSA_RW.logt}, psa)")
    rw.add_argument("--device", default=None,
                    help="where the AffinityNet runs: cpu, cuda or cuda:N (default: cpu; threshold and crf run on "
                         "the CPU and refuse it)")
    add_run_args(parser)
    parser.set_defaults(func=run, sharded=True)  # torchrun shares its images out among its ranks


def _method_options(args: argparse.Namespace) -> list[tuple[str, bool, object]]:
    """The options of one method only: (option, whether this run uses it, its default)."""
    rw, affinity = args.method == "rw", args.method == "crf" and args.affinity_labels
    return [("low_alpha", affinity, PSA_LOW_ALPHA), ("high_alpha", affinity, PSA_HIGH_ALPHA),
            ("aff_network", rw, "demo"), ("aff_weights", rw, None), ("beta", rw, PSA_RW.beta),
            ("logt", rw, PSA_RW.logt), ("device", rw, "cpu")]


def check_method_options(args: argparse.Namespace) -> None:
    """Refuse an option the chosen method does not use (e.g. --low-alpha without --affinity-labels, --beta or
    --device without --method rw), then fill in the defaults of the others; --bg-threshold / --alpha at the method's
    default are the same run as without them."""
    if args.affinity_labels and args.method != "crf":
        raise InferCamError("--affinity-labels needs --method crf")
    for key, used, default in _method_options(args):
        if getattr(args, key) is not None and not used:
            needs = "--method crf --affinity-labels" if key.endswith("_alpha") else "--method rw"
            raise InferCamError(f"{option_name(key)} applies only with {needs}; this run would ignore it")
        if getattr(args, key) is None:
            setattr(args, key, default)
    # a background option given at the method's default is the run that leaves it out (check_same_run)
    if args.method in ("threshold", "crf") and not args.affinity_labels:
        args.unset_defaults = {"bg_threshold": PSA_THRESHOLD}
    if args.method == "rw":
        args.unset_defaults = {"alpha": PSA_RW.alpha}


def _background(args: argparse.Namespace) -> Background:
    if args.alpha is not None:
        return Background(alpha=args.alpha)
    return Background(threshold=PSA_THRESHOLD if args.bg_threshold is None else args.bg_threshold)


def build_labeler(args: argparse.Namespace) -> Labeler:
    """The per-image labelling function that the options describe."""
    if args.method == "threshold":
        background = _background(args)
        return lambda image, cams: threshold_labels(cams, image.shape[:2], background)
    if args.method == "crf" and args.affinity_labels:
        if args.bg_threshold is not None or args.alpha is not None:
            raise InferCamError("--affinity-labels uses --low-alpha and --high-alpha, not --bg-threshold/--alpha")
        if not args.low_alpha < args.high_alpha:
            raise InferCamError(f"--low-alpha ({args.low_alpha:g}) must be below --high-alpha ({args.high_alpha:g})")
        return lambda image, cams: confident_labels(image, cams, args.low_alpha, args.high_alpha, PSA_CRF)
    if args.method == "crf":
        background = _background(args)
        return lambda image, cams: crf_labels(image, cams, background, PSA_CRF)
    if args.bg_threshold is not None:
        raise InferCamError("--method rw takes a background --alpha, not --bg-threshold")
    params = RandomWalkParams(beta=args.beta, logt=args.logt, alpha=PSA_RW.alpha if args.alpha is None else args.alpha)
    device = resolve_device(args.device)
    args.aff_network = affinity_network_name(args.aff_network)
    if args.aff_weights is None and not has_bundled_weights(args.aff_network):
        raise InferCamError(f"network {args.aff_network!r} has no bundled weights: "
                            "give a checkpoint with --aff-weights")
    model, report = build_network(args.aff_network, args.aff_weights)
    args.aff_weights = report.source  # the manifest records the file loaded
    check_affinity_net(model, args.aff_network)
    model.to(device)
    return lambda image, cams: rw_labels(image, cams, model, params, device)


def cam_class_count(cam: Path) -> tuple[int, str, bool]:
    """How many classes the CAMs in ``cam`` have, whose count it is (for the label file check) and whether it is
    assumed: what the cam / infer run that wrote them recorded, else VOC's 20 (psa's and IRN's CAMs, and those of
    older runs), against which only 21-entry vectors are refused: CAMs of another data set may have any count."""
    counts = {c for _, record in earlier_records(cam)
              if isinstance(c := record.get("classes"), int) and not isinstance(c, bool) and c > 0}
    if len(counts) == 1:
        return counts.pop(), f"the CAMs in {cam}", False
    why = f"the run records there disagree: {sorted(counts)}" if counts else \
        "no infercam run record there gives a class count"
    return NUM_CLASSES, f"the CAMs in {cam} (VOC's, as {why})", True


def run(args: argparse.Namespace) -> int:
    check_method_options(args)
    desc = "pseudo (crf, affinity labels)" if args.affinity_labels else f"pseudo ({args.method})"
    dropped: Counter = Counter()
    absent: Counter = Counter()
    unnormalised: dict[str, float] = {}
    if not Path(args.cam).is_dir():  # a run-level error, before the output folder and its manifest are made
        raise DataError(f"CAM folder not found: {args.cam}" if not Path(args.cam).exists()
                        else f"--cam {args.cam} is a file, not a folder of <name>.npy CAM files")
    if not any(Path(args.cam).glob("*.npy")):
        raise DataError(f"--cam {args.cam} holds no <name>.npy CAM files (an infer/cam --out-cam folder)")
    # --labels vectors of another length (a background entry first) would shift every class: refused before any image
    args.cam_classes, owner, args.cam_classes_assumed = cam_class_count(Path(args.cam))
    args.classes_owner = (owner, "have")
    code = run_over_dataset(args, LabelOutputs(Path(args.out), source=Path(args.cam)),
                            lambda a: (cam_labeler(a.cam, build_labeler(a), dropped, absent, unnormalised), None),
                            desc)
    if dropped:
        maps = sum(dropped.values())
        print(f"note: {counted(maps, 'CAM map')} of classes the images are not labelled with "
              f"{'was' if maps == 1 else 'were'} dropped ({counted(len(dropped), 'image')}, "
              f"e.g. {next(iter(dropped))})", file=sys.stderr)
    if absent:
        classes = sum(absent.values())
        print(f"note: {counted(classes, 'labelled class', 'labelled classes')} "
              f"{'has' if classes == 1 else 'have'} no map in {'its' if classes == 1 else 'their'} CAM file and got no pixels "
              f"({counted(len(absent), 'image')}, e.g. {next(iter(absent))}): were the CAMs made with other labels?",
              file=sys.stderr)
    if unnormalised:
        name, peak = next(iter(unnormalised.items()))
        print(f"note: the CAMs of {counted(len(unnormalised), 'image')} reach well above 1 (e.g. {name}: "
              f"{peak:.4g}): they are not normalised as psa's and IRN's are (each map divided by its maximum), so the "
              "background score, made for maps in [0, 1], calls nearly every pixel foreground; normalise them first",
              file=sys.stderr)
    return code
