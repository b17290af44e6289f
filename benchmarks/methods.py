"""Benchmark: SimCLR, BYOL, VICReg and Barlow Twins on Fashion-MNIST under one time budget.

Each method is pretrained on the 60k training images (labels unused) for the same number of
minutes of training, then evaluated on the official 10k test split with kNN, linear probe and
10-shot logistic regression, next to the same protocols on raw pixels computed in the same run.
Training throughput is also measured in fp32 and bf16. Results go to BENCHMARKS.md.

Usage:
    python benchmarks/methods.py                   # 10 minutes per method (about 50 minutes)
    python benchmarks/methods.py --minutes 2 --methods simclr,vicreg --out /tmp/bench.md
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from selfsup.demo import DEMO_OPTIONS
from selfsup.encoder import Encoder
from selfsup.methods import build_method
from selfsup.run import _machine, pretrain
from selfsup.views import ImageViews, image_recipe

ROOT = Path(__file__).resolve().parent.parent


def throughput(method_name: str, precision: str, steps: int = 20, batch_size: int = 256) -> float:
    """Training images per second of one method (views, forward, backward, step) on this CPU."""
    torch.manual_seed(0)
    encoder = Encoder.build("small-cnn", 1, 28)
    method = build_method(method_name, encoder, **DEMO_OPTIONS["method_options"]).to(
        memory_format=torch.channels_last
    )
    recipe = image_recipe(method.view_recipe).with_options(**DEMO_OPTIONS["views"])
    views = ImageViews(recipe, 28, 1)
    optimizer = torch.optim.AdamW(method.parameters(), lr=1e-3)
    x = torch.rand(batch_size, 1, 28, 28)

    def step() -> None:
        inputs = [v.contiguous(memory_format=torch.channels_last) for v in views(x)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = method(inputs)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.on_step_end(0.5)

    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per method")
    parser.add_argument("--methods", default="simclr,byol,vicreg,barlowtwins")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--runs", default=str(ROOT / "runs" / "bench"))
    args = parser.parse_args()

    started = time.time()
    load_before = os.getloadavg()
    rows, raw = [], None
    for name in args.methods.split(","):
        speed = {p: throughput(name, p) for p in ("fp32", "bf16")}
        run = pretrain(
            args.data,
            method=name,
            time_budget=args.minutes,
            out=f"{args.runs}/{name}",
            show_progress=False,
            **DEMO_OPTIONS,
        )
        result = run.evaluate(args.data)
        scores = {r.protocol: r for r in result.rows}
        raw = raw or scores
        rows.append((name, run.summary, scores, speed))
        print(name, json.dumps({k: round(v.selfsup, 4) for k, v in scores.items()}), flush=True)

    lines = [
        "# Benchmarks",
        "",
        "## Methods on Fashion-MNIST under one training budget",
        "",
        f"Each method pretrains on the {args.data} training split (60,000 images, labels unused) "
        f"for {args.minutes:g} minutes of training, with the demo's recipe (small CNN, batch 256, "
        "AdamW, warmup + cosine fitted to the budget, crops of 25-100% area, flips, brightness/"
        "contrast jitter; projection heads of 1024). It is then evaluated on the official 10,000 "
        "test images: kNN (k=20, cosine, temperature-weighted votes), linear probe (logistic "
        "regression on standardized embeddings, weight decay chosen on a validation split of the "
        "train labels) and 10 labels per class (5 draws, mean ± 95% CI). The raw-pixel baseline "
        "is the same protocols on the 784 pixels, computed in the same run.",
        "",
        "| method | linear probe | kNN | 10-shot | epochs | training s | images/s in run "
        "| images/s fp32 | images/s bf16 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, s, scores, speed in rows:
        shot = scores["fewshot-10"]
        lines.append(
            f"| {name} | {scores['linear'].selfsup:.4f} | {scores['knn'].selfsup:.4f} | "
            f"{shot.selfsup:.4f} ± {shot.detail['ci95_selfsup']:.4f} | "
            f"{s['items_seen'] / s['items']:.1f} | {s['train_seconds']:.0f} | "
            f"{s['items_per_second']:.0f} | {speed['fp32']:.0f} | {speed['bf16']:.0f} |"
        )
    shot = raw["fewshot-10"]
    lines += [
        f"| raw pixels | {raw['linear'].raw:.4f} | {raw['knn'].raw:.4f} | "
        f"{shot.raw:.4f} ± {shot.detail['ci95_raw']:.4f} | | | | | |",
        "",
        "images/s counts training images (each seen as two views) through augmentation, forward, "
        "backward and optimizer step; the fp32/bf16 columns time 20 steps of batch 256 outside "
        "the run.",
        "",
        f"Machine: {_machine()}. Load average before the run: "
        f"{', '.join(f'{x:.2f}' for x in load_before)} (nothing else running). "
        f"Whole benchmark: {(time.time() - started) / 60:.0f} minutes.",
        "",
        f"Reproduce: `make bench` (or `python benchmarks/methods.py --minutes {args.minutes:g}`).",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
