"""``infercam demo``: the README's first command — the whole method on the embedded synthetic benchmark."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..data.synthetic import MAX_IMAGES
from ..demo.run import DEMO_SEED, run_demo
from ..io import ensure_dir, write_json
from ..method.gradcam import CAM_METHODS
from .common import check_json_target
from .validate import int_at_least


SUMMARY_KEYS = ("images", "methods", "differences")  # keys of every --json file demo writes (DemoSummary.to_dict)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo", help="run baseline CAM and InferCam (every mode) on a fresh synthetic split and real photos, "
                     "with a report",
        description="Generate a held-out synthetic VOC-layout split, run the bundled classifier's baseline CAM and "
                    "InferCam in each mode, evaluate them (mIoU over a threshold sweep, object recall, where the CAM "
                    "mass lies, paired bootstrap intervals); run the real ImageNet network efficientnet-lite0 on the "
                    "real photos packages ship (scored against hand-drawn boxes; skipped with a note where absent); "
                    "and write an HTML report.")
    parser.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    parser.add_argument("--images", type=int_at_least(1, MAX_IMAGES), default=60, help="held-out images to generate (default: 60)")
    parser.add_argument("--seed", type=int_at_least(0), default=DEMO_SEED, help=f"generator seed (default: {DEMO_SEED})")
    parser.add_argument("--network", default="demo", help="network (default: demo, the bundled classifier)")
    parser.add_argument("--weights", default=None, help="checkpoint (default: the network's bundled weights)")
    parser.add_argument("--cam-method", choices=CAM_METHODS, default="cam",
                        help="cam: the network's own CAM head (default); gradcam / gradcam++ at --target-layer")
    parser.add_argument("--target-layer", default=None, metavar="NAME",
                        help="module for gradcam/gradcam++ (default: the family's last feature layer)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--report-images", type=int_at_least(0), default=24, help="images shown in the report (default: 24)")
    parser.add_argument("--photos", type=int_at_least(0), default=None, metavar="N",
                        help="real photos to run (default: all found; 0: none)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the summary figures here")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.json:  # checked, and its folder made, before the run, not found unusable after it
        check_json_target(args.json, SUMMARY_KEYS, "infercam demo")
        ensure_dir(Path(args.json).parent, "--json folder")
    summary = run_demo(args.out, n_images=args.images, seed=args.seed, network=args.network, weights=args.weights,
                       device=args.device, report_images=args.report_images, progress=not args.no_progress,
                       max_photos=args.photos, cam_method=args.cam_method, target_layer=args.target_layer)
    print(summary.table())
    print(f"\nreport: {summary.report}")
    if args.json:
        write_json(args.json, summary.to_dict())
    return 0
