"""Benchmark: a folder of ordinary 640x480 photos, pretrained with the defaults, as a user would.

The folder is made from real images: the 14 wallpapers of Debian's ``gnome-backgrounds``
(4096x4096 WebP renders and photos) and scikit-learn's two sample photos (427x640), cut into
random crops (a tenth to all of the area, 4:3, any place), flipped at random, resized to
640x480 and saved as JPEG (quality 90): file sizes and decoding cost are those of real photos.
Two class folders split the sources in two halves.

Then, each as a separate ``selfsup`` process whose memory (PSS summed over the process and its
data-loading workers) is sampled twice a second:

1. **index**: the time to open the folder (one scan, headers of a sample of files).
2. **folder**: ``selfsup pretrain FOLDER --time-budget M`` with every other option left at
   its default: peak memory, images per second (wall time of the training loop, data
   loading included), the chosen side, backbone, batch and workers.
3. **folder, workers at normal priority**: the same pretraining with the decoding worker at
   the training process's priority (as before 2026-12-04; ``yield_to_training`` off).
4. **in memory**: the same images decoded once at the same side into an array in memory,
   pretrained with the same backbone, side and batch for ``--memory-minutes``: the images per
   second the folder run is compared with (target: >= 85%).
5. **embed**: ``Run.embed`` of the whole folder with the folder run's encoder, files read
   ahead by the default loader workers, then read in the embedding process itself (as before
   2026-12-04), each a separate process: images/s and peak memory.
6. **check**: ``selfsup datasets show FOLDER --check``'s reading of every file, by one
   worker process per core (its default), then in one process (as before 2026-12-06):
   images/s and peak memory.
7. **robustness**: the folder (hard links) plus a corrupt JPEG that sorts first and a
   12000x12000 PNG, ``--time-budget 1`` with output to a pipe: wall time (target: < 5 min) and
   the longest gap between two output lines (target: <= 10 s).

Usage:
    python benchmarks/photos.py                         # 10,000 photos, 5 minutes (~15 min)
    python benchmarks/photos.py --images 2000 --minutes 1 --memory-minutes 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from common import load_average, watch, write_section
from selfsup.data.image_folder import ImageFolderSource
from selfsup.run import _machine

WALLPAPERS = Path("/usr/share/backgrounds/gnome")
SIDE = (640, 480)


def _sources() -> list[Image.Image]:
    from sklearn.datasets import load_sample_images

    images = [Image.fromarray(a) for a in load_sample_images().images]
    for path in sorted(WALLPAPERS.glob("*.webp")):
        with Image.open(path) as image:
            if min(image.size) >= 1000:
                # At most 2048 a side: crops of a tenth of the area are still above 640x480.
                image.draft("RGB", (2048, 2048))
                images.append(ImageOps.contain(image.convert("RGB"), (2048, 2048)))
    if len(images) < 4:
        sys.exit(f"too few source images: install gnome-backgrounds (`make system`): {WALLPAPERS}")
    return images


def _make_chunk(args: tuple[Path, int, int, int]) -> int:
    folder, start, stop, seed = args
    sources = _sources()
    rng = np.random.default_rng([seed, start])
    for i in range(start, stop):
        k = int(rng.integers(len(sources)))
        image = sources[k]
        w, h = image.size
        area = rng.uniform(0.1, 1.0) * w * h
        cw = int(min(w, np.sqrt(area * 4 / 3)))
        ch = int(min(h, cw * 3 / 4))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = image.crop((left, top, left + cw, top + ch)).resize(SIDE, Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        label = "a" if k < len(sources) // 2 else "b"
        crop.save(folder / label / f"{i:06d}.jpg", quality=90)
    return stop - start


def make_photos(folder: Path, n: int, seed: int = 0) -> float:
    """Write ``n`` 640x480 JPEGs under ``folder`` (kept when they are there); seconds taken."""
    if len(list(folder.glob("*/*.jpg"))) >= n:
        return 0.0
    started = time.perf_counter()
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True, exist_ok=True)
    size = -(-n // (os.cpu_count() or 2))  # one chunk a process: sources load once each
    chunks = [(folder, s, min(n, s + size), seed) for s in range(0, n, size)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        done = 0
        for count in pool.map(_make_chunk, chunks):
            done += count
            print(f"  made {done}/{n} photos", flush=True)
    return time.perf_counter() - started


_IN_MEMORY = """
import json, sys, time, numpy as np, selfsup
from selfsup.data.image_folder import ImageFolderSource
folder, side, batch, minutes, out = sys.argv[1:6]
source = ImageFolderSource(folder, image_size=int(side))
started = time.perf_counter()
x = np.stack([(source.read(i).numpy() * 255).round().astype(np.uint8) for i in range(len(source))])
print(f"decoded {len(x)} images in {time.perf_counter() - started:.0f} s", flush=True)
run = selfsup.pretrain(x, backbone="resnet18", image_size=int(side), batch_size=int(batch),
                       time_budget=float(minutes), out=out)
print(json.dumps(run.summary))
"""

_NORMAL_PRIORITY = """
import sys, selfsup
from selfsup.engine import train
folder, minutes, out = sys.argv[1:4]
train.yield_to_training = None  # the loader's workers keep this process's priority
run = selfsup.pretrain(folder, time_budget=float(minutes), out=out)
"""

_CHECK = """
import sys, time
from selfsup.cli.datasets import read_every_item
from selfsup.modalities import open_source
folder, workers = sys.argv[1:3]
source = open_source(folder, None)
started = time.perf_counter()
bad = read_every_item(source, None if workers == "default" else int(workers))
seconds = time.perf_counter() - started
print(f"checked {len(source)} images in {seconds:.1f} s, {len(bad)} unreadable: "
      f"{len(source) / seconds:.1f} images/s", flush=True)
"""

_EMBED = """
import sys, time, numpy as np, selfsup
from selfsup.modalities.image import ImageModality
folder, run, workers = sys.argv[1:4]
if workers != "default":
    ImageModality.default_workers = lambda self, source, accelerated=False: int(workers)
run = selfsup.load(run)
started = time.perf_counter()
z = run.embed(folder)
seconds = time.perf_counter() - started
print(f"embedded {len(z)} images in {seconds:.1f} s: {len(z) / seconds:.1f} images/s", flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--memory-minutes", type=float, default=2.0)
    parser.add_argument("--data", type=Path, default=Path("data/photos-640x480"))
    parser.add_argument("--runs", type=Path, default=Path("runs/bench/photos"))
    parser.add_argument("--skip-robustness", action="store_true")
    args = parser.parse_args()
    import shutil

    shutil.rmtree(args.runs, ignore_errors=True)
    args.runs.mkdir(parents=True)
    results: dict = {"machine": _machine(), "load_before": load_average(), "images": args.images}

    made = make_photos(args.data, args.images)
    results["make_photos_s"] = round(made, 1)
    started = time.perf_counter()
    source = ImageFolderSource(args.data)
    results["index_s"] = round(time.perf_counter() - started, 2)
    results["files"] = len(source)
    print(f"indexed {len(source)} files in {results['index_s']} s", flush=True)

    selfsup = [sys.executable, "-m", "selfsup"]
    folder_run = args.runs / "folder"
    command = [*selfsup, "pretrain", str(args.data), "--time-budget", str(args.minutes),
               "--out", str(folder_run)]  # fmt: skip
    results["folder"] = watch(command, args.runs / "folder.log")
    summary = json.loads((folder_run / "train.json").read_text())
    config = (folder_run / "config.yaml").read_text()
    import yaml

    cfg = yaml.safe_load(config)
    results["folder"].update(
        images_per_s=summary["items_per_second"],
        steps=summary["steps"],
        side=cfg["image_size"],
        backbone=cfg["backbone"],
        batch=cfg["batch_size"],
        workers=cfg["num_workers"],
        precision=summary["precision"],
    )
    print(json.dumps(results["folder"]), flush=True)

    normal_run = args.runs / "folder-normal-priority"
    command = [sys.executable, "-c", _NORMAL_PRIORITY, str(args.data), str(args.minutes),
               str(normal_run)]  # fmt: skip
    results["folder_normal_priority"] = watch(command, args.runs / "folder-normal-priority.log")
    normal = json.loads((normal_run / "train.json").read_text())["items_per_second"]
    results["folder_normal_priority"]["images_per_s"] = normal
    print(json.dumps(results["folder_normal_priority"]), flush=True)

    memory_run = args.runs / "in-memory"
    command = [sys.executable, "-c", _IN_MEMORY, str(args.data), str(cfg["image_size"]),
               str(cfg["batch_size"]), str(args.memory_minutes), str(memory_run)]  # fmt: skip
    results["in_memory"] = watch(command, args.runs / "in-memory.log")
    memory_summary = json.loads((memory_run / "train.json").read_text())
    results["in_memory"]["images_per_s"] = memory_summary["items_per_second"]
    ratio = results["folder"]["images_per_s"] / memory_summary["items_per_second"]
    results["folder_over_memory"] = round(ratio, 3)
    print(json.dumps(results["in_memory"]), flush=True)

    results["embed"] = _by_workers("embed", _EMBED, [str(args.data), str(folder_run)], args.runs)
    results["check"] = _by_workers("check", _CHECK, [str(args.data)], args.runs)

    if not args.skip_robustness:
        robust = args.runs / "photos-plus-broken"
        for label in ("a", "b"):
            (robust / label).mkdir(parents=True)
            for path in (args.data / label).glob("*.jpg"):
                os.link(path, robust / label / path.name)
        (robust / "a" / "!corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        big = args.data.parent / "big-12000.png"
        if not big.exists():
            smooth = _sources()[2].resize((12000, 12000), Image.Resampling.BILINEAR)
            smooth.save(big, compress_level=1)
        os.link(big, robust / "b" / "big-12000.png")
        command = [*selfsup, "pretrain", str(robust), "--time-budget", "1",
                   "--out", str(args.runs / "robust")]  # fmt: skip
        results["robustness"] = watch(command, args.runs / "robust.log")
        results["robustness"]["skipped"] = (
            (args.runs / "robust" / "skipped.txt").read_text().strip().splitlines()
        )
        print(json.dumps(results["robustness"]), flush=True)

    results["load_after"] = load_average()
    (args.runs / "photos.json").write_text(json.dumps(results, indent=2))
    write_section("photos", report(results, args))
    print(json.dumps(results, indent=2))


def _by_workers(name: str, script: str, arguments: list[str], runs: Path) -> dict:
    """``script`` run with its loader's default workers, then with none (reading in its own
    process), each watched: its last line ends ``: N images/s``."""
    results = {}
    for workers in ("default", "0"):
        command = [sys.executable, "-c", script, *arguments, workers]
        watched = watch(command, runs / f"{name}-{workers}.log")
        line = (runs / f"{name}-{workers}.log").read_text().strip().splitlines()[-1]
        watched["images_per_s"] = float(line.split(": ")[-1].split()[0])
        results[workers] = watched
        print(json.dumps(watched), flush=True)
    return results


def _by_workers_rows(result: dict, what: str) -> list[str]:
    """Two rows of the table for a :func:`_by_workers` result: images/s, peak memory."""
    ahead, alone = result["default"], result["0"]
    return [
        f"| {what} | {ahead['images_per_s']:.1f} / {alone['images_per_s']:.1f} | |",
        f"| ... peak memory (PSS, workers included) | {ahead['peak_pss_gb']} / "
        f"{alone['peak_pss_gb']} GB | |",
    ]


def report(r: dict, args: argparse.Namespace) -> str:
    f, m = r["folder"], r["in_memory"]
    lines = [
        "## Your own photos at their real size (benchmarks/photos.py)",
        "",
        f"{r['files']:,} JPEGs of 640x480 cut from real images (Debian's gnome-backgrounds and "
        "scikit-learn's sample photos), pretrained with every option at its default "
        f"(`selfsup pretrain FOLDER --time-budget {args.minutes:g}`). Machine: {r['machine']}; "
        f"load before {r['load_before']}, after {r['load_after']}. Reproduce: "
        f"`python benchmarks/photos.py --images {args.images} --minutes {args.minutes:g} "
        f"--memory-minutes {args.memory_minutes:g}`.",
        "",
        "| measure | value | target |",
        "| --- | --- | --- |",
        f"| folder index (scan + sampled headers) | {r['index_s']} s | fast |",
        f"| chosen: backbone, side, batch, workers, precision | {f['backbone']}, {f['side']} px, "
        f"{f['batch']}, {f['workers']}, {f['precision']} | |",
        f"| peak memory, folder run (PSS, workers included) | {f['peak_pss_gb']} GB | <= 4 GB |",
        f"| images/s from the folder | {f['images_per_s']:.1f} | |",
        f"| ... with the decoding worker at the trainer's priority (before) | "
        f"{r['folder_normal_priority']['images_per_s']:.1f} | |",
        f"| images/s from an in-memory array, same side and batch | {m['images_per_s']:.1f} | |",
        f"| folder / in memory | {r['folder_over_memory']:.0%} | >= 85% |",
        f"| longest silence in the folder run's output | {f['longest_gap_s']} s | |",
    ]
    if "embed" in r:
        lines += _by_workers_rows(
            r["embed"],
            f"embed the folder: images/s, read ahead by {f['workers']} worker(s) / in the "
            "embedding process",
        )
    if "check" in r:
        lines += _by_workers_rows(
            r["check"],
            "`datasets show --check`: images/s, one worker per core / in one process",
        )
    if "robustness" in r:
        b = r["robustness"]
        lines += [
            f"| corrupt first file + 12000x12000 PNG, `--time-budget 1`: wall time | "
            f"{b['wall_s']:.0f} s | < 300 s |",
            f"| ... longest gap between output lines (first line after {b['first_line_s']} s) |"
            f" {b['longest_gap_s']} s | <= 10 s |",
            f"| ... skipped | {len(b['skipped'])}: "
            + "; ".join(s.split("\t")[0] for s in b["skipped"])
            + " | the corrupt file |",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
