"""``infercam train-cls``: train a multi-label CAM classifier from image-level labels."""
from __future__ import annotations

import argparse

from ..train.classifier import TrainConfig, train_classifier
from ..train.limits import MAX_SEED
from .train_common import CROP_LIMIT, add_checkpoint_arg, crop_size, one_run_per_checkpoint
from .validate import OrderedPair, int_at_least, json_object, number_at_least, positive_int, positive_number, seed


def add_parser(sub: argparse._SubParsersAction) -> None:
    defaults = TrainConfig()
    parser = sub.add_parser(
        "train-cls", help="train a multi-label classifier (image-level labels only) for CAMs",
        description="Train a classifier with global average pooling and a bias-free 1x1 classifier (the standard "
                    "CAM head) on a VOC-layout data set, from image-level labels only. Reports val mAP/F1 per epoch; "
                    "the checkpoint carries its config; an interrupted run resumes from <out>.partial, and a "
                    "finished one with the same options and data is reused (one with others is refused).")
    parser.add_argument("--voc-root", required=True, help="data set folder in PASCAL VOC layout")
    parser.add_argument("--train-list", required=True, help="file of training image names")
    parser.add_argument("--val-list", default=None, help="file of validation image names (mAP/F1 per epoch)")
    parser.add_argument("--labels", default=None, help="cls_labels.npy (default: <voc-root>/cls_labels.npy, XML, masks)")
    add_checkpoint_arg(parser)
    parser.add_argument("--arch", default=defaults.arch, help=f"network name from the registry (default {defaults.arch})")
    parser.add_argument("--arch-kwargs", type=json_object, default={},
                        help='JSON object of the network\'s options, e.g. \'{"widths": [32, 64, 128, 192]}\'')
    parser.add_argument("--num-classes", type=positive_int, default=defaults.num_classes)
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    parser.add_argument("--lr", type=positive_number, default=defaults.lr, help="AdamW peak learning rate (cosine decay)")
    parser.add_argument("--weight-decay", type=number_at_least(0.0), default=defaults.weight_decay)
    parser.add_argument("--crop-size", type=crop_size, default=defaults.crop_size,
                        help=f"square training crop (px; {CROP_LIMIT})")
    parser.add_argument("--scale-range", type=positive_number, nargs=2, default=defaults.scale_range, metavar=("MIN", "MAX"),
                        action=OrderedPair,
                        help="random rescale of the longer side relative to the crop size")
    parser.add_argument("--seed", type=seed, default=defaults.seed, help=f"random seed, 0 to {MAX_SEED}")
    parser.add_argument("--workers", type=int_at_least(0), default=defaults.workers,
                        help="data loading processes (default 0: load in the main process, decoded images cached)")
    parser.add_argument("--cache-images", action=argparse.BooleanOptionalAction, default=defaults.cache_images,
                        help="keep decoded images in memory across epochs (with --workers 0; default: on)")
    parser.add_argument("--overwrite", action="store_true", help="train afresh even if <out> or <out>.partial exists")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


@one_run_per_checkpoint
def run(args: argparse.Namespace) -> int:
    config = TrainConfig(arch=args.arch, arch_kwargs=args.arch_kwargs, num_classes=args.num_classes,
                         epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                         crop_size=args.crop_size, scale_range=args.scale_range, seed=args.seed,
                         workers=args.workers, cache_images=args.cache_images)
    metrics = train_classifier(args.voc_root, args.train_list, args.val_list, args.out, config, args.labels,
                               progress=not args.no_progress, overwrite=args.overwrite)
    print(f"saved {args.out}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                            for k, v in metrics.items()))
    return 0
