"""Benchmark: a million-item sharded source trains and embeds in memory independent of its size.

Items are Fashion-MNIST's 70,000 real 28x28 images (train and test) under 15 transforms each
(flips, shifts by up to 3 pixels, a 24-pixel crop resized back), encoded as PNG files in
Parquet shards (``selfsup.data.shards.write_shards``, the format ``selfsup datasets pack``
writes). Two sources are made, ``--small`` and ``--items`` items, and on each, as separate
processes whose memory (PSS, workers included) is sampled twice a second:

1. ``selfsup pretrain SHARDS --time-budget M`` with the defaults;
2. ``selfsup embed RUN SHARDS --out embeddings.parquet`` of every item, stopped after
   ``--embed-minutes`` (peak memory over that time, and how far it got).

Peak memory of the two sizes side by side shows whether it grows with the data.

Usage:
    python benchmarks/shards.py                       # 50k and 1M items (~15 minutes)
    python benchmarks/shards.py --items 200000 --minutes 1
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from common import load_average, watch, write_section
from selfsup.data.shards import write_shards
from selfsup.run import _machine

FASHION = Path("/usr/share/datasets/fashion-mnist")
TRANSFORMS = 15


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path) as f:
        data = f.read()
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(data[3])]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def _images() -> tuple[np.ndarray, np.ndarray]:
    if not FASHION.exists():
        sys.exit(f"Fashion-MNIST is not installed ({FASHION}): run `make datasets`")
    x = np.concatenate([_idx(FASHION / f"{s}-images-idx3-ubyte.gz") for s in ("train", "t10k")])
    y = np.concatenate([_idx(FASHION / f"{s}-labels-idx1-ubyte.gz") for s in ("train", "t10k")])
    return x, y


def _transform(image: np.ndarray, t: int) -> np.ndarray:
    if t == 0:
        return image
    if t == 1:
        return image[:, ::-1]
    if t < 14:
        dy, dx = (t - 2) // 4 - 1, (t - 2) % 4 - 1  # shifts in [-1, 2]
        return np.roll(np.roll(image[:, ::-1] if t % 2 else image, dy, 0), dx, 1)
    crop = Image.fromarray(np.ascontiguousarray(image[2:26, 2:26]))
    return np.asarray(crop.resize((28, 28), Image.Resampling.BILINEAR))


def make_shards(out: Path, items: int) -> float:
    """Write ``items`` PNG items into shards at ``out`` (kept when present); seconds."""
    if (out / "index.json").exists():
        return 0.0
    shutil.rmtree(out, ignore_errors=True)
    x, y = _images()
    started = time.perf_counter()

    def generate():
        for i in range(items):
            k, t = i % len(x), i // len(x) % TRANSFORMS
            buffer = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(_transform(x[k], t))).save(buffer, format="PNG")
            yield f"{k:05d}-t{t:02d}-{i}", str(int(y[k])), buffer.getvalue()
            if (i + 1) % 100_000 == 0:
                print(f"  packed {i + 1:,}/{items:,}", flush=True)

    write_shards(generate(), out)
    return time.perf_counter() - started


def measure(shards: Path, runs: Path, minutes: float, embed_minutes: float) -> dict:
    selfsup = [sys.executable, "-m", "selfsup"]
    run = runs / f"run-{shards.name}"
    train = watch([*selfsup, "pretrain", str(shards), "--time-budget", str(minutes),
                   "--out", str(run)], runs / f"{shards.name}-pretrain.log")  # fmt: skip
    summary = json.loads((run / "train.json").read_text())
    out = runs / f"{shards.name}-embeddings.parquet"
    embed = watch([*selfsup, "embed", str(run), str(shards), "--out", str(out)],
                  runs / f"{shards.name}-embed.log", limit=embed_minutes * 60)  # fmt: skip
    return {
        "items": summary["items"] + summary["held_out_items"],
        "pretrain": {
            **train,
            "items_per_s": summary["items_per_second"],
            "steps": summary["steps"],
        },
        "embed": {
            **embed,
            "file_mb": round(out.stat().st_size / 2**20, 1) if out.exists() else None,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=50_000)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument(
        "--embed-minutes", type=float, default=3.0, help="Embedding is stopped after this."
    )
    parser.add_argument("--data", type=Path, default=Path("data/shards"))
    parser.add_argument("--runs", type=Path, default=Path("runs/bench/shards"))
    args = parser.parse_args()
    shutil.rmtree(args.runs, ignore_errors=True)
    args.runs.mkdir(parents=True)
    results: dict = {"machine": _machine(), "load_before": load_average(), "sizes": []}
    for items in (args.small, args.items):
        folder = args.data / f"fmnist-{items}"
        made = make_shards(folder, items)
        size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        print(f"{items:,} items in {folder} ({size_mb:.0f} MB), made in {made:.0f} s", flush=True)
        result = measure(folder, args.runs, args.minutes, args.embed_minutes)
        result.update(shards_mb=round(size_mb), make_s=round(made, 1))
        results["sizes"].append(result)
        print(json.dumps(result), flush=True)
    results["load_after"] = load_average()
    (args.runs / "shards.json").write_text(json.dumps(results, indent=2))
    write_section("shards", report(results, args))
    print(json.dumps(results, indent=2))


def report(r: dict, args: argparse.Namespace) -> str:
    lines = [
        "## A million items in shards (benchmarks/shards.py)",
        "",
        "Fashion-MNIST's 70,000 images under 15 transforms, as PNG files in Parquet shards; "
        f"`selfsup pretrain SHARDS --time-budget {args.minutes:g}` with the defaults, then "
        "`selfsup embed` of every item to Parquet. Peak memory is the PSS of the process and "
        f"its data-loading workers. Machine: {r['machine']}; load before {r['load_before']}, "
        f"after {r['load_after']}. Reproduce: `python benchmarks/shards.py --items "
        f"{args.items} --small {args.small} --minutes {args.minutes:g}`.",
        "",
        "| items | shards | pretrain peak | pretrain items/s | embed peak | embed: wall, "
        "last progress line |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in r["sizes"]:
        e = s["embed"]
        where = e["last_line"].split(": ", 1)[-1] if e["stopped"] else "all items"
        lines.append(
            f"| {s['items']:,} | {s['shards_mb']} MB | {s['pretrain']['peak_pss_gb']} GB | "
            f"{s['pretrain']['items_per_s']:,.0f} | {e['peak_pss_gb']} GB | "
            f"{e['wall_s']:.0f} s{' (stopped)' if e['stopped'] else ''}, {where} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
