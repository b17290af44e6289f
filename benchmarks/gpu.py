"""Benchmark: the GPU path end to end, and how fast it trains (at most 8 minutes on one GPU).

1. **Speed**: ``selfsup.pretrain`` with its defaults on the GPU (``--accelerator auto``, bf16
   autocast where the GPU has it, pinned memory, non-blocking copies) for SimCLR with
   ResNet-18 at 32 pixels (Fashion-MNIST, batch 256), ResNet-18 at 224 and ViT-S/16 at 224
   (crops of scikit-learn's two sample photos, batch 128), and ResNet-18 at 224 read from a
   folder of 640x480 JPEGs (decoded by the loader's workers, as a user's photos are); items/s
   after the first steps, read from the run's ``metrics.csv`` as in
   ``benchmarks/throughput.py``, the model's FLOPs per item (``torch.utils.flop_counter``) and
   its FLOP/s as a share of a bf16 8192x8192 matrix product timed in the same run.
2. **Where a step's time goes**, for the two 224-pixel models: milliseconds per batch of
   each part of a training step, each timed alone and synchronized (reading the batch as
   float32 and as the uint8 the engine reads, sending it and making floats of it on the GPU,
   the two views and each augmentation of one, the same two views by kornia's augmentations,
   the model's bf16 step), the whole step, and whether the views ran without making the host
   wait for the GPU (``torch.cuda.set_sync_debug_mode("error")``).
3. **Before and after** the engine's batched views and unread losses, in one process,
   alternated twice: ``selfsup.pretrain`` of ResNet-18 at 32 pixels (Fashion-MNIST, batch 256)
   and at 224 (photos, batch 128), once as it is and once as it was until 2026-12-04: kornia's
   augmentations for the views (``kornia_pipeline``) and the loss read back after every step.
4. **Decoding workers**: ResNet-18 at 224 from the folder of JPEGs with 4, 8 and the default
   number of loader workers, alternated twice.
5. **End to end**, each step a command-line process as a user runs it: ``selfsup pretrain
   fashion-mnist --time-budget 1``, ``selfsup embed`` of the 10,000 test images,
   ``selfsup evaluate`` (linear probe, kNN, few-shot) and ``selfsup export --format onnx``,
   each with its wall time.

Fashion-MNIST is read from ``$SELFSUP_DATA/fashion-mnist`` (or Debian's
``/usr/share/datasets/fashion-mnist``): on a machine without it, copy the four ``.gz`` files
(30 MB) there first. ``--smoke`` runs the same steps tiny on the CPU, to check the script.

Usage:
    python benchmarks/gpu.py             # on a machine with a CUDA GPU; writes BENCHMARKS.md
    python benchmarks/gpu.py --smoke     # a minute on the CPU, writes nothing
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from common import RUNS, load_average, write_section
from selfsup.data.arrays import ArraySource
from selfsup.data.base import unit_items
from selfsup.engine import train
from selfsup.engine.train import channels_last
from selfsup.methods import build_method
from selfsup.modalities.image import build_image_encoder, method_views
from selfsup.views import image as image_views
from selfsup.views.image import ImageViewRecipe

#: (name, backbone, backbone options, side, batch) of the speed step.
MODELS = (
    ("resnet18@32", "resnet18", {}, 32, 256),
    ("resnet18@224", "resnet18", {}, 224, 128),
    ("vit-s/16@224", "vit-small", {"patch_size": 16}, 224, 128),
)
#: The user's usual data: a folder of 640x480 JPEGs, decoded by the loader's workers.
FOLDER_MODEL = ("resnet18@224, 640x480 JPEG folder", "resnet18", {}, 224, 128)
WARMUP = 5


def photos(n: int, side: int, seed: int = 0) -> np.ndarray:
    """``n`` square crops of scikit-learn's two sample photos at ``side`` pixels, uint8."""
    from sklearn.datasets import load_sample_images

    sources = [Image.fromarray(a) for a in load_sample_images().images]
    rng = np.random.default_rng(seed)
    out = np.empty((n, side, side, 3), np.uint8)
    for i in range(n):
        image = sources[i % len(sources)]
        w, h = image.size
        crop = int(min(w, h) * rng.uniform(0.3, 1.0))
        left, top = int(rng.integers(0, w - crop + 1)), int(rng.integers(0, h - crop + 1))
        box = (left, top, left + crop, top + crop)
        out[i] = np.asarray(image.crop(box).resize((side, side), Image.Resampling.BILINEAR))
    return out


def jpeg_folder(folder: Path, n: int, seed: int = 0) -> Path:
    """``folder`` filled with ``n`` 640x480 JPEGs: 4:3 crops of scikit-learn's two sample
    photos, written by 8 threads (PIL encodes without the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from sklearn.datasets import load_sample_images

    sources = [Image.fromarray(a) for a in load_sample_images().images]
    rng = np.random.default_rng(seed)
    boxes = []
    for i in range(n):
        w, h = sources[i % len(sources)].size
        cw = int(min(w, h * 4 / 3) * rng.uniform(0.5, 1.0))
        ch = cw * 3 // 4
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        boxes.append((left, top, left + cw, top + ch))

    def write(i: int) -> None:
        crop = sources[i % len(sources)].crop(boxes[i]).resize((640, 480))
        crop.save(folder / f"{i:05d}.jpg", quality=90)

    folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(n)))
    return folder


def fashion(n: int) -> np.ndarray:
    """The first ``n`` Fashion-MNIST training images."""
    from selfsup.data.named import _load_fashion_mnist

    return _load_fashion_mnist("train")[0][:n]


def flops_per_item(backbone: str, options: dict, side: int, channels: int, device: str) -> float:
    """FLOPs of one item's training step (forward and backward of its two views)."""
    encoder = build_image_encoder(backbone, channels, side, **options).to(device)
    method = build_method("simclr", encoder).to(device)
    views, _ = method_views(method, side, channels)
    x = views.to(device)(torch.rand(4, channels, side, side, device=device))
    with FlopCounterMode(display=False) as counter:
        method(x).backward()
    return counter.get_total_flops() / 4


def matmul_peak(device: str, side: int) -> float:
    """FLOP/s of a bf16 ``side`` x ``side`` matrix product."""
    a = torch.randn(side, side, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    _sync(device)
    started, n = time.perf_counter(), 10
    for _ in range(n):
        a @ a
    _sync(device)
    return n * 2 * side**3 / (time.perf_counter() - started)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def speed(args: argparse.Namespace, device: str) -> list[dict]:
    """Items/s of the engine for each model, then from a folder of JPEGs."""
    results = []
    for name, backbone, options, side, batch in MODELS:
        if args.smoke:
            side, batch = min(side, 32), 16
            options = {**options, "patch_size": 8} if "patch_size" in options else options
        n = 2048 + batch * (WARMUP + args.steps + 1)  # 2048 held out to monitor training
        data = fashion(n) if side == 32 and not args.smoke else photos(n, side)
        channels = data.shape[-1] if data.ndim == 4 else 1
        results.append(_speed(args, device, name, backbone, options, side, batch, data, channels))
    name, backbone, options, side, batch = FOLDER_MODEL
    if args.smoke:
        side, batch = 32, 16
    with tempfile.TemporaryDirectory(dir=RUNS) as tmp:
        n = batch * (WARMUP + args.steps + 1)  # nothing held out: every file is read once
        folder = jpeg_folder(Path(tmp) / "photos", n)
        results.append(_speed(args, device, name, backbone, options, side, batch, folder, 3))
    return results


def _speed(
    args: argparse.Namespace,
    device: str,
    name: str,
    backbone: str,
    options: dict,
    side: int,
    batch: int,
    data: np.ndarray | Path,
    channels: int,
) -> dict:
    """Items/s of the engine on ``data`` after the first steps, and its FLOP/s."""
    started = time.perf_counter()
    monitor = 2048 if isinstance(data, np.ndarray) else 0
    rate, precision = _engine_rate(
        data, backbone, options, side, batch, args.steps, args.accelerator, monitor
    )
    flops = flops_per_item(backbone, options, side, channels, device)
    print(f"  {name}: {rate:,.0f} items/s ({precision})", flush=True)
    return {
        "model": name,
        "batch": batch,
        "items_per_s": rate,
        "gflop_per_item": flops / 1e9,
        "tflops": rate * flops / 1e12,
        "precision": precision,
        "wall_s": time.perf_counter() - started,
    }


def _engine_rate(
    data: np.ndarray | Path,
    backbone: str,
    options: dict,
    side: int,
    batch: int,
    steps: int,
    accelerator: str,
    monitor_items: int = 0,
    **more: object,
) -> tuple[float, str]:
    """Items/s of ``selfsup.pretrain`` (SimCLR) after the first steps, read from the run's
    ``metrics.csv`` (training seconds only), and the precision it trained in; ``more`` are
    further options of ``pretrain``."""
    import csv

    import selfsup

    with tempfile.TemporaryDirectory(dir=RUNS) as tmp:
        run = selfsup.pretrain(
            data if isinstance(data, np.ndarray) else str(data), method="simclr",
            backbone=backbone, backbone_options=options, image_size=side, batch_size=batch,
            steps=WARMUP + steps, log_every=1, accelerator=accelerator,
            out=str(Path(tmp) / "run"), show_progress=False, monitor_items=monitor_items, **more,
        )  # fmt: skip
        with (Path(tmp) / "run" / "metrics.csv").open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("train_seconds")]
    seconds = float(rows[-1]["train_seconds"]) - float(rows[WARMUP - 1]["train_seconds"])
    timed = int(rows[-1]["step"]) - int(rows[WARMUP - 1]["step"])
    return timed * batch / seconds, run.summary["precision"]


def folder_workers(args: argparse.Namespace) -> list[dict]:
    """Items/s of ResNet-18 at 224 from the JPEG folder with 4, 8 and the default number of
    decoding workers (all cores but two on a GPU), alternated twice."""
    from selfsup.data.image_folder import ImageFolderSource
    from selfsup.modalities import get_modality

    _, backbone, options, side, batch = FOLDER_MODEL
    steps = args.steps
    if args.smoke:
        side, batch = 32, 16
    with tempfile.TemporaryDirectory(dir=RUNS) as tmp:
        folder = jpeg_folder(Path(tmp) / "photos", batch * (WARMUP + steps + 1))
        default = get_modality("image").default_workers(
            ImageFolderSource(folder), args.accelerator != "cpu"
        )
        counts = sorted({4, 8, default})
        rates: dict[int, list[float]] = {count: [] for count in counts}
        for count in counts * 2:
            rate, _ = _engine_rate(
                folder, backbone, options, side, batch, steps, args.accelerator, num_workers=count
            )
            rates[count].append(rate)
    out = [{"workers": c, "default": c == default, "items_per_s": r} for c, r in rates.items()]
    for row in out:
        print(f"  {row['workers']} workers: {row['items_per_s']}", flush=True)
    return out


def _ms(fn: Callable[[], object], device: str, repeats: int = 10) -> float:
    """Milliseconds per call of ``fn`` after 3 untimed calls, synchronized."""
    for _ in range(3):
        fn()
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - started) / repeats * 1000


def breakdown(args: argparse.Namespace, device: str) -> list[dict]:
    """Milliseconds per batch of each part of a training step of the 224-pixel models."""
    out = []
    for name, backbone, options, side, batch in MODELS[1:]:
        if args.smoke:
            side, batch, options = 32, 16, {**options, "patch_size": 8} if options else options
        parts, wait_free = step_parts(backbone, options, side, batch, device)
        out.append({"model": name, "batch": batch, "ms": parts, "views_wait_free": wait_free})
        print(f"  {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()), flush=True)
        print(f"  views without waiting for the GPU: {wait_free}", flush=True)
    return out


def step_parts(
    backbone: str, options: dict, side: int, batch: int, device: str
) -> tuple[dict, bool | None]:
    """Milliseconds per batch of each part of one model's training step, timed alone; whether
    the views ran without waiting for the GPU."""
    source = ArraySource(photos(3 * batch, side))
    rows = list(range(0, 3 * batch, 3))
    parts = {
        "read as float32": _ms(lambda: source.read_batch(rows), device),
        "read as uint8": _ms(lambda: source.read_training_batch(rows), device),
    }
    raw = source.read_training_batch(rows).items
    if device == "cuda":
        raw = raw.pin_memory()
    parts["send, make floats"] = _ms(lambda: unit_items(raw.to(device, non_blocking=True)), device)
    encoder = build_image_encoder(backbone, 3, side, **options)
    method = build_method("simclr", encoder).to(device).to(memory_format=torch.channels_last)
    views = method_views(method, side, 3)[0].to(device)
    x = unit_items(raw.to(device))
    parts["views (2)"] = _ms(lambda: views(x), device)
    for op in views.pipelines[0]:
        parts[f"- {type(op).__name__} (1 view)"] = _ms(lambda op=op: op(x), device)
    with kornia_views():
        before = method_views(method, side, 3)[0].to(device)
    parts["views (2), kornia's as before"] = _ms(lambda: before(x), device)
    inputs = [channels_last(v) for v in views(x)]
    optimizer = torch.optim.SGD(method.parameters(), lr=0.01, momentum=0.9)

    def step(inputs: list[torch.Tensor]) -> torch.Tensor:
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = method(inputs)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    parts["model step (bf16)"] = _ms(lambda: step(inputs), device)

    def whole() -> float:
        items = source.read_training_batch(rows).items
        items = items.pin_memory() if device == "cuda" else items
        sent = unit_items(items.to(device, non_blocking=True))
        return step([channels_last(v) for v in views(sent)]).item()

    parts["whole step, synchronized"] = _ms(whole, device)
    return parts, views_wait_free(views, x, device)


def views_wait_free(views: torch.nn.Module, x: torch.Tensor, device: str) -> bool | None:
    """Whether making the views never made the host wait for the GPU (None on a CPU)."""
    if device != "cuda":
        return None
    torch.cuda.set_sync_debug_mode("error")
    try:
        views(x)
        return True
    except RuntimeError as err:
        print(f"  the views waited for the GPU: {str(err).splitlines()[0]}", flush=True)
        return False
    finally:
        torch.cuda.set_sync_debug_mode("default")


def kornia_pipeline(
    recipe: ImageViewRecipe,
    image_size: int,
    channels: int,
    crop_scale: tuple[float, float] | None = None,
) -> torch.nn.Sequential:
    """One view's augmentations as the engine made them until 2026-12-04, from kornia."""
    import kornia.augmentation as K

    scale = crop_scale or recipe.crop_scale
    ops: list[torch.nn.Module] = [K.RandomResizedCrop((image_size, image_size), scale=scale)]
    if recipe.flip_p > 0:
        ops.append(K.RandomHorizontalFlip(p=recipe.flip_p))
    brightness, contrast, saturation, hue = recipe.jitter
    if recipe.jitter_p > 0 and any(recipe.jitter):
        if channels == 3:
            ops.append(K.ColorJitter(brightness, contrast, saturation, hue, p=recipe.jitter_p))
        else:
            ops.append(K.ColorJitter(brightness, contrast, p=recipe.jitter_p))
    if channels == 3 and recipe.grayscale_p > 0:
        ops.append(K.RandomGrayscale(p=recipe.grayscale_p))
    if recipe.blur_p > 0:
        kernel = max(3, (image_size // 10) | 1)
        ops.append(K.RandomGaussianBlur((kernel, kernel), (0.1, 2.0), p=recipe.blur_p))
    if recipe.solarize_p > 0:
        ops.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=recipe.solarize_p))
    return torch.nn.Sequential(*ops)


@contextlib.contextmanager
def kornia_views(enabled: bool = True) -> Iterator[None]:
    """While open (and ``enabled``), image views are built from kornia's augmentations."""
    batched = image_views._pipeline
    if enabled:
        image_views._pipeline = kornia_pipeline
    try:
        yield
    finally:
        image_views._pipeline = batched


@contextlib.contextmanager
def as_before() -> Iterator[None]:
    """While open, the engine makes kornia's views and reads each step's loss at once."""
    step = train.training_step

    def read_at_once(*args: object, **kwargs: object) -> torch.Tensor:
        loss = step(*args, **kwargs)
        loss.item()  # the host waits for the step, as the loop's checks did
        return loss

    train.training_step = read_at_once
    try:
        with kornia_views():
            yield
    finally:
        train.training_step = step


def before_after(args: argparse.Namespace) -> list[dict]:
    """Engine items/s as it is and as it was before batched views and unread losses
    (``as_before``), alternated twice in this process."""
    cases = [("resnet18@32", 32, 256, 150), ("resnet18@224", 224, 128, 60)]
    if args.smoke:
        cases = [("resnet18@32", 32, 16, 2), ("resnet18@64", 64, 16, 2)]
    out = []
    for name, side, batch, steps in cases:
        n = batch * (WARMUP + steps + 2)
        data = fashion(n) if side == 32 and not args.smoke else photos(n, side)
        rates: dict[str, list[float]] = {"before": [], "after": []}
        for now in ("before", "after", "before", "after"):
            with as_before() if now == "before" else contextlib.nullcontext():
                rate, _ = _engine_rate(data, "resnet18", {}, side, batch, steps, args.accelerator)
            rates[now].append(rate)
        ratio = sum(rates["after"]) / sum(rates["before"])
        out.append({"model": name, "batch": batch, **rates, "ratio": ratio})
        print(f"  {name}: before {rates['before']}, after {rates['after']}", flush=True)
    return out


def cli(*command: str) -> float:
    """Run ``selfsup COMMAND`` as a user would; its wall seconds (exit on failure)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "selfsup", *command], capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"failed: selfsup {' '.join(command)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    seconds = time.perf_counter() - started
    print(f"  selfsup {command[0]}: {seconds:.0f} s", flush=True)
    return seconds


def end_to_end(args: argparse.Namespace, folder: Path) -> dict:
    """pretrain, embed, evaluate, export as command-line processes; their seconds."""
    run = folder / "run"
    data = "digits" if args.smoke else "fashion-mnist"
    minutes = "0.1" if args.smoke else "1"
    hardware = ["--accelerator", args.accelerator]
    train = ["pretrain", data, "--time-budget", minutes, "--out", str(run), "--overwrite"]
    seconds = {
        "pretrain": cli(*train, *hardware),
        "embed": cli("embed", str(run), f"{data}:test", "--out", str(folder / "test.npy")),
        "evaluate": cli("evaluate", str(run), data, "--protocol", "linear,knn"),
        "export": cli("export", str(run), "--format", "onnx", "--out", str(folder / "onnx")),
    }
    evaluation = json.loads((run / f"evaluation-{data}.json").read_text())
    rows = {row["protocol"]: row for row in evaluation["rows"]}
    return {
        "data": data,
        "seconds": seconds,
        "linear": rows["linear"]["selfsup"],
        "knn": rows["knn"]["selfsup"],
        "train": json.loads((run / "train.json").read_text()),
    }


def report(device_name: str, peak: float, meta: dict) -> str:
    """The BENCHMARKS.md section from what the steps found (``meta``)."""
    results, parts, changes, e2e = meta["results"], meta["parts"], meta["changes"], meta["e2e"]
    lines = [
        "## The GPU path",
        "",
        f"`python benchmarks/gpu.py` on {device_name}, torch {meta['torch']}, "
        f"{meta['minutes']:.1f} minutes in all; bf16 matrix product (8192x8192) "
        f"{peak / 1e12:.0f} TFLOP/s in the same run. SimCLR with the engine's defaults; items/s "
        f"after {WARMUP} steps.",
        "",
        "| model (batch) | GFLOP/item | items/s | TFLOP/s (% of the matmul peak) | precision |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} ({r['batch']}) | {r['gflop_per_item']:.2f} | "
            f"{r['items_per_s']:,.0f} | {r['tflops']:.1f} ({100 * r['tflops'] * 1e12 / peak:.0f}%)"
            f" | {r['precision']} |"
        )
    s = e2e["seconds"]
    lines += [
        "",
        f"End to end on {e2e['data']}, each a command-line process: `pretrain --time-budget 1` "
        f"{s['pretrain']:.0f} s ({e2e['train']['items_per_second']:,.0f} images/s, "
        f"{e2e['train']['epochs']} epochs), `embed` of the test images {s['embed']:.0f} s, "
        f"`evaluate` {s['evaluate']:.0f} s (linear probe {e2e['linear']:.4f}, kNN "
        f"{e2e['knn']:.4f}), `export --format onnx` {s['export']:.0f} s.",
        "",
        "Where a training step's time goes: milliseconds per batch, each part timed alone "
        "and synchronized.",
        "",
        "| part | " + " | ".join(f"{p['model']} ({p['batch']})" for p in parts) + " |",
        "| --- |" + " --- |" * len(parts),
    ]
    for key in parts[0]["ms"] if parts else []:
        lines.append(f"| {key} | " + " | ".join(f"{p['ms'][key]:.1f}" for p in parts) + " |")
    free = {p["model"]: p.get("views_wait_free") for p in parts}
    lines += [
        "",
        "Views made without the host waiting for the GPU (`torch.cuda.set_sync_debug_mode`): "
        + ", ".join(f"{model} {answer}" for model, answer in free.items())
        + ".",
        "",
        "Before and after batched views and unread losses (before: kornia's augmentations and "
        "the loss read after every step), engine items/s in one process, alternated twice:",
        "",
        "| model (batch) | before | after | after / before |",
        "| --- | --- | --- | --- |",
    ]
    for c in changes:
        before = " / ".join(f"{r:,.0f}" for r in c["before"])
        after = " / ".join(f"{r:,.0f}" for r in c["after"])
        lines.append(f"| {c['model']} ({c['batch']}) | {before} | {after} | {c['ratio']:.2f} |")
    if meta.get("workers"):
        lines += [
            "",
            "ResNet-18 at 224 from the folder of 640x480 JPEGs, items/s by decoding workers "
            "(alternated twice): "
            + ", ".join(
                f"{w['workers']}{' (default)' if w['default'] else ''}: "
                + " / ".join(f"{r:,.0f}" for r in w["items_per_s"])
                for w in meta["workers"]
            )
            + ".",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny, on the CPU, writes nothing")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model")
    args = parser.parse_args()
    if args.smoke:
        args.accelerator, args.steps, device = "cpu", 2, "cpu"
        device_name = "the CPU (smoke run)"
    elif not torch.cuda.is_available():
        sys.exit("no CUDA GPU here: run on a machine with one, or --smoke to check the script")
    else:
        args.accelerator, device = "gpu", "cuda"
        device_name = torch.cuda.get_device_name(0)
    RUNS.mkdir(parents=True, exist_ok=True)
    load, started = load_average(), time.perf_counter()
    peak = matmul_peak(device, 512 if args.smoke else 8192)
    print(f"{device_name}: bf16 matmul {peak / 1e12:.1f} TFLOP/s", flush=True)
    found: dict = {"peak": peak}

    def keep(**more: object) -> None:  # at once: a failure later leaves what was measured
        found.update(more)
        if not args.smoke:
            (RUNS / "gpu.json").write_text(json.dumps(found))

    keep(results=speed(args, device))
    print("where a step's time goes (ms per batch):", flush=True)
    keep(parts=breakdown(args, device))
    print("before and after batched views and unread losses (items/s):", flush=True)
    keep(changes=before_after(args))
    print("decoding workers for a folder of JPEGs (items/s):", flush=True)
    keep(workers=folder_workers(args))
    with tempfile.TemporaryDirectory(dir=RUNS) as tmp:
        keep(e2e=end_to_end(args, Path(tmp)))
    keep(minutes=(time.perf_counter() - started) / 60, load=load, torch=torch.__version__)
    text = report(device_name, peak, found)
    print(text)
    if not args.smoke:
        write_section("gpu", text)


if __name__ == "__main__":
    main()
