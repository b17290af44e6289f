"""Benchmark: the batched image views next to kornia's, on the CPU: speed and what they teach.

1. **Speed**: milliseconds per batch of two views (SimCLR's and BYOL's recipes) at 28, 96 and
   224 pixels, by the engine's batched views (``selfsup.views.image_ops``) and by kornia's
   augmentations as the engine used them until 2026-12-04 (``gpu.kornia_views``), timed in
   turn in this process.
2. **Training speed**: the engine's items/s (SimCLR) with each, alternated twice in this
   process, for the small CNN at 28 pixels (Fashion-MNIST) and ResNet-18 at 96 (photos).
3. **What they teach**: SimCLR with the small CNN on Fashion-MNIST for ``--minutes`` with
   each, every other option the same (seed included), then the linear probe and kNN on the
   official test split, next to raw pixels.

Usage:
    python benchmarks/views.py              # about 15 minutes on 2 cores; writes BENCHMARKS.md
    python benchmarks/views.py --smoke      # a minute, writes nothing
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from common import RUNS, load_average, write_section
from gpu import _engine_rate, fashion, kornia_views, photos
from selfsup.run import _machine
from selfsup.views.image import ImageViews, image_recipe

CASES = ((28, 1, 256), (96, 3, 64), (224, 3, 32))  # (side, channels, batch)


def views_of(kind: str, recipe: str, side: int, channels: int) -> ImageViews:
    """Two views of ``recipe``, built by the batched operations or by kornia's."""
    with kornia_views(kind == "kornia"):
        return ImageViews(image_recipe(recipe), side, channels)


def ms_per_batch(views: ImageViews, images: torch.Tensor, repeats: int) -> float:
    """Milliseconds per call after one untimed call."""
    views(images)
    started = time.perf_counter()
    for _ in range(repeats):
        views(images)
    return (time.perf_counter() - started) / repeats * 1000


def speed(args: argparse.Namespace) -> list[dict]:
    out = []
    for side, channels, batch in CASES[:1] if args.smoke else CASES:
        images = torch.rand(batch, channels, side, side)
        for recipe in ("simclr", "byol"):
            ms = {k: 0.0 for k in ("batched", "kornia")}
            for kind in ("batched", "kornia", "batched", "kornia"):
                ms[kind] += ms_per_batch(views_of(kind, recipe, side, channels), images, 3) / 2
            row = {"side": side, "batch": batch, "recipe": recipe, **ms}
            print(f"  {recipe} {side} px, batch {batch}: {ms}", flush=True)
            out.append(row)
    return out


def training_speed(args: argparse.Namespace) -> list[dict]:
    cases = [("small-cnn", 28, 256, 40), ("resnet18", 96, 64, 15)]
    if args.smoke:
        cases = [("small-cnn", 28, 32, 2)]
    out = []
    for backbone, side, batch, steps in cases:
        n = batch * (steps + 8)
        data = fashion(n) if side == 28 and not args.smoke else photos(n, side)
        rates: dict[str, list[float]] = {"batched": [], "kornia": []}
        for kind in ("batched", "kornia", "batched", "kornia"):
            with kornia_views(kind == "kornia"):
                rate, _ = _engine_rate(data, backbone, {}, side, batch, steps, "cpu")
            rates[kind].append(rate)
        out.append({"model": f"{backbone}@{side}", "batch": batch, **rates})
        print(f"  {backbone}@{side}: {rates}", flush=True)
    return out


def teach(args: argparse.Namespace) -> dict:
    import selfsup

    out = {}
    data = "digits" if args.smoke else "fashion-mnist"
    for kind in ("batched", "kornia"):
        with tempfile.TemporaryDirectory(dir=RUNS) as tmp:
            with kornia_views(kind == "kornia"):
                run = selfsup.pretrain(
                    data, method="simclr", time_budget=args.minutes, seed=0,
                    out=str(Path(tmp) / "run"), show_progress=False,
                )  # fmt: skip
            result = run.evaluate(data, protocols=("linear", "knn"), save=False)
        rows = {row.protocol: row for row in result.rows}
        out[kind] = {
            "items_per_s": run.summary["items_per_second"],
            "epochs": run.summary["epochs"],
            **{p: rows[p].selfsup for p in ("linear", "knn")},
            **{f"raw {p}": rows[p].raw for p in ("linear", "knn")},
        }
        print(f"  {kind}: {out[kind]}", flush=True)
    return out


def report(speeds: list[dict], rates: list[dict], taught: dict, meta: dict) -> str:
    lines = [
        "## Image views: batched operations next to kornia's (benchmarks/views.py)",
        "",
        f"On {meta['machine']}, {meta['threads']} threads; load before "
        f"{meta['load']}; {meta['minutes']:.1f} minutes. Reproduce: "
        f"`python benchmarks/views.py --minutes {meta['args_minutes']:g}`.",
        "",
        "Milliseconds per batch for two views, each way timed twice in turn:",
        "",
        "| recipe | side (batch) | batched | kornia's | kornia's / batched |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in speeds:
        lines.append(
            f"| {r['recipe']} | {r['side']} ({r['batch']}) | {r['batched']:.1f} | "
            f"{r['kornia']:.1f} | {r['kornia'] / r['batched']:.2f} |"
        )
    lines += [
        "",
        "Engine items/s (SimCLR), each way twice, alternated in one process:",
        "",
        "| model (batch) | batched | kornia's | batched / kornia's |",
        "| --- | --- | --- | --- |",
    ]
    for r in rates:
        lines.append(
            f"| {r['model']} ({r['batch']}) | "
            + " / ".join(f"{v:,.1f}" for v in r["batched"])
            + " | "
            + " / ".join(f"{v:,.1f}" for v in r["kornia"])
            + f" | {sum(r['batched']) / sum(r['kornia']):.2f} |"
        )
    b, k = taught["batched"], taught["kornia"]
    lines += [
        "",
        f"SimCLR, small CNN, {meta['data']}, {meta['args_minutes']:g} minutes each, seed 0, one "
        "after the other (their images/s differ by the machine's drift as much as by the "
        "views: the table above is the speed comparison), test split accuracy:",
        "",
        "| views | images/s | epochs | linear probe | kNN |",
        "| --- | --- | --- | --- | --- |",
        f"| batched | {b['items_per_s']:,.0f} | {b['epochs']} | {b['linear']:.4f} | "
        f"{b['knn']:.4f} |",
        f"| kornia's | {k['items_per_s']:,.0f} | {k['epochs']} | {k['linear']:.4f} | "
        f"{k['knn']:.4f} |",
        f"| raw pixels | | | {b['raw linear']:.4f} | {b['raw knn']:.4f} |",
        "",
        "Reading: on a CPU the views are a small part of a training step, so faster views do "
        "not show in the engine's speed (second table); where they count is a GPU, whose "
        'step they dominated ("The GPU path"). Training with either teaches the same, '
        "within one seed's spread.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="pretraining per way")
    parser.add_argument("--smoke", action="store_true", help="tiny, writes nothing")
    args = parser.parse_args()
    if args.smoke:
        args.minutes = 0.1
    RUNS.mkdir(parents=True, exist_ok=True)
    load, started = load_average(), time.perf_counter()
    speeds = speed(args)
    rates = training_speed(args)
    taught = teach(args)
    meta = {
        "machine": _machine(),
        "threads": torch.get_num_threads(),
        "load": load,
        "minutes": (time.perf_counter() - started) / 60,
        "args_minutes": args.minutes,
        "data": "digits" if args.smoke else "Fashion-MNIST",
    }
    text = report(speeds, rates, taught, meta)
    print(text)
    if not args.smoke:
        write_section("views", text)


if __name__ == "__main__":
    main()
