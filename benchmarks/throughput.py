"""Benchmark: how fast the engine trains, next to plain PyTorch loops of the same model.

For each model, one after the other (nothing else running; the plain loops in this process,
each engine run in a fresh one, as a user's run is):

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

Where the processor emulates bf16 (no AVX512-BF16 or AMX: a bf16 step takes about 12 times an
fp32 one) the bf16 loop is skipped for models whose step would take over a minute.

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
import multiprocessing
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
from selfsup.core.precision import cpu_has_fast_bf16
from selfsup.engine.optim import BASE_LR, BASE_WEIGHT_DECAY, build_optimizer
from selfsup.methods import build_method
from selfsup.modalities.image import build_image_encoder, method_views
from selfsup.run import _machine
from shards import _images

#: Steps before timing starts (the first oneDNN calls; compilation needs more).
WARMUP = 3
COMPILE_WARMUP = 4
#: A plain bf16 loop is skipped where the processor emulates bf16 and a step would take over
#: this many seconds (about 12 times the fp32 step measured here: ResNet-18 at 64 pixels would
#: take 5 minutes a step).
EMULATED_STEP_LIMIT = 60.0
#: How much slower a bf16 step is than an fp32 one where bf16 is emulated (small CNN, measured).
EMULATED_SLOWDOWN = 12.0
VARIANTS = ("plain_fp32", "plain_bf16_cl", "engine", "engine_compile")


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
    method: torch.nn.Module,
    views: torch.nn.Module,
    opt: torch.optim.Optimizer,
    bf16: bool = False,
    channels_last: bool = False,
) -> Callable[[np.ndarray], float]:
    """One step of the plain loop: views, loss, backward, AdamW; under bf16 autocast and
    with channels-last views as asked."""

    def step(batch: np.ndarray) -> float:
        inputs = views(to_float(batch))
        if channels_last:
            inputs = [v.contiguous(memory_format=torch.channels_last) for v in inputs]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = method(inputs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def time_loop(
    step: Callable[[np.ndarray], float], data: np.ndarray, batch: int, seconds: float
) -> tuple[float, int]:
    """Items/s of ``step`` after ``WARMUP`` steps, over ``seconds`` and at least 3 steps (a
    loop whose first step alone takes ``seconds``: one warm-up step and 2 timed)."""
    rng = np.random.default_rng(1)

    def draw() -> np.ndarray:
        return data[np.sort(rng.choice(len(data), batch, replace=False))]

    started = time.perf_counter()
    step(draw())
    slow = time.perf_counter() - started > seconds
    for _ in range(0 if slow else WARMUP - 1):
        step(draw())
    steps, started = 0, time.perf_counter()
    while steps < (2 if slow else 3) or time.perf_counter() - started < seconds:
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


def matmul_peak(dtype: torch.dtype, seconds: float = 3.0) -> tuple[float, int]:
    """FLOP/s of a 2048x2048 matrix product in ``dtype``, and the side timed: 512 instead
    where the processor emulates ``dtype`` (bf16 without AVX512-BF16 or AMX runs hundreds of
    times slower, and one 2048 product would take a minute)."""
    side = 2048
    small = torch.randn(512, 512).to(dtype)
    started = time.perf_counter()
    small @ small
    if time.perf_counter() - started > 0.05:
        side = 512
    a = torch.randn(side, side).to(dtype)
    b = torch.randn(side, side).to(dtype)
    a @ b
    best = 0.0
    for _ in range(3):  # the best of three rounds: the clock varies from second to second
        n, started = 0, time.perf_counter()
        while n < 2 or time.perf_counter() - started < seconds / 3:
            a @ b
            n += 1
        best = max(best, n * 2 * side**3 / (time.perf_counter() - started))
    return best, side


def engine(model: Model, data: np.ndarray, steps: int, compile: bool, out: Path) -> dict:
    """Items/s of ``selfsup.pretrain`` (defaults but batch, steps) after its first steps, in
    a process of its own: the engine tunes the C allocator (glibc's, see
    :func:`selfsup.core.memory.steps_reuse_memory`), which the plain loops measured after it
    in this process must not inherit."""
    images_file = out.parent / "images.npy"
    np.save(images_file, data)
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(1) as pool:
        return pool.apply(_engine_alone, (model, images_file, steps, compile, out))


def _engine_alone(model: Model, images_file: Path, steps: int, compile: bool, out: Path) -> dict:
    """:func:`engine`'s measure, in the spawned process."""
    import selfsup

    data = np.load(images_file, allow_pickle=False)
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
    # The processor's speed drifts by a quarter from minute to minute on a shared machine:
    # the fp32 peak is measured again next to each model, and the best reading counts.
    result["fp32_peak"] = matmul_peak(torch.float32)[0]
    flops = step_flops(model)
    result["gflop_per_item"] = flops / model.batch / 1e9
    monitor = 2048  # the engine holds out this many items to monitor training
    for name, fast in (("plain_fp32", False), ("plain_bf16_cl", True)):
        if name in skip:
            continue
        if fast and not cpu_has_fast_bf16() and "plain_fp32" in result:
            step_s = model.batch / result["plain_fp32"]["items_per_s"]
            if step_s * EMULATED_SLOWDOWN > EMULATED_STEP_LIMIT:
                result["bf16_skipped"] = step_s * EMULATED_SLOWDOWN
                print(f"  {model.name} {name}: skipped (bf16 emulated here)", flush=True)
                continue
        method, views, opt = build(model)
        if fast:
            method = method.to(memory_format=torch.channels_last)
        data = images(model, 4 * model.batch, seed=1)
        step = plain_step(method, views, opt, bf16=fast, channels_last=fast)
        rate, steps = time_loop(step, data, model.batch, seconds)
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
    for key in VARIANTS:
        if key in result:
            result[key]["tflops"] = result[key]["items_per_s"] * flops / model.batch / 1e12
    result["seconds"] = time.perf_counter() - started
    return result


def profile(model: Model) -> dict[str, float]:
    """Shares of one fp32 channels-last step's time (the engine's default here) by operator
    kind, from ``torch.profiler``: convolution forward and backward, matrix products, batch
    norm, everything else."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    method, views, opt = build(model)
    method = method.to(memory_format=torch.channels_last)
    step = plain_step(method, views, opt, channels_last=True)
    data = images(model, model.batch, seed=1)
    for _ in range(WARMUP):
        step(data)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        step(data)
    kinds = {
        "convolution backward": ("convolution_backward",),
        "convolution forward": ("mkldnn_convolution", "_convolution"),
        "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear"),
        "batch norm": ("batch_norm",),
    }
    shares = dict.fromkeys([*kinds, "other"], 0.0)
    total = 0.0
    for event in prof.key_averages():
        total += event.self_cpu_time_total
        kind = next((k for k, names in kinds.items() if any(n in event.key for n in names)), None)
        shares[kind or "other"] += event.self_cpu_time_total
    return {k: v / total for k, v in shares.items()}


def _share(variant: dict, peak: float) -> str:
    return f"{variant['tflops'] * 1e3:.0f} ({100 * variant['tflops'] * 1e12 / peak:.0f}%)"


def _cell(result: dict, key: str) -> str:
    if key == "plain_bf16_cl" and "bf16_skipped" in result:
        return f"skipped (~{result['bf16_skipped']:.0f} s a step)"
    return f"{result[key]['items_per_s']:.1f}" if key in result else "-"


def report(results: list[dict], peaks: dict[str, float], meta: dict) -> str:
    """The BENCHMARKS.md section."""
    best_peak = max(*peaks.values(), *(r["fp32_peak"] for r in results))
    lines = [
        "## Training speed: the engine next to plain PyTorch loops",
        "",
        f"`python benchmarks/throughput.py` on {meta['machine']}, {meta['threads']} threads, "
        f"{meta['capability']}, load average before "
        f"{meta['load']}, {meta['minutes']:.1f} minutes. SimCLR (two views, projection head, "
        "AdamW) on real pixels; items/s after the first steps (compilation and first oneDNN "
        "calls excluded). Matrix-product peaks (2048x2048, same run): "
        f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s"
        + (" (at 512x512: emulated here)" if meta["bf16_side"] != 2048 else "")
        + f", fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s at the start and "
        + ", ".join(f"{r['fp32_peak'] / 1e9:.0f}" for r in results)
        + " before each model (the machine's speed drifts); the best of these is the peak "
        "the model's FLOP/s are a share of (what the processor can do).",
        "",
        "| model (batch) | GFLOP/item | plain fp32 | plain bf16 + channels-last | engine "
        "(defaults) | engine --compile | engine / plain fp32 | engine / best plain | "
        "engine GFLOP/s (% of peak) | best GFLOP/s (% of peak) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
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
        flops = _share(eng, best_peak) if eng else "-"
        variants = [r[k] for k in VARIANTS if k in r]
        best = _share(max(variants, key=lambda v: v["tflops"]), best_peak) if variants else "-"
        lines.append(
            f"| {r['model']} ({r['batch']}) | {r['gflop_per_item']:.2f} | "
            f"{_cell(r, 'plain_fp32')} | {_cell(r, 'plain_bf16_cl')} | "
            f"{_cell(r, 'engine')}"
            + (f" ({eng['precision']})" if eng else "")
            + f" | {_cell(r, 'engine_compile')} | {ratio_fp32} | {ratio_best} | {flops} | {best} |"
        )
    lines += [
        "",
        "The same configuration measured up to a quarter faster or slower from one run to the "
        "next on this shared machine (the fp32 peak readings above drift as much): read the "
        "ratios within one run.",
        "",
        *verdict(results, best_peak, max(peaks["fp32"], *(r["fp32_peak"] for r in results))),
    ]
    return "\n".join(lines) + "\n"


def verdict(results: list[dict], peak: float, fp32_peak: float) -> list[str]:
    """The issue's targets, each met or missed with its figures; ``peak`` is the best
    matrix-product peak (bf16 where the processor has bf16 instructions), ``fp32_peak`` the
    best fp32 one."""
    measured = [r for r in results if "engine" in r and "plain_fp32" in r]
    vs_fp32 = [r["engine"]["items_per_s"] / r["plain_fp32"]["items_per_s"] for r in measured]
    vs_best = [
        r["engine"]["items_per_s"]
        / max(r[k]["items_per_s"] for k in ("plain_fp32", "plain_bf16_cl") if k in r)
        for r in measured
    ]
    shares = {
        r["model"]: r["engine"]["tflops"] * 1e12 / peak
        for r in measured
        if r["model"] in ("resnet18@96", "vit-tiny@96")
    }
    lines = []
    if vs_fp32:
        met = "met" if min(vs_fp32) >= 2 else "missed"
        plain = [r["plain_fp32"]["tflops"] * 1e12 / fp32_peak for r in measured]
        needed = [2 * r["plain_fp32"]["tflops"] * 1e12 / peak for r in measured]
        engine = [r["engine"]["tflops"] * 1e12 / peak for r in measured]
        if peak > fp32_peak:
            why = (
                f"bf16 matrix products run {peak / fp32_peak:.1f}x as fast as fp32 here, so "
                f"twice its speed needs {100 * min(needed):.0f}-{100 * max(needed):.0f}% of the "
                f"bf16 peak, against the engine's {100 * min(engine):.0f}-"
                f"{100 * max(engine):.0f}%."
            )
        else:
            why = (
                f"bf16 is emulated here, so fp32 is the only fast precision and twice its speed "
                f"needs {100 * min(needed):.0f}-{100 * max(needed):.0f}% of the fp32 peak, "
                f"against the engine's {100 * min(engine):.0f}-{100 * max(engine):.0f}%."
            )
        lines.append(
            f"- engine >= 2x the plain fp32 loop on every model: {met} "
            f"({min(vs_fp32):.2f}-{max(vs_fp32):.2f}x). The plain fp32 loop ran at "
            f"{100 * min(plain):.0f}-{100 * max(plain):.0f}% of the fp32 peak; {why}"
        )
        met = "met" if min(vs_best) >= 0.95 else "missed"
        lines.append(
            f"- engine >= 0.95x the best plain loop on every model: {met} "
            f"({min(vs_best):.2f}-{max(vs_best):.2f}x)."
        )
    for model, share in shares.items():
        met = "met" if share >= 0.4 else "missed"
        lines.append(f"- {model} at >= 40% of the peak: {met} ({100 * share:.0f}%).")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds a measure")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=list(VARIANTS),
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    parser.add_argument(
        "--profile", action="store_true", help="where a step's time goes, per model, and stop"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the section from the last run's JSON"
    )
    args = parser.parse_args()
    if args.report_only:
        saved = json.loads((RUNS / "throughput.json").read_text())
        text = report(saved["results"], saved["peaks"], saved)
        print(text)
        if not args.no_write:
            write_section("throughput", text)
        return
    if args.profile:
        lines = [
            "### Where a step's time goes (fp32, channels-last: the engine's default here)",
            "",
            f"`python benchmarks/throughput.py --profile` on {_machine()}, one step after "
            f"{WARMUP}, `torch.profiler` self time by operator.",
            "",
            "| model | convolution backward | convolution forward | matrix products | "
            "batch norm | other |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name in args.models:
            shares = profile(MODELS[name])
            lines.append(
                f"| {name} | " + " | ".join(f"{100 * v:.0f}%" for v in shares.values()) + " |"
            )
            print(lines[-1], flush=True)
        if not args.no_write:
            write_section("throughput-profile", "\n".join(lines) + "\n")
        return
    RUNS.mkdir(parents=True, exist_ok=True)
    load = load_average()
    started = time.perf_counter()
    (bf16, bf16_side), (fp32, _) = matmul_peak(torch.bfloat16), matmul_peak(torch.float32)
    peaks = {"bf16": bf16, "fp32": fp32}
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
        "bf16_side": bf16_side,
    }
    out = RUNS / "throughput.json"
    out.write_text(json.dumps({"peaks": peaks, "results": results, **meta}, indent=1))
    text = report(results, peaks, meta)
    print(text)
    if not args.no_write:
        write_section("throughput", text)


if __name__ == "__main__":
    main()
