"""Benchmark: InferCam engine vs the straightforward (authors'-loop) implementation, side by side.

Prints, per implementation: setup seconds (building the engine: torch.compile happens there), images/s
(median of --repeat runs), seconds per image, the share of wall time inside forward_cam, peak RSS, forward
passes and input pixels per image; then the throughput ratio and the largest difference between the two
implementations' maps. The naive implementation is always fp32 eager; --precision, --compile and
--channels-last apply to the engine, so that difference is the option's effect on the maps.

    .venv/bin/python bench/bench_infer.py                       # demo network on 24 synthetic images, CPU
    .venv/bin/python bench/bench_infer.py --preset resnet38     # psa ResNet-38 (shared strong fill), small images
    .venv/bin/python bench/bench_infer.py --device cuda --images 100
    .venv/bin/python bench/bench_infer.py --device cuda --precision bf16 --compile --channels-last
Each implementation runs in its own process, so peak RSS is its own.
"""
from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from queue import Empty

import numpy as np
import torch

from infercam.method.forward import PRECISIONS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # naive.py: the straightforward implementation, the tests' oracle


class Timer:
    """Wraps a forward_cam callable: counts inputs and pixels, and times the calls (CUDA-synchronised)."""

    def __init__(self, forward) -> None:
        self.forward = forward
        self.reset()

    def reset(self) -> None:
        self.seconds, self.passes, self.pixels = 0.0, 0, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
        sync()
        t0 = time.perf_counter()
        out = self.forward(x)
        sync()
        self.seconds += time.perf_counter() - t0
        self.passes += x.shape[0]
        self.pixels += x.shape[0] * x.shape[2] * x.shape[3]
        return out


def shared_fill():
    for base in (os.environ.get("INFERCAM_SHARED"), ROOT.parent / "shared", ROOT / "shared"):
        path = Path(base or "") / "checkpoints" / "fill.py"
        if base and path.exists():
            spec = importlib.util.spec_from_file_location("shared_fill", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    sys.exit("preset resnet38 needs ../shared/checkpoints/fill.py (or INFERCAM_SHARED)")


def build(args) -> torch.nn.Module:
    from infercam import models

    if args.preset == "resnet38":
        net = models.create("resnet38")
        models.load_state_dict(net, shared_fill().reference_state_dict("strong"))
        return net.eval()
    return models.build_network(args.network, args.weights)[0].eval()


def images(args) -> list[tuple[np.ndarray, list[int]]]:
    """(image, labels) pairs from a VOC-layout folder, or a synthetic split generated once into a cache folder."""
    from infercam.data.images import load_image
    from infercam.data.voc import VOCDataset

    root = Path(args.data) if args.data else synthetic(args)
    dataset = VOCDataset.open(root, args.list)
    out = []
    for name in dataset.names[:args.images]:
        image = load_image(dataset.image_path(name))
        if args.preset == "resnet38":  # keep the 105M-parameter network's cost sane on a CPU
            from PIL import Image
            image = np.asarray(Image.fromarray(image).resize((args.side, args.side * 3 // 4), Image.BICUBIC))
        out.append((image, dataset.labels(name)))
    return out


def synthetic(args) -> Path:
    from infercam.data.synthetic import make_synthetic

    root = Path(tempfile.gettempdir()) / f"infercam-bench-seed{args.seed}-n{args.images}"
    if not (root / "cls_labels.npy").exists():
        make_synthetic(root, 0, args.images, seed=args.seed)
    return root


def run_impl(impl: str, args, queue, rank: int = 0, procs: int = 1, barrier=None) -> None:
    """One implementation over its share of the images (every procs-th from rank), --repeat times; puts its
    figures (and the maps of the first run) on the queue. Ranks start each run together at ``barrier``."""
    threads = args.threads or (1 if procs > 1 else 0)
    if threads:
        torch.set_num_threads(threads)
    from infercam import InferCam
    from infercam.models import normalization
    from naive import naive_infercam

    model = build(args).to(args.device)
    mean, std = normalization(model)
    data = images(args)[rank::procs]
    t0 = time.perf_counter()
    if impl == "engine":
        engine = InferCam(model, mode=args.mode, device=args.device, batch_size=args.batch_size,
                          precision=args.precision, compile=args.compile, channels_last=args.channels_last)
        engine.cams.forward = timer = Timer(engine.cams.forward)  # outside autocast/compile: times the whole forward
    else:
        model.forward_cam = timer = Timer(model.forward_cam)
    setup = time.perf_counter() - t0

    def one(image, labels):
        if impl == "engine":
            return engine(image, labels).cams
        return naive_infercam(model, image, labels, mode=args.mode, mean=mean, std=std, patch_format="png")[0]

    one(*data[0])  # warm-up (allocator, lazy init)
    walls, forwards, maps = [], [], None
    for run in range(args.repeat):
        if barrier is not None:
            barrier.wait()
        timer.reset()
        t0 = time.perf_counter()
        results = [one(image, labels) for image, labels in data]
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - t0)
        forwards.append(timer.seconds)
        maps = maps or results
    queue.put({"rank": rank, "setup_s": setup, "walls": walls, "forwards": forwards, "n": len(data),
               "passes": timer.passes, "pixels": timer.pixels,
               "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "maps": maps})


def run_ranks(ctx, impl: str, args, procs: int) -> dict:
    """Run ``procs`` processes of one implementation side by side; combine their figures (a run lasts as long as
    its slowest rank; RSS is the largest rank's)."""
    queue, barrier = ctx.Queue(), ctx.Barrier(procs)
    workers = [ctx.Process(target=run_impl, args=(impl, args, queue, r, procs, barrier)) for r in range(procs)]
    for w in workers:
        w.start()
    parts = []
    while len(parts) < procs:  # read before joining: the maps are too big for the pipe's buffer
        try:
            parts.append(queue.get(timeout=5))
        except Empty:
            if any(w.exitcode not in (None, 0) for w in workers):  # a rank that finished well exits 0
                sys.exit(f"a {impl} process failed; see its traceback above")
    for w in workers:
        w.join()
    parts.sort(key=lambda p: p["rank"])
    n = sum(p["n"] for p in parts)
    walls = [max(p["walls"][i] for p in parts) for i in range(args.repeat)]
    share = statistics.median(sum(p["forwards"][i] for p in parts) / sum(p["walls"][i] for p in parts)
                              for i in range(args.repeat))
    maps = [None] * n
    for p in parts:
        maps[p["rank"]::procs] = p["maps"]
    return {"procs": procs, "setup_s": max(p["setup_s"] for p in parts), "images_per_s": n / statistics.median(walls),
            "s_per_image": statistics.median(walls) / n, "forward_share": share,
            "passes": sum(p["passes"] for p in parts) / n, "mpixels": sum(p["pixels"] for p in parts) / n / 1e6,
            "rss_mb": max(p["rss_mb"] for p in parts), "maps": maps, "walls": walls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=("demo", "resnet38"), default="demo")
    parser.add_argument("--network", default="demo")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--data", default=None, help="VOC-layout folder (default: a generated synthetic split)")
    parser.add_argument("--list", default=None)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--side", type=int, default=128, help="resnet38 preset: image width")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=("fixed", "reference"), default="fixed",
                        help="the modes the straightforward implementation has (default: fixed)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="engine's forward_cam precision")
    parser.add_argument("--compile", action="store_true", help="engine: torch.compile forward_cam")
    parser.add_argument("--channels-last", action="store_true", help="engine: channels_last network and inputs")
    parser.add_argument("--impl", choices=("both", "engine", "naive"), default="both")
    parser.add_argument("--procs", type=int, default=1,
                        help="engine processes side by side, 1 torch thread each unless --threads (as torchrun "
                             "--nproc_per_node runs it); the straightforward one runs in one process, as the "
                             "authors' code does")
    args = parser.parse_args()
    if args.preset == "resnet38":
        args.images = min(args.images, 4)
        args.repeat = min(args.repeat, 2)
    ctx = mp.get_context("spawn")
    impls = ("naive", "engine") if args.impl == "both" else (args.impl,)
    results = {impl: run_ranks(ctx, impl, args, args.procs if impl == "engine" else 1) for impl in impls}
    print(f"preset {args.preset}, device {args.device}, mode {args.mode}, {args.images} images, "
          f"torch {torch.__version__}, {args.repeat} runs (median); engine: {args.precision}"
          f"{', compile' if args.compile else ''}{', channels_last' if args.channels_last else ''}")
    print(f"{'implementation':<16} {'procs':>5} {'setup s':>8} {'img/s':>8} {'s/img':>8} {'forward':>8} {'RSS MB':>8} {'passes':>7} "
          f"{'Mpx/img':>8}")
    for impl, r in results.items():
        print(f"{impl:<16} {r['procs']:5d} {r['setup_s']:8.2f} {r['images_per_s']:8.3f} {r['s_per_image']:8.3f} "
              f"{r['forward_share'] * 100:7.1f}% {r['rss_mb']:8.0f} {r['passes']:7.1f} {r['mpixels']:8.2f}")
    if len(results) == 2:
        a, b = results["naive"], results["engine"]
        diff = max(float(np.abs(x[c] - y[c]).max()) for x, y in zip(a["maps"], b["maps"]) for c in x)
        print(f"speed-up engine / straightforward: {b['images_per_s'] / a['images_per_s']:.2f}x; "
              f"max |diff| of the maps: {diff:.2e}")


if __name__ == "__main__":
    main()
