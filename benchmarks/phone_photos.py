"""Benchmark: how fast a phone's photos are read at the side a run on a CPU trains at.

A phone saves 12-megapixel photos (4032x3024) as HEIC with a small embedded thumbnail
(320x240 on an iPhone), or as JPEG. selfsup reads each at the training side (128 pixels
on a CPU): a JPEG decoded at 1/8 scale (Pillow's draft mode), a HEIC from its thumbnail where
that is at least the side asked for (pillow-heif's draft mode), else decoded whole. This
script writes the same photos (crops of Debian's gnome-backgrounds wallpapers, resized to
4032x3024) three ways: HEIC with a 320 thumbnail, HEIC without one, JPEG at quality 90;
then reads every folder through ``ImageFolderSource`` at 128 pixels in this process (no
loader workers; libheif decodes with its own threads), each way twice, alternated, and
reports photos/s.

Usage:
    python benchmarks/phone_photos.py              # 24 photos, about 4 minutes on 2 cores
    python benchmarks/phone_photos.py --photos 4 --smoke   # writes nothing to BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common import RUNS, load_average, write_section
from photos import _sources
from selfsup.data.image_folder import ImageFolderSource
from selfsup.run import _machine

#: A 12-megapixel phone photo and the side a run on a CPU trains at.
PHOTO = (4032, 3024)
SIDE = 128
#: The ways a photo is written: (folder, suffix, save options).
WAYS = (
    ("HEIC, 320 thumbnail", ".HEIC", {"quality": 50, "thumbnails": [320]}),
    ("HEIC, no thumbnail", ".HEIC", {"quality": 50, "thumbnails": []}),
    ("JPEG", ".JPG", {"quality": 90}),
)


def write_photos(root: Path, count: int) -> dict[str, tuple[Path, float]]:
    """``count`` distinct photos written each way under ``root``: folder and MB per photo."""
    sources = _sources()
    rng = np.random.default_rng(0)
    folders = {name: root / str(k) for k, (name, _, _) in enumerate(WAYS)}
    for folder in folders.values():
        folder.mkdir(parents=True)
    for i in range(count):
        image = sources[i % len(sources)]
        w, h = image.size
        crop_h = int(h * rng.uniform(0.5, 1.0))
        crop_w = min(w, crop_h * 4 // 3)
        crop_h = crop_w * 3 // 4
        left = int(rng.integers(0, w - crop_w + 1))
        top = int(rng.integers(0, h - crop_h + 1))
        photo = image.crop((left, top, left + crop_w, top + crop_h)).resize(PHOTO)
        for name, suffix, options in WAYS:
            photo.save(folders[name] / f"IMG_{1000 + i}{suffix}", **options)
        print(f"  wrote photo {i + 1}/{count}", flush=True)
    sizes = {
        name: (folder, sum(f.stat().st_size for f in folder.iterdir()) / count / 1e6)
        for name, folder in folders.items()
    }
    return sizes


def read_all(folder: Path) -> float:
    """Photos/s of reading every photo of ``folder`` at ``SIDE`` pixels, one at a time."""
    source = ImageFolderSource(folder)
    source.read_at(SIDE)
    started = time.perf_counter()
    batch = source.read_batch(range(len(source)))
    took = time.perf_counter() - started
    if batch.skipped or batch.items.shape[-1] != SIDE:
        raise SystemExit(f"{folder}: read {batch.items.shape}, skipped {batch.skipped}")
    return len(source) / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--smoke", action="store_true", help="write nothing to BENCHMARKS.md")
    args = parser.parse_args()
    load = load_average()
    started = time.perf_counter()
    RUNS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=RUNS) as tmp:
        written = write_photos(Path(tmp), args.photos)
        rates: dict[str, list[float]] = {name: [] for name in written}
        for _ in range(2):
            for name, (folder, _) in written.items():
                rates[name].append(read_all(folder))
                print(f"  {name}: {rates[name][-1]:.1f} photos/s", flush=True)
    jpeg = float(np.mean(rates["JPEG"]))
    full = float(np.mean(rates["HEIC, no thumbnail"]))
    lines = [
        "## A phone's photos (benchmarks/phone_photos.py)",
        "",
        f"`python benchmarks/phone_photos.py --photos {args.photos}` on {_machine()}, in one "
        f"process without loader workers; load {load} before it started; "
        f"{(time.perf_counter() - started) / 60:.1f} minutes. The same {args.photos} "
        f"photos of {PHOTO[0]}x{PHOTO[1]} (crops of Debian's wallpapers) written three ways, "
        f"read by `ImageFolderSource` at {SIDE} pixels (the training side on a CPU), each "
        "way twice, alternated; photos/s is the mean of the two.",
        "",
        "| written as | MB a photo | photos/s | against HEIC decoded whole | against JPEG |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, (_, megabytes) in written.items():
        rate = float(np.mean(rates[name]))
        lines.append(
            f"| {name} | {megabytes:.2f} | {rate:.1f} | {rate / full:.1f}x | {rate / jpeg:.2f}x |"
        )
    lines += [
        "",
        "Reading: a HEIC is read from the thumbnail it embeds where that is at least the side "
        "asked for (pillow-heif's draft mode), as a JPEG is decoded at 1/8 scale; a HEIC "
        "without one is decoded whole (libheif), then resized.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.smoke:
        write_section("phone_photos", text)


if __name__ == "__main__":
    main()
