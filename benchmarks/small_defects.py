"""Benchmark: small defects in large frames, found with tiles (``--tile``) and without.

An inspection camera's frame is thousands of pixels a side and a defect a few dozen: read
whole at the training side (128 pixels on a CPU), a 60-pixel stain in a 2048-pixel frame
becomes four pixels. Frames here are 2048x2048 crops of one real texture (Debian's
gnome-backgrounds wood wallpaper, 4096x4096; each crop turned and flipped at random), saved
as JPEG at quality 90; a quarter of them get one defect (a dark scratch 4 pixels wide and
160 long, or a stain of 60x40 pixels, at a random place). Labels are never used in training.

In one run, each for ``--minutes`` of SimCLR (ResNet-18, defaults otherwise):

- **whole frames**: pretrained on the frames read whole; each frame's anomaly score is the
  leave-one-out kNN distance of its embedding (selfsup's ``anomalies`` with no normal data);
- **tiles**: pretrained with ``--tile 256``; each tile scored the same way among all tiles,
  a frame scored by its highest tile;
- **tiles, views keeping the defect**: the same with views that keep colour (SimCLR's
  colour jitter and gray views teach the encoder to overlook colour, which is what tells a
  stain from the wood), then also crops of at least 80% of the tile and no blur (a crop of
  8% of the tile, SimCLR's smallest, pairs a view with the defect and one without);
- **raw pixels** (no training): the same scores on the frames, or the tiles, read at 32
  pixels and flattened.

Reported: AUROC of frames with a defect against those without, and of tiles holding a
defect against the others.

Usage:
    python benchmarks/small_defects.py                 # about 14 minutes on 2 cores
    python benchmarks/small_defects.py --frames 12 --minutes 0.5 --smoke
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from sklearn.metrics import roc_auc_score

from common import RUNS, load_average, publish
from photos import WALLPAPERS
from selfsup.data.image_folder import ImageFolderSource
from selfsup.run import _machine, pretrain
from selfsup.tools.anomalies import self_scores

FRAME, TILE = 2048, 256
#: Views that keep what a defect is: its colour (no colour jitter or gray views), and the
#: defect itself in both views (crops of at least 80% of the tile; no blur of a scratch).
VIEWS = {
    "views keeping colour": {"jitter_p": 0.0, "grayscale_p": 0.0},
    "views keeping colour, 80-100% crops, no blur": {
        "jitter_p": 0.0,
        "grayscale_p": 0.0,
        "crop_scale": (0.8, 1.0),
        "blur_p": 0.0,
    },
}


def make_frames(folder: Path, count: int, seed: int = 0) -> dict[str, tuple[int, int, int, int]]:
    """``count`` frames in ``folder``; the box (left, top, right, bottom) of each defect,
    by file name."""
    with Image.open(WALLPAPERS / "wood-l.webp") as image:
        texture = image.convert("RGB")
    rng = np.random.default_rng(seed)
    defective = set(rng.choice(count, size=max(1, count // 4), replace=False).tolist())
    boxes = {}
    for k in range(count):
        x, y = (int(v) for v in rng.integers(0, texture.width - FRAME + 1, 2))
        frame = texture.crop((x, y, x + FRAME, y + FRAME)).rotate(90 * int(rng.integers(4)))
        if rng.random() < 0.5:
            frame = frame.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        name = f"frame{k:03d}.jpg"
        if k in defective:
            draw = ImageDraw.Draw(frame)
            cx, cy = (int(v) for v in rng.integers(200, FRAME - 200, 2))
            if k % 2:  # a scratch
                angle = rng.uniform(0, np.pi)
                dx, dy = 80 * np.cos(angle), 80 * np.sin(angle)
                draw.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=(40, 30, 25), width=4)
                boxes[name] = (
                    int(cx - abs(dx)),
                    int(cy - abs(dy)),
                    int(cx + abs(dx)),
                    int(cy + abs(dy)),
                )
            else:  # a stain
                box = (cx - 30, cy - 20, cx + 30, cy + 20)
                draw.ellipse(box, fill=(90, 110, 60))
                boxes[name] = box
        frame.save(folder / name, quality=90)
    return boxes


def raw_rows(source: ImageFolderSource) -> np.ndarray:
    """Every item of ``source`` read at 32 pixels, flattened."""
    source.read_at(32)
    return source.read_batch(range(len(source))).items.flatten(1).numpy()


def tile_truth(ids: list[str], boxes: dict[str, tuple[int, int, int, int]]) -> np.ndarray:
    """Whether each tile ``FILE@xLEFT_yTOP`` overlaps its frame's defect."""
    truth = []
    for item in ids:
        name, corner = item.rsplit("@", 1)
        left, top = (int(part[1:]) for part in corner.split("_"))
        box = boxes.get(name)
        inside = box is not None and not (
            box[2] <= left or box[0] >= left + TILE or box[3] <= top or box[1] >= top + TILE
        )
        truth.append(inside)
    return np.asarray(truth)


def frame_of(ids: list[str]) -> np.ndarray:
    return np.asarray([item.rsplit("@", 1)[0] for item in ids])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--smoke", action="store_true", help="write nothing to BENCHMARKS.md")
    args = parser.parse_args()
    load = load_average()
    started = time.perf_counter()
    RUNS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=RUNS) as tmp:
        folder = Path(tmp) / "frames"
        folder.mkdir()
        boxes = make_frames(folder, args.frames)
        names = sorted(p.name for p in folder.iterdir())
        is_bad = np.asarray([n in boxes for n in names])
        rows: dict[str, tuple[float, float | None]] = {}
        # whole frames
        raw = self_scores(raw_rows(ImageFolderSource(folder)))
        rows["raw pixels, whole frames at 32"] = (roc_auc_score(is_bad, raw), None)
        options = {"time_budget": args.minutes, "show_progress": False, "seed": 0}
        run = pretrain(str(folder), out=str(Path(tmp) / "whole"), **options)
        scores = self_scores(run.embed(str(folder)))
        rows["SimCLR, whole frames"] = (roc_auc_score(is_bad, scores), None)
        print(f"  whole frames: {rows['SimCLR, whole frames']}", flush=True)
        # tiles
        tiles = ImageFolderSource(folder, tile=TILE)
        ids = list(tiles.ids)
        truth, frames = tile_truth(ids, boxes), frame_of(ids)

        def by_frame(tile_scores: np.ndarray) -> np.ndarray:
            return np.asarray([tile_scores[frames == n].max() for n in names])

        raw = self_scores(raw_rows(tiles))
        rows["raw pixels, tiles of 256 at 32"] = (
            roc_auc_score(is_bad, by_frame(raw)),
            roc_auc_score(truth, raw),
        )
        run = pretrain(str(folder), out=str(Path(tmp) / "tiles"), tile=TILE, **options)
        scores = self_scores(run.embed(str(folder)))
        rows[f"SimCLR, --tile {TILE}"] = (
            roc_auc_score(is_bad, by_frame(scores)),
            roc_auc_score(truth, scores),
        )
        print(f"  tiles: {rows[f'SimCLR, --tile {TILE}']}", flush=True)
        # views that keep a defect: nearly the whole tile, its colour, no blur
        for name, keep in VIEWS.items():
            out = str(Path(tmp) / name.replace(" ", "-"))
            run = pretrain(str(folder), out=out, tile=TILE, views=keep, **options)
            scores = self_scores(run.embed(str(folder)))
            name = f"SimCLR, --tile {TILE}, {name}"
            rows[name] = (roc_auc_score(is_bad, by_frame(scores)), roc_auc_score(truth, scores))
            print(f"  {name}: {rows[name]}", flush=True)
    lines = [
        "## Small defects in large frames, with tiles and without (benchmarks/small_defects.py)",
        "",
        f"`python benchmarks/small_defects.py --frames {args.frames} --minutes {args.minutes:g}` "
        f"on {_machine()}; load {load} before it started; "
        f"{(time.perf_counter() - started) / 60:.1f} minutes. {args.frames} frames of "
        f"{FRAME}x{FRAME} cut from one real wood texture (Debian's wallpaper), "
        f"{int(is_bad.sum())} with one small defect (a scratch 4x160 pixels or a stain of "
        f"60x40), {int(truth.sum())} of {len(ids):,} tiles of {TILE} touching one. "
        f"SimCLR (ResNet-18) pretrained {args.minutes:g} minutes each way without labels; "
        "scores: leave-one-out kNN distance of each item among all (selfsup's `anomalies` "
        "without normal data), a frame's tiles by their highest.",
        "",
        "| items scored | frames: AUROC | tiles: AUROC |",
        "| --- | --- | --- |",
    ]
    for name, (frame_auc, tile_auc) in rows.items():
        tile_text = "" if tile_auc is None else f"{tile_auc:.3f}"
        lines.append(f"| {name} | {frame_auc:.3f} | {tile_text} |")
    publish("small_defects", lines, args.smoke)


if __name__ == "__main__":
    main()
