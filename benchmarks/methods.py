"""Benchmark: every method on Fashion-MNIST under one time budget, next to raw pixels.

Each method pretrains on the 60k training images (labels unused; 2,048 of them held out for the
label-free monitor) for the same number of minutes of training, keeping every epoch's
encoder, then is evaluated on the official 10k test split with kNN, linear probe and 10-shot
logistic regression, next to the same protocols on raw pixels computed in the same run.
Training throughput is also measured in fp32 and bf16. Results go to BENCHMARKS.md; each
method's result is cached in its run folder (``runs/bench/<method>/bench.json``) so an
interrupted benchmark continues where it stopped (``--fresh`` retrains).

Usage:
    python benchmarks/methods.py                   # 10 minutes per method (about 2.5 hours)
    python benchmarks/methods.py --minutes 2 --methods simclr,dino --runs /tmp/b
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from common import (
    ALL_METHODS,
    RUNS,
    load_average,
    pretrain_options,
    protocol_cells,
    write_section,
)
from selfsup.methods import build_method
from selfsup.modalities.image import build_image_encoder, method_views
from selfsup.run import _machine, pretrain


def throughput(name: str, precision: str, steps: int = 10, batch_size: int = 256) -> float:
    """Training images per second of one method (views, forward, backward, step) on this CPU."""
    torch.manual_seed(0)
    options = pretrain_options(name)
    encoder = build_image_encoder(
        options.get("backbone", "small-cnn"), 1, 28, **options.get("backbone_options", {})
    )
    method = build_method(name, encoder, **options.get("method_options", {}))
    method = method.to(memory_format=torch.channels_last)
    views, _ = method_views(method, 28, 1, **options["views"])
    optimizer = torch.optim.AdamW(method.parameters(), lr=1e-4)
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


def bench_method(name: str, data: str, minutes: float, runs: Path, fresh: bool) -> dict:
    """Train and evaluate one method, or read its cached result."""
    folder = runs / name
    cached = folder / "bench.json"
    if cached.exists() and not fresh:
        result = json.loads(cached.read_text())
        same = (result["minutes"], result["data"], result.get("options"))
        if same == (minutes, data, json.loads(json.dumps(pretrain_options(name)))):
            print(f"{name}: cached result from {cached}", flush=True)
            return result
    if folder.exists():
        shutil.rmtree(folder)
    speed = {p: throughput(name, p) for p in ("fp32", "bf16")}
    load_before = load_average()
    run = pretrain(
        data,
        method=name,
        time_budget=minutes,
        out=str(folder),
        keep_checkpoints=True,
        show_progress=False,
        **pretrain_options(name),
    )
    evaluation = run.evaluate(data)
    result = {
        "method": name,
        "data": data,
        "minutes": minutes,
        "options": pretrain_options(name),
        "summary": run.summary,
        "evaluation": evaluation.to_dict(),
        "speed": speed,
        "load_before": load_before,
    }
    cached.write_text(json.dumps(result, indent=2))
    scores = {r["protocol"]: round(r["selfsup"], 4) for r in result["evaluation"]["rows"]}
    print(f"{name}: {json.dumps(scores)}", flush=True)
    return result


def table(results: list[dict], minutes: float, data: str, seconds: float) -> str:
    """The BENCHMARKS.md section: one row per method, then raw pixels."""
    lines = [
        "## Methods on Fashion-MNIST under one training budget",
        "",
        f"Each method pretrains on the {data} training split (60,000 images less 2,048 held out "
        f"for the label-free monitor; labels unused) for {minutes:g} minutes of training with "
        "the demo's data recipe (batch 256, AdamW, warmup + cosine fitted to the budget, crops "
        "of 25-100% area, flips, brightness/contrast jitter). Convolutional methods use the "
        "small CNN with heads of 1024 where the method has them; MAE and I-JEPA use a 6-block "
        "ViT-Tiny on 4x4 patches with fixed sin-cos position embeddings (as their papers) at "
        "learning rate 3e-4 (I-JEPA 6e-4), their feature the mean-pooled tokens "
        "of each of the last 4 blocks, concatenated (768-d; DINO's linear evaluation of "
        "ViTs). I-JEPA keeps its context encoder (EMA from 0.99): the EMA target encoder, "
        "which its paper evaluates, lags behind in so short a run. Each is then evaluated on the "
        "official 10,000 test images: kNN (k=20, cosine, temperature-weighted votes), linear "
        "probe (logistic regression on standardized embeddings, weight decay chosen on a "
        "validation split of the train labels) and 10 labels per class (5 draws, mean ± 95% "
        "CI). The raw-pixel baseline is the same protocols on the 784 pixels, in the same run.",
        "",
        "| method | linear probe | kNN | 10-shot | beats raw (linear) | epochs | training s "
        "| images/s in run | images/s fp32 | images/s bf16 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        rows = {row["protocol"]: row for row in r["evaluation"]["rows"]}
        s = r["summary"]
        lines.append(
            f"| {r['method']} | " + " | ".join(protocol_cells(r["evaluation"]))
            + f" | {'yes' if rows['linear']['selfsup'] > rows['linear']['raw'] else 'NO'} "
            f"| {s['items_seen'] / s['items']:.1f} | {s['train_seconds']:.0f} "
            f"| {s['items_per_second']:.0f} | {r['speed']['fp32']:.0f} "
            f"| {r['speed']['bf16']:.0f} |"
        )  # fmt: skip
    work = sum(r["summary"]["train_seconds"] + r["evaluation"]["seconds"] for r in results)
    lines += [
        "| raw pixels | "
        + " | ".join(protocol_cells(results[0]["evaluation"], "raw"))
        + " | | | | | | |",
        "",
        "images/s counts training images (each seen as two or more views) through "
        "augmentation, forward, backward and optimizer step; the fp32/bf16 columns time 10 "
        "steps of batch 256 outside the run.",
        "",
        f"Machine: {_machine()}; load average before each run: "
        + "; ".join(f"{r['method']} {r['load_before']}" for r in results)
        + f". Training and evaluation of all methods: {work / 60:.0f} minutes (this "
        f"invocation: {seconds / 60:.0f} minutes; methods cached by an earlier one are not "
        "retrained). The load average includes the benchmark's own process (2 threads); "
        "nothing else ran.",
        "",
        f"Reproduce: `make bench` (or `python benchmarks/methods.py --minutes {minutes:g}`).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per method")
    parser.add_argument("--methods", default=",".join(ALL_METHODS))
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--runs", default=str(RUNS))
    parser.add_argument("--fresh", action="store_true", help="retrain cached methods")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()

    started = time.time()
    results = [
        bench_method(name, args.data, args.minutes, Path(args.runs), args.fresh)
        for name in args.methods.split(",")
    ]
    text = table(results, args.minutes, args.data, time.time() - started)
    print(text)
    if not args.no_write:
        write_section("methods", text)


if __name__ == "__main__":
    main()
