"""Benchmark: how fast the engine trains, next to plain PyTorch loops of the same model.

For each model, in one process and one after the other (nothing else running):

1. **plain fp32**: a loop a PyTorch user would write: the same SimCLR model (encoder,
   projection head, loss), the same kornia views and the same AdamW, fp32, eager;
2. **plain bf16 + channels-last**: the same loop under ``torch.autocast(bfloat16)`` with the
   model and views in channels-last memory;
3. **engine**: ``selfsup.pretrain`` with its defaults (precision ``auto``: bf16 where the
   processor has bf16 instructions, else fp32), same data, batch and steps;
4. **engine --compile**: the same with ``compile=True``;

and the model's FLOPs per step (``torch.utils.flop_counter``: forward and backward of both
views, fp32) turned into FLOP/s for each, as a share of the peak of a 2048x2048 matrix product
timed in the same run, in bf16 and in fp32 (the processor's practical peaks).

Each measure skips the first steps (oneDNN's first calls, compilation) and times the next
ones for about ``--seconds``; the engine's are read from its ``metrics.csv`` (one row per
step, training seconds only: no monitoring, no checkpoints).

Models (real pixels: Fashion-MNIST at 28; crops of the scikit-learn sample photos and
Debian's gnome-backgrounds wallpapers, resized, at 64 and 96):

    small-cnn@28 (batch 256), resnet18@64 (batch 64), resnet18@96 (64), vit-tiny@96 (64)

Usage:
    python benchmarks/throughput.py                      # every model, ~20 s a measure
    python benchmarks/throughput.py --models resnet18@96 --seconds 10
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from common import RUNS, load_average, write_section
from photos import _sources
from selfsup.engine.optim import BASE_LR, BASE_WEIGHT_DECAY, build_optimizer
from selfsup.methods import build_method
from selfsup.modalities.image import build_image_encoder, method_views
from selfsup.run import _machine
from shards import _images

#: Steps before timing starts (the first oneDNN calls; compilation needs more).
WARMUP = 2
COMPILE_WARMUP = 3


@dataclass(frozen=True)
class Model:
    """A benchmarked model: backbone, side, channels, batch."""

    name: str
    backbone: str
    side: int
    channels: int
    batch: int


MODELS = {
    m.name: m
    for m in (
        Model("small-cnn@28", "small-cnn", 28, 1, 256),
        Model("resnet18@64", "resnet18", 64, 3, 64),
        Model("resnet18@96", "resnet18", 96, 3, 64),
        Model("vit-tiny@96", "vit-tiny", 96, 3, 64),
    )
}


def images(model: Model, n: int, seed: int = 0) -> np.ndarray:
    """``n`` real images of the model's side, uint8: Fashion-MNIST (gray) or photo crops."""
    if model.channels == 1:
        x, _ = _images()
        return np.ascontiguousarray(x[:n])
    sources = _sources()
    rng = np.random.default_rng(seed)
    out = np.empty((n, model.side, model.side, 3), np.uint8)
    for i in range(n):
        image = sources[int(rng.integers(len(sources)))]
        w, h = image.size
        side = int(min(w, h) * rng.uniform(0.2, 1.0))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = image.crop((left, top, left + side, top + side))
        out[i] = np.asarray(crop.resize((model.side, model.side), Image.Resampling.BILINEAR))
    return out


def build(model: Model) -> tuple[torch.nn.Module, torch.nn.Module, torch.optim.Optimizer]:
    """SimCLR around the model, its views and its optimizer, as the engine builds them."""
    torch.manual_seed(0)
    encoder = build_image_encoder(model.backbone, model.channels, model.side)
    method = build_method("simclr", encoder)
    views, _ = method_views(method, model.side, model.channels)
    lr = BASE_LR["adamw"] * model.batch / 256
    return method, views, build_optimizer("adamw", method, lr, BASE_WEIGHT_DECAY["adamw"])


def to_float(batch: np.ndarray) -> torch.Tensor:
    """uint8 images (n, H, W[, C]) as float (n, C, H, W) in [0, 1]."""
    x = torch.from_numpy(batch)
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.float().div_(255)


def plain_step(
    method: torch.nn.Module, views: torch.nn.Module, opt: torch.optim.Optimizer, fast: bool
) -> Callable[[np.ndarray], float]:
    """One step of the plain loop: views, loss, backward, AdamW; bf16 + channels-last when
    ``fast``."""

    def step(batch: np.ndarray) -> float:
        inputs = views(to_float(batch))
        if fast:
            inputs = [v.contiguous(memory_format=torch.channels_last) for v in inputs]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            loss = method(inputs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    return step


def time_loop(step: Callable[[np.ndarray], float], data: np.ndarray, batch: int, seconds: float):
    """Items/s of ``step`` after ``WARMUP`` steps, over at least 3 steps and ``seconds``."""
    rng = np.random.default_rng(1)

    def draw() -> np.ndarray:
        return data[np.sort(rng.choice(len(data), batch, replace=False))]

    for _ in range(WARMUP):
        step(draw())
    steps, started = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - started < seconds:
        loss = step(draw())
        steps += 1
    elapsed = time.perf_counter() - started
    if not math.isfinite(loss):
        sys.exit(f"the plain loop's loss became {loss}")
    return steps * batch / elapsed, steps


def step_flops(model: Model) -> int:
    """FLOPs of one training step's forward and backward (both views), fp32."""
    method, views, _ = build(model)
    x = views(to_float(images(model, model.batch)))
    with FlopCounterMode(display=False) as counter:
        method(x).backward()
    return counter.get_total_flops()


def matmul_peak(dtype: torch.dtype, seconds: float = 3.0) -> float:
    """FLOP/s of a 2048x2048 matrix product in ``dtype``."""
    a = torch.randn(2048, 2048).to(dtype)
    b = torch.randn(2048, 2048).to(dtype)
    for _ in range(2):
        a @ b
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        n += 1
    return n * 2 * 2048**3 / (time.perf_counter() - started)


def engine(model: Model, data: np.ndarray, steps: int, compile: bool, out: Path) -> dict:
    """Items/s of ``selfsup.pretrain`` (defaults but batch, steps) after its first steps."""
    import selfsup

    warm = COMPILE_WARMUP if compile else WARMUP
    run = selfsup.pretrain(
        data,
        method="simclr",
        backbone=model.backbone,
        batch_size=model.batch,
        steps=warm + steps,
        log_every=1,
        compile=compile,
        out=str(out),
        overwrite=True,
        show_progress=False,
    )
    with (out / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("train_seconds")]
    first, last = rows[warm - 1], rows[-1]
    seconds = float(last["train_seconds"]) - float(first["train_seconds"])
    timed = int(last["step"]) - int(first["step"])
    return {
        "items_per_s": timed * model.batch / seconds,
        "steps": timed,
        "precision": run.summary["precision"],
    }


def measure(model: Model, seconds: float, skip: set[str]) -> dict:
    """Every variant for one model."""
    result: dict = {"model": model.name, "batch": model.batch}
    started = time.perf_counter()
    flops = step_flops(model)
    result["gflop_per_item"] = flops / model.batch / 1e9
    monitor = 2048  # the engine holds out this many items to monitor training
    for name, fast in (("plain_fp32", False), ("plain_bf16_cl", True)):
        if name in skip:
            continue
        method, views, opt = build(model)
        if fast:
            method = method.to(memory_format=torch.channels_last)
        data = images(model, 4 * model.batch, seed=1)
        rate, steps = time_loop(plain_step(method, views, opt, fast), data, model.batch, seconds)
        result[name] = {"items_per_s": rate, "steps": steps}
        print(f"  {model.name} {name}: {rate:.1f} items/s ({steps} steps)", flush=True)
    fp32 = result.get("plain_fp32", {}).get("items_per_s")
    for name, compiled in (("engine", False), ("engine_compile", True)):
        if name in skip:
            continue
        pace = fp32 or 50.0
        steps = max(3, math.ceil(seconds * pace / model.batch))
        warm = COMPILE_WARMUP if compiled else WARMUP
        data = images(model, monitor + model.batch * (steps + warm + 1), seed=2)
        with tempfile.TemporaryDirectory(dir=RUNS) as tmp:
            result[name] = engine(model, data, steps, compiled, Path(tmp) / "run")
        print(f"  {model.name} {name}: {result[name]['items_per_s']:.1f} items/s", flush=True)
    for key in ("plain_fp32", "plain_bf16_cl", "engine", "engine_compile"):
        if key in result:
            result[key]["tflops"] = result[key]["items_per_s"] * flops / model.batch / 1e12
    result["seconds"] = time.perf_counter() - started
    return result


def _cell(result: dict, key: str) -> str:
    return f"{result[key]['items_per_s']:.1f}" if key in result else "-"


def report(results: list[dict], peaks: dict[str, float], meta: dict) -> str:
    """The BENCHMARKS.md section."""
    best_peak = max(peaks.values())
    lines = [
        "## Training speed: the engine next to plain PyTorch loops",
        "",
        f"`python benchmarks/throughput.py` on {meta['machine']}, {meta['threads']} threads, "
        f"torch {torch.__version__} ({meta['capability']}), load average before "
        f"{meta['load']}, {meta['minutes']:.1f} minutes. SimCLR (two views, projection head, "
        "AdamW) on real pixels; items/s after the first steps (compilation and first oneDNN "
        "calls excluded). Matrix-product peak (2048x2048, same run): "
        f"bf16 {peaks['bf16'] / 1e12:.3f} TFLOP/s, fp32 {peaks['fp32'] / 1e12:.3f} TFLOP/s.",
        "",
        "| model (batch) | GFLOP/item | plain fp32 | plain bf16 + channels-last | engine "
        "(defaults) | engine --compile | engine / plain fp32 | engine / best plain | "
        "engine TFLOP/s (% of best peak) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        plains = [r[k]["items_per_s"] for k in ("plain_fp32", "plain_bf16_cl") if k in r]
        eng = r.get("engine")
        ratio_fp32 = (
            f"{eng['items_per_s'] / r['plain_fp32']['items_per_s']:.2f}x"
            if eng and "plain_fp32" in r
            else "-"
        )
        ratio_best = f"{eng['items_per_s'] / max(plains):.2f}x" if eng and plains else "-"
        flops = (
            f"{eng['tflops']:.3f} ({100 * eng['tflops'] * 1e12 / best_peak:.0f}%)" if eng else "-"
        )
        lines.append(
            f"| {r['model']} ({r['batch']}) | {r['gflop_per_item']:.2f} | "
            f"{_cell(r, 'plain_fp32')} | {_cell(r, 'plain_bf16_cl')} | "
            f"{_cell(r, 'engine')}"
            + (f" ({eng['precision']})" if eng else "")
            + f" | {_cell(r, 'engine_compile')} | {ratio_fp32} | {ratio_best} | {flops} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds a measure")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["plain_fp32", "plain_bf16_cl", "engine", "engine_compile"],
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    load = load_average()
    started = time.perf_counter()
    peaks = {"bf16": matmul_peak(torch.bfloat16), "fp32": matmul_peak(torch.float32)}
    print(
        f"matmul peak: bf16 {peaks['bf16'] / 1e12:.3f}, fp32 {peaks['fp32'] / 1e12:.3f} TFLOP/s",
        flush=True,
    )
    results = [measure(MODELS[name], args.seconds, set(args.skip)) for name in args.models]
    meta = {
        "machine": _machine(),
        "threads": torch.get_num_threads(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "load": load,
        "minutes": (time.perf_counter() - started) / 60,
    }
    out = RUNS / "throughput.json"
    out.write_text(json.dumps({"peaks": peaks, "results": results, **meta}, indent=1))
    text = report(results, peaks, meta)
    print(text)
    if not args.no_write:
        write_section("throughput", text)


if __name__ == "__main__":
    main()
