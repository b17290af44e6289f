"""Benchmark: how fast ``embed`` runs at the batch it plans, next to batches of 512 items.

On a CPU, a batch whose activations stay in the processor's caches runs faster per item
than a large one; ``selfsup.embedding.embed_batch`` plans a batch of at most
``CPU_BATCH_BYTES`` of activations and ``CPU_BATCH_ITEMS`` items from the measured memory
of an item's forward pass. This script embeds the same items through the same encoders
with that plan and with the former batch of 512 (``CPU_BATCH_*`` set out of the way),
alternated twice in this process, and reports milliseconds per item. The encoders are
random (their speed does not depend on their weights): the small CNN at 28 pixels,
ResNet-18 at 128 (a CPU's photos), a DINOv2-small-shaped ViT-S/14 at 224 (a foundation
model's frozen embeddings) and TS2Vec's encoder on days of six sensors read every minute.

Usage:
    python benchmarks/embed_batch.py            # about 4 minutes on 2 cores; writes BENCHMARKS.md
    python benchmarks/embed_batch.py --smoke    # seconds, writes nothing
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator

import numpy as np
import torch

import selfsup.embedding as embedding
from common import load_average, write_section
from selfsup.data.arrays import ArraySource
from selfsup.data.series import SeriesSource
from selfsup.encoder import Encoder
from selfsup.modalities.image import build_image_encoder, build_pretrained_image_encoder
from selfsup.modalities.series import build_series_encoder
from selfsup.run import _machine


def dinov2_small(folder: str) -> Encoder:
    """A ViT-S/14 shaped as DINOv2-small (22M parameters), random, read as ``hf:`` reads it."""
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                          image_size=224, patch_size=14)  # fmt: skip
    Dinov2Model(config).save_pretrained(folder)
    return build_pretrained_image_encoder(f"hf:{folder}", in_channels=3)


def cases(smoke: bool, folder: str) -> list[tuple[str, Encoder, object]]:
    """(name, encoder, source) of each case."""
    rng = np.random.default_rng(0)
    scale = 8 if smoke else 1
    out = [
        ("small CNN, 28 px", build_image_encoder("small-cnn", 1, 28),
         ArraySource(rng.integers(0, 255, (8192 // scale, 28, 28), np.uint8))),
        ("ResNet-18, 128 px", build_image_encoder("resnet18", 3, 128),
         ArraySource(rng.integers(0, 255, (1024 // scale, 128, 128, 3), np.uint8))),
        ("TS2Vec, 6 x 1,440 steps", build_series_encoder("ts2vec", in_channels=6),
         SeriesSource(rng.normal(size=(512 // scale, 6, 1440)).astype(np.float32))),
    ]  # fmt: skip
    if not smoke:
        pixels = rng.integers(0, 255, (256, 224, 224, 3), np.uint8)
        out.append(("ViT-S/14 (DINOv2-small), 224 px", dinov2_small(folder), ArraySource(pixels)))
    return out


@contextlib.contextmanager
def batch_of_512() -> Iterator[None]:
    """Embedding batches as before the CPU plan: 512 items where memory allows."""
    saved = embedding.CPU_BATCH_BYTES, embedding.CPU_BATCH_ITEMS
    embedding.CPU_BATCH_BYTES, embedding.CPU_BATCH_ITEMS = embedding.EMBED_BATCH_BYTES, 512
    try:
        yield
    finally:
        embedding.CPU_BATCH_BYTES, embedding.CPU_BATCH_ITEMS = saved


def ms_per_item(encoder: Encoder, source: object, wide: bool) -> tuple[float, int]:
    """Milliseconds per item of ``embed_source`` on ``source``, and the batch it used."""
    with batch_of_512() if wide else contextlib.nullcontext():
        batch = embedding.embed_batch(encoder, source)
        started = time.perf_counter()
        embedding.embed_source(encoder, source)
    return (time.perf_counter() - started) / len(source) * 1000, batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny, writes nothing")
    args = parser.parse_args()
    load, started = load_average(), time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, encoder, source in cases(args.smoke, folder):
            ms = {True: 0.0, False: 0.0}
            batches = {}
            for wide in (True, False, True, False):
                took, batches[wide] = ms_per_item(encoder, source, wide)
                ms[wide] += took / 2
            rows.append((name, len(source), batches[True], ms[True], batches[False], ms[False]))
            print(f"  {rows[-1]}", flush=True)
    lines = [
        "## Embedding batches on a CPU",
        "",
        f"`python benchmarks/embed_batch.py` on {_machine()}, {torch.get_num_threads()} threads, "
        f"load {load} before it started; {(time.perf_counter() - started) / 60:.1f} minutes. "
        "Random encoders and inputs (the speed does not depend on them), embedded by "
        "`embed_source` (bf16 autocast where the CPU has it, fp32 for series), each way twice, "
        "alternated; milliseconds per item.",
        "",
        "| encoder | items | batch of 512 | ms/item | planned batch | ms/item | speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, n, wide_batch, wide_ms, batch, ms in rows:
        lines.append(
            f"| {name} | {n:,} | {wide_batch} | {wide_ms:.2f} | {batch} | {ms:.2f} | "
            f"{wide_ms / ms:.2f}x |"
        )
    lines += [
        "",
        "Reading: the planned batch holds at most 16 MB of activations and 64 items "
        "(`CPU_BATCH_BYTES`, `CPU_BATCH_ITEMS` in `selfsup/embedding.py`), measured from "
        "forward passes of one and three items; on a GPU the batch is limited by memory alone.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.smoke:
        write_section("embed_batch", text)


if __name__ == "__main__":
    main()
