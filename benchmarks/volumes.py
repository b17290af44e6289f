"""Benchmark: reading CT volumes (NIfTI, ``.nii.gz``) as slices, as training reads them.

A hospital's CT study is a volume of a few hundred 512x512 slices, saved compressed; a 2-D
encoder learns from its slices. A compressed volume cannot be read a slice at a time without
decompressing all before the slice, so a reader that takes slices in a random order pays
for half a volume per slice. selfsup decompresses a volume once per process, keeps it
(``CACHE_BYTES``) and reads a volume's slices in blocks of volumes. This script writes CT
volumes made of a real CT slice (pydicom's ``CT_small.dcm``, in Hounsfield units, scaled to
512 pixels and varied from slice to slice), then reads their slices at 128 pixels in a fresh
process each, and reports slices/s and memory, in the same run:

- selfsup in training's order (:meth:`ImageFolderSource.epoch_order`: blocks of volumes);
- selfsup in a random order over all volumes (no blocks: what the blocks save);
- nibabel a slice at a time (``dataobj[..., k]``) in a random order, as a plain
  ``Dataset.__getitem__`` reads them;
- one volume read whole as float (``get_fdata``), what loading every volume up front costs;
- ``selfsup pretrain`` (ResNet-18, SimCLR, 2 loader workers) for a minute on the folder:
  the items/s training reaches, which the reads must stay above.

Usage:
    python benchmarks/volumes.py              # about 6 minutes on 2 cores
    python benchmarks/volumes.py --smoke      # small volumes, writes nothing to BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

from common import RUNS, in_process, load_average, peak_mb, publish, read_rate, watch
from selfsup.data.image_folder import ImageFolderSource
from selfsup.data.volumes import CACHE_BYTES
from selfsup.run import _machine

#: The side a run on a CPU trains at.
SIDE = 128


def ct_slice(side: int) -> np.ndarray:
    """pydicom's real CT slice in Hounsfield units, resized to ``side`` pixels."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.pixels import apply_modality_lut

    data = dcmread(get_testdata_file("CT_small.dcm"))
    values = np.asarray(apply_modality_lut(data.pixel_array, data), np.float32)
    return np.asarray(Image.fromarray(values, "F").resize((side, side), Image.Resampling.BILINEAR))


def write_volumes(folder: Path, count: int, side: int, slices: int) -> None:
    """``count`` volumes of ``slices`` slices, one per patient folder, stored as a scanner's
    converter writes them (int16 with an intercept of -1024, LPS axes, 0.7 x 0.7 x 1 mm)."""
    base = ct_slice(side)
    rng = np.random.default_rng(0)
    for v in range(count):
        volume = np.empty((side, side, slices), np.int16)
        for k in range(slices):
            scale = 1.0 + 0.15 * np.sin(np.pi * k / slices + v)
            shifted = np.roll(base * scale, (k // 8 - slices // 16, v), axis=(0, 1))
            noisy = shifted + rng.normal(0, 8, base.shape)
            volume[:, :, k] = np.clip(noisy + 1024, 0, 4095).T
        image = nib.Nifti1Image(volume, np.diag([-0.7, -0.7, 1.0, 1.0]))
        image.header.set_slope_inter(1.0, -1024.0)
        (folder / f"patient{v:03d}").mkdir(parents=True)
        nib.save(image, folder / f"patient{v:03d}" / "ct.nii.gz")


def read_selfsup(folder: Path, limit: int, blocks: bool) -> tuple[int, float, float]:
    """Slices of ``folder``, slices/s over ``limit`` read at ``SIDE`` in training's order
    (``blocks``) or a random one, and the memory in MB the reads took."""
    before = peak_mb()
    source = ImageFolderSource(folder)
    source.read_at(SIDE)
    if blocks:
        order = source.epoch_order(seed=0, epoch=0)[:limit]
    else:
        order = np.random.default_rng(0).permutation(len(source))[:limit]
    rate = read_rate(source.read_training_batch, order, 64, str(folder))
    return len(source), rate, peak_mb() - before


def read_nibabel(folder: Path, limit: int) -> tuple[float, float]:
    """Slices/s of nibabel reading ``limit`` slices in a random order, one at a time
    (``dataobj[..., k]``, then resized to ``SIDE``), and the memory in MB it took."""
    before = peak_mb()
    files = sorted(folder.glob("*/ct.nii.gz"))
    slices = nib.load(files[0]).shape[2]
    rng = np.random.default_rng(0)
    picks = [(files[rng.integers(len(files))], int(rng.integers(slices))) for _ in range(limit)]
    started = time.perf_counter()
    for path, k in picks:
        plane = np.asarray(nib.load(path).dataobj[:, :, k], np.float32)
        Image.fromarray(plane, "F").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    return limit / (time.perf_counter() - started), peak_mb() - before


def read_whole(path: Path) -> tuple[float, float]:
    """Seconds to read one volume whole as float (nibabel's ``get_fdata``), and the memory
    in MB it took."""
    before = peak_mb()
    started = time.perf_counter()
    values = nib.load(path).get_fdata()
    del values
    return time.perf_counter() - started, peak_mb() - before


def pretrain_rate(folder: Path, out: Path, minutes: float) -> tuple[float, float]:
    """Items/s of ``selfsup pretrain`` on ``folder`` for ``minutes``, and its peak memory in
    MB (the proportional set sizes of the process and its loader workers, :func:`watch`)."""
    command = [sys.executable, "-m", "selfsup", "pretrain", str(folder), "--out", str(out)]
    command += ["--time-budget", str(minutes), "--num-workers", "2"]
    log = out.parent / "pretrain.log"
    watched = watch(command, log)
    found = re.search(r"trained .* ([\d.,]+) items/s", log.read_text())
    if found is None:
        raise SystemExit(f"pretrain said no rate:\n{log.read_text()[-2000:]}")
    return float(found.group(1).replace(",", "")), watched["peak_pss_gb"] * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small volumes; no BENCHMARKS.md")
    args = parser.parse_args()
    count, side, slices = (6, 256, 60) if args.smoke else (24, 512, 300)
    limit = 600 if args.smoke else 3000
    load = load_average()
    started = time.perf_counter()
    RUNS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=RUNS) as tmp:
        folder = Path(tmp) / "ct"
        write_volumes(folder, count, side, slices)
        files = sorted(folder.glob("*/ct.nii.gz"))
        file_mb = sum(f.stat().st_size for f in files) / len(files) / 1e6
        print(f"  wrote {count} volumes of {file_mb:.0f} MB", flush=True)
        items, blocked, blocked_mb = in_process(read_selfsup, folder, limit, True)
        read = min(limit, items)
        print(f"  selfsup, training's order: {blocked:.0f} slices/s", flush=True)
        _, shuffled, shuffled_mb = in_process(read_selfsup, folder, limit // 30, False)
        print(f"  selfsup, random order: {shuffled:.1f} slices/s", flush=True)
        plain, plain_mb = in_process(read_nibabel, folder, limit // 30)
        print(f"  nibabel a slice at a time: {plain:.1f} slices/s", flush=True)
        seconds, whole_mb = in_process(read_whole, files[0])
        trained, train_mb = pretrain_rate(folder, Path(tmp) / "run", 0.5 if args.smoke else 1)
        print(f"  pretrain: {trained:.0f} items/s", flush=True)
    minutes = (time.perf_counter() - started) / 60
    lines = [
        "## CT volumes read as slices (benchmarks/volumes.py)",
        "",
        f"`python benchmarks/volumes.py` on {_machine()}; load {load} before it started; "
        f"{minutes:.1f} minutes. {count} volumes of {side}x{side}x{slices} (int16, "
        f".nii.gz, {file_mb:.0f} MB a file, {side * side * slices * 2 / 2**20:.0f} MB "
        "decompressed) made of pydicom's real CT slice `CT_small.dcm` (Hounsfield units), "
        f"varied from slice to slice; slices read at {SIDE} pixels, each reader in a fresh "
        "process without loader workers; memory: its resident peak over what it held before "
        f"reading. selfsup keeps {CACHE_BYTES / 2**20:.0f} MB of decompressed volumes a "
        "process.",
        "",
        "| reader | order | slices read | slices/s | memory: MB |",
        "| --- | --- | --- | --- | --- |",
        f"| selfsup (`ImageFolderSource`) | training's: blocks of volumes | {read:,} of "
        f"{items:,} | {blocked:.1f} | {blocked_mb:,.0f} |",
        f"| selfsup | random over all volumes | {limit // 30:,} | {shuffled:.1f} | "
        f"{shuffled_mb:,.0f} |",
        f"| nibabel, `dataobj[..., k]` a slice at a time | random | {limit // 30:,} | "
        f"{plain:.1f} | {plain_mb:,.0f} |",
        f"| nibabel, one volume whole as float (`get_fdata`) | | {slices} | "
        f"{slices / seconds:.1f} | {whole_mb:,.0f} |",
        "",
        f"`selfsup pretrain` on the folder (ResNet-18 at {SIDE}, SimCLR, 2 loader workers, "
        f"{'0.5' if args.smoke else '1'}-minute budget): {trained:.1f} items/s, "
        f"{train_mb:,.0f} MB at most (the proportional set sizes of the process and its "
        "workers, sampled twice a second). Reading every volume whole up front would hold "
        f"{count * side * side * slices * 8 / 2**30:.1f} GB of float64 (`get_fdata`).",
    ]
    publish("volumes", lines, args.smoke)


if __name__ == "__main__":
    main()
