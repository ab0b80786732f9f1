"""``infercam train-seg``: train a segmentation network on pseudo labels and write its predictions."""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import os
from pathlib import Path
from typing import Any

from ..data.voc import IMAGE_DIR, read_image_list
from ..errors import DataError, InferCamError
from ..io import check_dir, ensure_dir, folder_lock
from ..models.registry import networks_of_kind
from ..models.segnets import SEG_CLASSES
from ..train.loop import check_label_pngs
from ..train.segmentation import SEG_TRAIN, predict_dataset, train_segmentation
from ..run.dataset import refuse_other_runs
from ..run.manifest import MANIFEST, MANIFEST_STEM, RunSummary, file_sha256, write_manifest
from ..text import counted, listed
from .common import (add_data_args, check_same_run, earlier_records, file_system_now, open_dataset, report,
                     run_record)
from .train_common import (add_checkpoint_arg, add_train_args, check_network_kind, initial_network,
                           one_run_per_checkpoint, reuse_finished, train_config, training_inputs)
from .validate import positive_int


CLAIM = f"{MANIFEST_STEM}.train-seg.json"  # the prediction folder's lock (CLAIM.lock) from the claim to the end


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train-seg", help="train a segmentation network on pseudo labels",
        description="Train a segmentation network (torchvision DeepLabV3 from scratch, the compact demo-seg, or "
                    "small-resnet-seg, started from a small-resnet classifier with --init-weights and built with its "
                    "--arch-kwargs) "
                    "on pseudo label PNGs (0 background, c+1 class c, 255 ignored) with cross-entropy, SGD "
                    "(momentum 0.9) and poly decay; save the checkpoint with its config and, with --out-pred, "
                    "write label PNG predictions that `infercam eval` scores.")
    add_data_args(parser, labels=False)
    parser.add_argument("--pseudo", required=True, help="folder of <name>.png pseudo labels")
    add_checkpoint_arg(parser)
    parser.add_argument("--num-classes", type=positive_int, default=SEG_CLASSES,
                        help=f"output classes, background included (default: {SEG_CLASSES})")
    group = parser.add_argument_group("predictions")
    group.add_argument("--out-pred", default=None,
                       help="after training, write <name>.png predictions here (a folder that is empty or holds "
                            "this checkpoint's predictions: a rerun writes the missing ones)")
    group.add_argument("--pred-list", default=None,
                       help="images to predict (default: those of --list, else all of JPEGImages)")
    add_train_args(parser, SEG_TRAIN, "deeplabv3-resnet50", "common DeepLab settings",
                   ", ".join(networks_of_kind("segmentation")))
    parser.set_defaults(func=run)


@one_run_per_checkpoint
def run(args: argparse.Namespace) -> int:
    check_network_kind(args.network, "segmentation", "train-seg", ", ".join(networks_of_kind("segmentation")))
    dataset = open_dataset(args)
    to_predict = None
    if args.out_pred is not None:  # checked before training, not after it
        check_dir(Path(args.out_pred), "--out-pred folder")
        to_predict = read_image_list(args.pred_list, dataset.root) if args.pred_list else dataset.names
        absent = [n for n in to_predict if not dataset.image_path(n).is_file()]
        if absent:
            raise DataError(f"--pred-list names {counted(len(absent), 'image')} not in {dataset.root / IMAGE_DIR}: "
                            f"{listed(absent)}")
    model, arch_kwargs = initial_network(args, num_classes=args.num_classes)
    inputs = training_inputs(args, dataset, args.pseudo, num_classes=args.num_classes)
    reused = reuse_finished(args, model, inputs)
    with contextlib.ExitStack() as claim:  # the prediction folder is this run's from before training to the end
        if to_predict is not None:
            if not reused:  # labels that cannot train stop the run before it claims the folder
                check_label_pngs(Path(args.pseudo), dataset.names, args.num_classes)
            record = claim_prediction_folder(args, reused, len(to_predict), claim)
        if not reused:
            last = train_segmentation(model, args.network, args.num_classes, dataset, args.pseudo, args.out,
                                      train_config(args), progress=not args.no_progress, overwrite=args.overwrite,
                                      inputs=inputs, arch_kwargs=arch_kwargs)
            print(f"saved {args.out}: " + ", ".join(f"{k} {v:.4f}" for k, v in last.items()))
        if to_predict is None:
            return 0
        folder = Path(args.out_pred)
        fresh = record["model_sha256"] is None  # the folder does not hold this checkpoint's predictions: all anew
        if fresh:
            record["model_sha256"] = file_sha256(args.out)
            record["outputs_since"] = file_system_now([folder])  # a later resume of this run keeps nothing older
        summary = predict_dataset(model, dataset, folder, to_predict, args.device, progress=not args.no_progress,
                                  overwrite=fresh, manifest=record, since=record["outputs_since"],
                                  workers=max(1, args.workers), peers=(CLAIM,))
    kept = summary.count("skipped")
    print(f"wrote {summary.count('done')} predictions to {args.out_pred}"
          + (f" ({kept} kept from the earlier run)" if kept else ""))
    return report(summary)


def claim_prediction_folder(args: argparse.Namespace, reused: bool, total: int,
                            claim: contextlib.ExitStack) -> dict[str, Any]:
    """Before training: check that --out-pred is empty or holds the predictions of this checkpoint (--out), and
    write its run record there, so that a resumed training recognises it; the folder's lock ``CLAIM`` stays held
    in ``claim``, so that no other run writes there until this one's predictions are done.
    Returns the record: ``model_sha256`` is the reused checkpoint's when the folder holds its predictions (only the
    missing ones are made, those since ``outputs_since`` kept), else None (all are made anew)."""
    folder = ensure_dir(Path(args.out_pred), "--out-pred folder")
    record = run_record(args)
    record["config"]["checkpoint"] = os.path.realpath(args.out)  # whose predictions the folder holds
    claim.enter_context(folder_lock(folder / f"{CLAIM}.lock"))
    refuse_other_runs(folder, {CLAIM})
    since = _same_run(folder, record, args.overwrite, args.out)
    earlier = earlier_records(folder)
    sha = file_sha256(args.out) if reused else None  # never with --overwrite, which trains again
    keep = sha is not None and {r.get("model_sha256") for _, r in earlier} == {sha}
    record["model_sha256"], record["outputs_since"] = (sha if keep else None), since
    for path, _ in earlier if args.overwrite else ():
        path.unlink(missing_ok=True)
    write_manifest(folder / MANIFEST, record, RunSummary(total=total, status="running"),
                   _dt.datetime.now(_dt.timezone.utc))
    return record


def _same_run(folder: Path, record: dict[str, Any], overwrite: bool, out: str) -> float | None:
    """:func:`check_same_run` on the prediction folder, the checkpoint's own files there allowed, its advice saying
    what --overwrite means here."""
    own = {os.path.realpath(p) for p in (out, f"{out}.lock", f"{out}.partial")}
    try:
        return check_same_run([folder], record, overwrite, own)
    except InferCamError as exc:
        raise InferCamError(f"--out-pred: {exc} (here --overwrite also trains --out again)") from None

