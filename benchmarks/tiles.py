"""Benchmark: reading large images as tiles (``--tile``), against reading them whole.

A satellite scene (10980x10980 pixels, four 16-bit bands: 964 MB of samples), a pathology
slide (tens of thousands of pixels a side) or a 16-megapixel inspection frame holds what
matters in a few dozen pixels; read whole and resized to the training side, it is lost. With
``--tile`` each image is cut into squares at full size. This script writes three kinds of
large image from Debian's gnome-backgrounds wallpapers (real photos and textures), reads
their tiles through ``ImageFolderSource`` at 128 pixels in training's order (its
``epoch_order``: shuffled, in blocks of the files a process keeps decoded where a file is
decoded whole for its tiles; one process, no loader workers) and reports tiles/s and the
memory the reads took, next to what reading each image whole takes in the same run:

- a scene as GDAL writes a cloud-optimized GeoTIFF: 512-pixel tiles, Deflate, four uint16
  bands (the wallpapers' red, green, blue and gray as a near infrared), 256-pixel tiles;
- 4096x4096 JPEG frames at quality 90, 512-pixel tiles (decoded at 1/4 scale, once for
  all the tiles of a frame; in the same order, each tile decoded from its file alone, as
  selfsup read them before it kept decoded frames);
- a slide as Aperio's scanners write it (``.svs``): JPEG tiles of 32768x24576 RGB with
  levels at 1/4 and 1/16, a section over the middle and glass around it (its 1024-pixel
  tiles read from the 1/4 level; those of glass left out, found on the 1/16 level).

Usage:
    python benchmarks/tiles.py              # about 4 minutes on 2 cores
    python benchmarks/tiles.py --smoke      # smaller images, writes nothing to BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from common import RUNS, in_process, load_average, peak_mb, publish, read_rate
from photos import _sources
from selfsup.data.image_folder import ImageFolderSource, decode_pixels, image_dimensions
from selfsup.run import _machine

#: The side a run on a CPU trains at.
SIDE = 128


def mosaic(shape: tuple[int, int], seed: int) -> np.ndarray:
    """An RGB uint8 (height, width, 3) image filled with crops of the wallpapers, made in
    rows of 2048 pixels."""
    sources = [image for image in _sources() if min(image.size) >= 1024]
    rng = np.random.default_rng(seed)
    height, width = shape
    out = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, 1024):
        for left in range(0, width, 1024):
            image = sources[int(rng.integers(len(sources)))]
            w, h = image.size
            x, y = int(rng.integers(0, w - 1024 + 1)), int(rng.integers(0, h - 1024 + 1))
            crop = np.asarray(image.crop((x, y, x + 1024, y + 1024)))
            rows, cols = min(1024, height - top), min(1024, width - left)
            out[top : top + rows, left : left + cols] = crop[:rows, :cols]
    return out


def write_scene(path: Path, side: int) -> None:
    """A four-band 12-bit scene of ``side`` pixels as GDAL writes a COG (512 tiles, Deflate)."""
    rgb = mosaic((side, side), 1).astype(np.uint16)
    bands = np.empty((side, side, 4), np.uint16)
    bands[..., :3] = rgb * 16  # 12-bit values
    bands[..., 3] = rgb.mean(axis=2).astype(np.uint16) * 16
    tifffile.imwrite(
        path,
        bands,
        tile=(512, 512),
        compression="zlib",
        photometric="minisblack",
        planarconfig="contig",
        extratags=[(42113, "s", 0, "0", False)],  # GDAL_NODATA 0
    )


def write_slide(path: Path, shape: tuple[int, int]) -> None:
    """An RGB slide of ``shape`` as Aperio's scanners write it (``.svs``): JPEG tiles of 256,
    a thumbnail, levels at 1/4 and 1/16, a label and a macro photo; the section (the
    wallpapers' mosaic) an ellipse over the middle, bright glass around it."""
    base = mosaic(shape, 2)
    height, width = shape
    rows, cols = np.ogrid[:height, :width]
    for top in range(0, height, 2048):  # in bands: a mask of the whole slide is 800 MB
        band = rows[top : top + 2048]
        glass = ((band - height / 2) / (0.42 * height)) ** 2 + (
            (cols - width / 2) / (0.38 * width)
        ) ** 2 > 1
        base[top : top + 2048][glass] = 242
    head = "Aperio Image Library v12.0.15 \r\n"
    tiled = {"tile": (256, 256), "compression": "jpeg", "photometric": "rgb", "metadata": None}
    with tifffile.TiffWriter(path, bigtiff=True) as writer:
        writer.write(base, description=f"{head}{width}x{height} (256x256) JPEG/RGB", **tiled)
        small = np.asarray(Image.fromarray(base).reduce(64))
        writer.write(small, description=f"{head}thumbnail", photometric="rgb", metadata=None)
        for step in (4, 16):
            level = np.asarray(Image.fromarray(base).reduce(step))
            writer.write(level, description=f"{head}{width}x{height} -> level", **tiled)
        for name in ("label", "macro"):
            writer.write(np.full((256, 256, 3), 90, np.uint8), description=f"{head}{name}",
                         photometric="rgb", subfiletype=1, metadata=None)  # fmt: skip


def read_tiles(
    folder: Path, tile: int, limit: int, alone: bool = False
) -> tuple[int, int, float, float, str]:
    """Tiles of ``folder``, tiles read, tiles/s (the first ``limit`` of training's order, at
    ``SIDE``), the memory in MB the reads took (a fresh process's peak over its start) and
    what the folder's data line says;
    ``alone``: each tile decoded from its file by itself (Pillow, ``decode_pixels``)."""
    before = peak_mb()
    source = ImageFolderSource(folder, tile=tile)
    source.read_at(SIDE)
    order = source.epoch_order(seed=0, epoch=0)[:limit]
    if not alone:
        rate = read_rate(source.read_batch, order, 32, str(folder))
        return len(source), len(order), rate, peak_mb() - before, source.index_note
    started = time.perf_counter()
    for row in order.tolist():
        top, left, side = (int(v) for v in source.places.square[row])
        with Image.open(folder / source.files[source.places.owner[row]]) as image:
            decode_pixels(image, SIDE, 3, region=(top, left, side))
    rate = len(order) / (time.perf_counter() - started)
    return len(source), len(order), rate, peak_mb() - before, source.index_note


def read_whole(path: Path) -> tuple[float, float]:
    """Seconds to decode ``path`` whole (tifffile or Pillow), and the memory in MB it took
    (a fresh process's peak over its start)."""
    before = peak_mb()
    started = time.perf_counter()
    if path.suffix in (".tif", ".svs"):
        with tifffile.TiffFile(path) as tiff:
            array = tiff.series[0].asarray()
    else:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
    del array
    return time.perf_counter() - started, peak_mb() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small images; no BENCHMARKS.md")
    args = parser.parse_args()
    scene_side = 2048 if args.smoke else 10980
    slide_shape = (4096, 3072) if args.smoke else (24576, 32768)
    frames = 2 if args.smoke else 8
    limit = 400 if not args.smoke else 64  # tiles read of each kind
    load = load_average()
    started = time.perf_counter()
    RUNS.mkdir(parents=True, exist_ok=True)
    rows = []
    notes: dict[str, str] = {}  # each folder's data line
    with tempfile.TemporaryDirectory(dir=RUNS) as tmp:
        root = Path(tmp)
        kinds = {
            "scene": (root / "scene", 256, "scene.tif"),
            "frames": (root / "frames", 512, "frame0.jpg"),
            "slide": (root / "slide", 1024, "slide.svs"),
        }
        for folder, _, _ in kinds.values():
            folder.mkdir()
        write_scene(root / "scene" / "scene.tif", scene_side)
        print("  wrote the scene", flush=True)
        for k in range(frames):
            Image.fromarray(mosaic((4096, 4096), 10 + k)).save(
                root / "frames" / f"frame{k}.jpg", quality=90
            )
        print("  wrote the frames", flush=True)
        write_slide(root / "slide" / "slide.svs", slide_shape)
        print("  wrote the slide", flush=True)
        for name, (folder, tile, example) in kinds.items():
            count, read, rate, peak, note = in_process(read_tiles, folder, tile, limit)
            notes[name] = note
            seconds, megabytes = in_process(read_whole, folder / example)
            files = list(folder.iterdir())
            size = image_dimensions(files[0])[:2]
            mb = sum(f.stat().st_size for f in files) / len(files) / 1e6
            rows.append((name, size, mb, tile, count, read, rate, peak, seconds, megabytes))
            print(f"  {name}: {rate:.1f} tiles/s; whole: {seconds:.1f} s", flush=True)
            if name == "frames":
                count, read, rate, peak, _ = in_process(read_tiles, folder, tile, limit, True)
                rows.append(("alone", size, mb, tile, count, read, rate, peak, None, None))
                print(f"  {name}, each tile alone: {rate:.1f} tiles/s", flush=True)
    names = {
        "scene": "satellite scene, COG: 4 uint16 bands, Deflate, 512 tiles",
        "frames": f"inspection frames, JPEG q90 ({frames} files)",
        "alone": "the same frames, each tile decoded from its file alone",
        "slide": "slide (.svs), JPEG tiles, levels 1/4 and 1/16",
    }
    lines = [
        "## Large images as tiles (benchmarks/tiles.py)",
        "",
        f"`python benchmarks/tiles.py` on {_machine()}, in one process without loader "
        f"workers; load {load} before it started; "
        f"{(time.perf_counter() - started) / 60:.1f} minutes. Images made of Debian's "
        "wallpapers; tiles read by `ImageFolderSource(tile=...)` at "
        f"{SIDE} pixels in training's order (`epoch_order`: shuffled, in blocks of the "
        f"frames a process keeps decoded for the JPEGs), the first {limit}; then one image read "
        "whole (tifffile, or Pillow for the JPEG), as a reader without region reads starts.",
        "",
        "| images | pixels | MB a file | tile | tiles | tiles/s | memory: MB "
        "| one image whole: s | memory: MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, size, mb, tile, count, _, rate, peak, seconds, megabytes in rows:
        whole = "| | |" if seconds is None else f"| {seconds:.2f} | {megabytes:,.0f} |"
        lines.append(
            f"| {names[name]} | {size[0]}x{size[1]} | {mb:.0f} | {tile} | {count:,} | "
            f"{rate:.1f} | {peak:.0f} {whole}"
        )
    frame_rate = next(row[6] for row in rows if row[0] == "frames")
    alone_rate = next(row[6] for row in rows if row[0] == "alone")
    lines += [
        "",
        "Reading: a TIFF's tile is read from the file's own tiles under it alone (a slide's "
        "from the smallest level that still holds it at the side asked for); a JPEG frame "
        "cannot be read a tile at a time: it is decoded whole at the reduced scale its tiles "
        "need (1/4 for a 512-pixel tile at 128) and kept (768 MB of decoded images a "
        "process), its tiles read in blocks of the frames that fit: "
        f"{frame_rate / alone_rate:.1f}x as fast as decoding it for each tile. "
        "A slide's tiles of glass (less than a tenth tissue on its 1/16 level: saturated and "
        f"not black) are left out: `{notes['slide'].split('; ', 1)[-1]}`. "
        "Memory: each measurement runs in a fresh process; its "
        "resident peak over what it held before reading (0: no more than the libraries it "
        "had loaded). Reading the scene whole is what "
        "selfsup refused before tiles (above the decompression-bomb limit).",
    ]
    publish("tiles", lines, args.smoke)


if __name__ == "__main__":
    main()
