"""Embedding a source with an encoder, in batches, with memory bounded by the batch size.

Example:
    >>> import numpy as np
    >>> from selfsup.data.arrays import ArraySource
    >>> from selfsup.encoder import Encoder
    >>> from selfsup.modalities.image import build_image_encoder
    >>> enc = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4)
    >>> embed_source(enc, ArraySource(np.zeros((5, 8, 8), dtype=np.uint8))).shape
    (5, 32)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import shutil
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfsup.core.files import atomic_path, check_writable, write_json
from selfsup.core.memory import (
    PeakTracker,
    available_memory,
    in_place_tensor,
    steps_reuse_memory,
)
from selfsup.core.precision import cpu_has_fast_bf16
from selfsup.core.progress import ShowProgress, TrainingProgress
from selfsup.data.base import SkippedItem, Source, by_length, unit_items
from selfsup.data.folders import walk_folders
from selfsup.data.hub import split_spec
from selfsup.data.loading import affordable_workers, read_ahead
from selfsup.data.splits import SubsetSource, item_labels, root_rows
from selfsup.encoder import Encoder
from selfsup.modalities import modality_of


def autocast(
    precision: str, device: torch.device | None = None
) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``bf16``, or for ``auto`` where ``device`` (default: the CPU) runs
    bf16 fast.

    Example:
        >>> with autocast("fp32"):
        ...     torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype
        torch.float32
    """
    kind = device.type if device is not None else "cpu"
    fast = torch.cuda.is_bf16_supported() if kind == "cuda" else cpu_has_fast_bf16()
    use_bf16 = precision == "bf16" or (precision == "auto" and fast)
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=use_bf16)


#: The most bytes of activations a batch of embedding may make (:func:`embed_batch`).
EMBED_BATCH_BYTES = 2**30
#: On a CPU, a batch of embedding makes at most this many bytes of activations and holds at
#: most ``CPU_BATCH_ITEMS`` items: batches whose work stays in the processor's caches run
#: faster than large ones (``benchmarks/embed_batch.py``, 2 cores, ms an item at batch 512
#: -> as planned: small CNN at 28 px 0.38 -> 0.26, ResNet-18 at 128 px 7.4 -> 4.6, ViT-S at
#: 224 px 75 -> 51, TS2Vec on days of minutes 29 -> 15).
CPU_BATCH_BYTES = 16 * 2**20
CPU_BATCH_ITEMS = 64
#: Batches whose items are sorted by length together (see ``iter_embeddings``).
SORT_WINDOW = 16
#: Seconds between saves of the rows of an embedding file being written (``NAME.partial``):
#: the most of its work an interruption, a kill or a lost machine costs.
SAVE_EVERY = 30.0
#: Rows per Parquet row group of an embedding file.
PARQUET_ROWS = 16_384
#: Data read from files of at least this many items has its embeddings kept in the run folder
#: (:func:`cached_embeddings`) for the next command on the same files with the same weights.
CACHE_ITEMS = 10_000
#: ... or of at least this many input values in all, however few its items: 7,320 days of 12
#: sensors' minute readings (126 million values) take 53 s through TS2Vec on two cores.
CACHE_VALUES = 50_000_000
#: A split holding at least this share of the file it is drawn from (evaluation's 80% to fit
#: on) is embedded by way of the whole file's kept embeddings: its other splits and every
#: later command on the whole file then read them instead of embedding again.
WHOLE_SHARE = 0.5


def iter_embeddings(
    encoder: Encoder,
    source: Source,
    batch_size: int = 512,
    precision: str = "auto",
    show_progress: ShowProgress = False,
) -> Iterator[tuple[list[int], np.ndarray, list[SkippedItem]]]:
    """Yield (indices, float32 embeddings, skipped items) batch by batch, in source order.

    Items of varying length (text) are embedded in batches of like length, sorted within
    windows of ``SORT_WINDOW`` batches, and yielded in source order again: a batch pads to
    its longest item, so mixing long and short ones wastes most of the work. Items embedded
    by their parts (``source.parts()``: long recordings) get the mean of their parts'
    embeddings (see :func:`pooled_embeddings`); where the parts are found by reading the
    items (documents' windows: ``source.parts_block``), a block of items at a time.
    """
    block = source.parts_block
    if block is not None and len(source) > block:
        yield from _embedded_in_blocks(encoder, source, block, batch_size, precision, show_progress)
        return
    parts = source.parts()
    if parts is not None:
        yield from pooled_embeddings(
            iter_embeddings(encoder, parts.source, batch_size, precision, show_progress),
            source,
            parts.owner,
            encoder.feature_dim,
        )
        return
    if precision == "auto":
        precision = modality_of(source).embed_precision_of(encoder)
    batch_size = embed_batch(encoder, source, batch_size, precision)
    steps = (len(source) + batch_size - 1) // batch_size
    with TrainingProgress(steps, f"embedding {source.name}", enabled=show_progress) as bar:
        yield from _embedded(encoder, source, batch_size, precision, bar)


def _embedded(
    encoder: Encoder, source: Source, batch_size: int, precision: str, bar: TrainingProgress
) -> Iterator[tuple[list[int], np.ndarray, list[SkippedItem]]]:
    """:func:`iter_embeddings` of items each embedded as it is read, in batches of
    ``batch_size`` at ``precision``, each batch advancing ``bar`` by a step."""
    spec = encoder.spec or {}
    modality = modality_of(source)
    encoder.eval()
    n = len(source)
    # Items of one size are yielded batch by batch; others after each window they sort.
    sorts = source.varies_in_length()
    window = batch_size * (SORT_WINDOW if sorts else 1)
    # Files to decode are read ahead by worker processes, in order, while this one embeds.
    workers = 0
    if not sorts:
        wanted = modality.default_workers(source, encoder.device.type != "cpu")
        workers = affordable_workers(source, batch_size, wanted)
    ahead = read_ahead(source, batch_size, workers, encoder.device) if workers else None
    with steps_reuse_memory(sizes_repeat=not sorts) as memory:
        for first in range(0, n, window):
            rows = np.arange(first, min(n, first + window))
            order = by_length(source, rows)
            found: dict[int, np.ndarray] = {}
            skipped: dict[int, SkippedItem] = {}
            for start in range(0, len(order), batch_size):
                chunk = [int(i) for i in order[start : start + batch_size]]
                batch = next(ahead) if ahead is not None else source.read_batch(chunk)
                if batch.indices:
                    items = unit_items(batch.items.to(encoder.device, non_blocking=True))
                    x = modality.prepare_input(items, spec)
                    with torch.no_grad(), autocast(precision, encoder.device):
                        emb = encoder(x).float().cpu().numpy()
                    found.update(zip(batch.indices, emb, strict=True))
                skipped.update({int(chunk[k]): s for k, s in _skipped_rows(chunk, batch)})
                bar.advance(1, len(batch.indices))
                memory.after_step()
            for start in range(0, len(rows), batch_size):
                part = [int(i) for i in rows[start : start + batch_size]]
                kept = [i for i in part if i in found]
                emb = (
                    np.stack([found[i] for i in kept])
                    if kept
                    else np.zeros((0, encoder.feature_dim), dtype=np.float32)
                )
                yield kept, emb, [skipped[i] for i in part if i in skipped]


def _embedded_in_blocks(
    encoder: Encoder,
    source: Source,
    block: int,
    batch_size: int,
    precision: str,
    show_progress: ShowProgress,
) -> Iterator[tuple[list[int], np.ndarray, list[SkippedItem]]]:
    """:func:`iter_embeddings` of items embedded by parts that are found by reading them
    (documents' windows): ``block`` items at a time are cut into their parts, which are
    embedded and pooled before the next block is cut, so that no time passes before the
    first batch and only a block's parts are held. One progress bar counts the batches of
    parts, its total those of the blocks cut and, for the items left, as many parts an item
    as so far."""
    n = len(source)
    if precision == "auto":
        precision = modality_of(source).embed_precision_of(encoder)
    parts_seen = steps_cut = 0
    bar: TrainingProgress | None = None
    with contextlib.ExitStack() as stack:
        for first in range(0, n, block):
            rows = np.arange(first, min(n, first + block))
            items = SubsetSource(source, rows, f"{source.name} [{first:,}:{rows[-1] + 1:,}]")
            parts = source.cut_parts(rows, items.name)
            batch_size = embed_batch(encoder, parts.source, batch_size, precision)
            parts_seen += len(parts.source)
            steps_cut += math.ceil(len(parts.source) / batch_size)
            left = parts_seen / (first + len(rows)) * (n - first - len(rows))
            expected = steps_cut + math.ceil(left / batch_size)
            if bar is None:
                part, whole = parts.words
                described = f"embedding {source.name} ({n:,} {whole} by their {part})"
                bar = stack.enter_context(
                    TrainingProgress(expected, described, enabled=show_progress)
                )
            bar.set_total(max(expected, bar.done))
            embedded = _embedded(encoder, parts.source, batch_size, precision, bar)
            pooled = pooled_embeddings(embedded, items, parts.owner, encoder.feature_dim)
            for kept, emb, skipped in pooled:
                moved = [SkippedItem(first + s.index, s.item_id, s.reason) for s in skipped]
                yield [first + i for i in kept], emb, moved


def embed_batch(
    encoder: Encoder, source: Source, batch_size: int = 512, precision: str = "auto"
) -> int:
    """The batch ``source`` is embedded in: the modality's (``embed_batch_size``), lowered so
    that a batch's activations hold at most ``EMBED_BATCH_BYTES`` (and a quarter of the
    memory available; on a CPU, ``CPU_BATCH_BYTES`` and ``CPU_BATCH_ITEMS``, which run
    faster), as measured on forward passes of one and three items of it (their
    difference is what an item takes; the rest, such as weights cast to bf16, is paid once
    a batch). Items of varying length (text, read sorted by length) keep the modality's
    batch. 512 clips of two-minute recordings through a wav2vec2-base (95M parameters) took
    8.8 GB.

    Example:
        >>> from selfsup.data.arrays import ArraySource
        >>> from selfsup.modalities.image import build_image_encoder
        >>> encoder = build_image_encoder("small-cnn", 1, 28, width=8)
        >>> embed_batch(encoder, ArraySource(np.zeros((4, 28, 28), np.uint8)))
        64
    """
    modality = modality_of(source)
    batch_size = modality.embed_batch_size(source, batch_size)
    if batch_size <= 2 or len(source) <= 2 or source.varies_in_length():
        return batch_size
    if precision == "auto":
        precision = modality.embed_precision_of(encoder)
    # Planned once for a source and an encoder (the monitor embeds the same items each epoch)
    plans = source.__dict__.setdefault("_embed_batches", {})
    key = (id(encoder), precision, batch_size)
    if key in plans and plans[key][0]() is encoder:
        return plans[key][1]
    planned = _planned_batch(encoder, source, batch_size, precision)
    plans[key] = (weakref.ref(encoder), planned)
    return planned


def _planned_batch(encoder: Encoder, source: Source, batch_size: int, precision: str) -> int:
    """See :func:`embed_batch`."""
    modality = modality_of(source)
    first = source.first_item()
    encoder.eval()
    peaks = []
    for count in (1, 3):  # the difference is per item; the rest (weights cast to bf16) fixed
        items = unit_items(torch.cat([first] * count).to(encoder.device))
        x = modality.prepare_input(items, encoder.spec or {})
        existing = [x, *encoder.parameters(), *encoder.buffers()]
        with torch.no_grad(), autocast(precision, encoder.device), PeakTracker(existing) as t:
            encoder(x)
        peaks.append(t.peak)
    per_item = max((peaks[1] - peaks[0]) / 2, 1.0)
    fixed = max(peaks[0] - per_item, 0.0)
    allowed = min(EMBED_BATCH_BYTES, available_memory(encoder.device) // 4) - fixed
    if encoder.device.type == "cpu":
        allowed = min(allowed, CPU_BATCH_BYTES)
        batch_size = min(batch_size, CPU_BATCH_ITEMS)
    return max(1, min(batch_size, int(allowed // per_item)))


def pooled_embeddings(
    embedded: Iterator[tuple[list[int], np.ndarray, list[SkippedItem]]],
    source: Source,
    owner: np.ndarray,
    dim: int,
) -> Iterator[tuple[list[int], np.ndarray, list[SkippedItem]]]:
    """Items' embeddings as the mean of their parts', from the parts' embeddings as
    :func:`iter_embeddings` yields them (in order): each item is yielded once its last part
    was, so only the items under way are held. An item none of whose parts can be read is
    skipped with the first part's reason, and listed in ``source.unreadable``.

    Args:
        embedded: the parts' (rows, embeddings, skipped), in part order.
        source: the whole items' source (ids, and where unreadable items are listed).
        owner: each part's item, nondecreasing.
        dim: the embedding width.

    Example:
        >>> from selfsup.data.arrays import ArraySource
        >>> src = ArraySource(np.zeros((2, 4, 4), np.uint8))
        >>> parts = [([0, 1], np.array([[1.0], [3.0]]), []), ([2], np.array([[5.0]]), [])]
        >>> [(rows, z.tolist()) for rows, z, _ in pooled_embeddings(
        ...     iter(parts), src, np.array([0, 0, 1]), 1)]
        [([0], [[2.0]]), ([1], [[5.0]])]
    """
    ends = np.searchsorted(owner, np.arange(len(source)), side="right")
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    reasons: dict[int, str] = {}
    ids = source.ids
    done = 0  # items before this one were yielded
    for rows, emb, skipped in embedded:
        for row, vector in zip(rows, emb, strict=True):
            item = int(owner[row])
            sums[item] = sums.get(item, 0.0) + vector.astype(np.float64)
            counts[item] = counts.get(item, 0) + 1
        for part in skipped:
            reasons.setdefault(int(owner[part.index]), part.reason)
        seen = 1 + max([*rows, *(part.index for part in skipped)], default=-1)
        complete = int(np.searchsorted(ends, seen, side="right"))
        if complete > done:
            yield _pooled_block(range(done, complete), sums, counts, reasons, ids, dim, source)
            done = complete
    if done < len(source):
        yield _pooled_block(range(done, len(source)), sums, counts, reasons, ids, dim, source)


def _pooled_block(
    items: range,
    sums: dict[int, np.ndarray],
    counts: dict[int, int],
    reasons: dict[int, str],
    ids: Sequence[str],
    dim: int,
    source: Source,
) -> tuple[list[int], np.ndarray, list[SkippedItem]]:
    """The finished ``items``' mean embeddings and skipped items (taken out of the dicts)."""
    kept = [i for i in items if counts.get(i)]
    emb = np.zeros((len(kept), dim), dtype=np.float32)
    for k, i in enumerate(kept):
        emb[k] = sums.pop(i) / counts.pop(i)
    skipped, pooled = [], set(kept)
    for i in items:
        if i in reasons and i not in pooled:
            skipped.append(SkippedItem(i, str(ids[i]), reasons[i]))
            source.unreadable[str(ids[i])] = reasons[i]
        reasons.pop(i, None)
    return kept, emb, skipped


def row_blocks(
    batches: Iterator[tuple[list[int], np.ndarray, list[SkippedItem]]], n: int, dim: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray, list[SkippedItem]]]:
    """:func:`iter_embeddings`' batches as consecutive blocks of rows, to be written one
    after another: ``(first row, float32 embeddings with NaN rows for unreadable items,
    readable mask, skipped items)``. A batch covers the rows from the end of the last one to
    its last row, whatever its size (whole items pooled from parts come a few at a time).

    Example:
        >>> batches = [([0, 2], np.ones((2, 1)), [SkippedItem(1, "b", "bad")]), ([3], np.ones((1, 1)), [])]
        >>> [(start, block[:, 0].tolist(), ok.tolist()) for start, block, ok, _ in row_blocks(
        ...     iter(batches), 5, 1)]
        [(0, [1.0, nan, 1.0], [True, False, True]), (3, [1.0], [True]), (4, [nan], [False])]
    """  # noqa: E501
    start = 0
    for indices, emb, bad in batches:
        end = 1 + max([*indices, *(item.index for item in bad)], default=start - 1)
        if end <= start:
            continue
        block = np.full((end - start, dim), np.nan, dtype=np.float32)
        readable = np.zeros(end - start, dtype=bool)
        block[np.asarray(indices, dtype=int) - start] = emb
        readable[np.asarray(indices, dtype=int) - start] = True
        yield start, block, readable, bad
        start = end
    if start < n:
        yield start, np.full((n - start, dim), np.nan, np.float32), np.zeros(n - start, bool), []


def _skipped_rows(chunk: list[int], batch: Any) -> list[tuple[int, SkippedItem]]:
    """The positions in ``chunk`` of a batch's skipped items (matched by order of the rows
    left out)."""
    kept = set(batch.indices)
    missing = [k for k, i in enumerate(chunk) if i not in kept]
    return list(zip(missing, batch.skipped, strict=False))


def embed_source(
    encoder: Encoder,
    source: Source,
    batch_size: int = 512,
    precision: str = "auto",
    show_progress: ShowProgress = False,
) -> np.ndarray:
    """All embeddings as one (n, D) float32 array; rows of unreadable items are NaN."""
    out = np.full((len(source), encoder.feature_dim), np.nan, dtype=np.float32)
    for indices, emb, _ in iter_embeddings(encoder, source, batch_size, precision, show_progress):
        out[indices] = emb
    return out


#: Items whose embeddings are averaged into an encoder's center (:func:`mean_embedding`): the
#: mean of 2,048 differs from all items' by about 1/45 of each dimension's spread.
CENTER_ITEMS = 2048
#: Held-out items whose embeddings, measured after the last step, are enough for the center.
CENTER_HELD_OUT = 500


def mean_embedding(
    encoder: Encoder, source: Source, items: int = CENTER_ITEMS
) -> tuple[np.ndarray, int]:
    """The mean embedding of up to ``items`` items of ``source`` spread evenly over it
    (unreadable ones left out, the encoder's own center not subtracted), and how many
    were averaged: what ``Encoder.set_center`` subtracts.

    Raises:
        ValueError: no item could be read.

    Example:
        >>> from selfsup.data.series import SeriesSource
        >>> from selfsup.modalities.series import build_series_encoder
        >>> enc = build_series_encoder("ts2vec", 1, depth=1, hidden=4, out_dim=8)
        >>> center, counted = mean_embedding(enc, SeriesSource(np.ones((5, 1, 12))))
        >>> center.shape, counted
        ((8,), 5)
    """
    rows = np.unique(np.linspace(0, len(source) - 1, min(items, len(source))).astype(np.int64))
    chosen = source if len(rows) == len(source) else SubsetSource(source, rows, source.name)
    kept, encoder.center = encoder.center, None
    try:
        z = embed_source(encoder, chosen)
    finally:
        encoder.center = kept
    readable = z[~np.isnan(z).any(axis=1)]
    if len(readable) == 0:
        raise ValueError(f"{source.name}: no item could be read to center the embeddings")
    return readable.astype(np.float64).mean(axis=0).astype(np.float32), len(readable)


def embeddings_tensor(z: np.ndarray) -> torch.Tensor:
    """Embeddings as a float32 tensor, without a copy where they are float32 already (a
    read-only memory map of a kept file included: the tools that take it never write to it,
    so PyTorch's warning about non-writable arrays is silenced).

    Example:
        >>> embeddings_tensor(np.ones((2, 3), dtype=np.float32)).shape
        torch.Size([2, 3])
    """
    return in_place_tensor(np.asarray(z), torch.float32)


def readable_rows(z: np.ndarray, block: int = 65_536) -> np.ndarray:
    """Rows without NaN (an unreadable item's embedding), checked block by block so a
    million rows need no boolean matrix of their size.

    Example:
        >>> readable_rows(np.array([[1.0, 2.0], [np.nan, 0.0]])).tolist()
        [True, False]
    """
    out = np.empty(len(z), dtype=bool)
    for start in range(0, len(z), block):
        out[start : start + block] = ~np.isnan(z[start : start + block]).any(axis=1)
    return out


def embed_timestamps(encoder: Encoder, source: Source, batch_size: int = 512) -> np.ndarray:
    """Embeddings per time step ``(n, length, D)`` of series, NaN at steps where every
    channel is absent (the padding of shorter series), computed in fp32. They take ``n x
    length x D x 4`` bytes (a year of days of minutes: 8 GB); :func:`write_timestamps`
    writes them to a file in constant memory.

    Raises:
        TypeError: the encoder gives no features per time step (only series backbones do).
    """
    batch_size = embed_batch(encoder, source, batch_size, "fp32")
    return np.concatenate([block for _, block in _timestamp_blocks(encoder, source, batch_size)])


def write_timestamps(
    encoder: Encoder,
    source: Source,
    out: str | os.PathLike,
    batch_size: int = 512,
    show_progress: ShowProgress = True,
) -> tuple[int, int, int]:
    """Write :func:`embed_timestamps` of ``source`` to the ``.npy`` file ``out`` batch by
    batch, rows in order after the array's header, so memory stays that of a batch whatever
    the array's size;
    the disk's room for it is checked first, and ``out`` appears only when complete.

    Returns:
        The array's shape ``(n, length, D)``.

    Example:
        >>> import tempfile
        >>> from selfsup.data.series import SeriesSource
        >>> from selfsup.modalities.series import build_series_encoder
        >>> enc = build_series_encoder("ts2vec", in_channels=1, out_dim=4, hidden=4, depth=1)
        >>> out = Path(tempfile.mkdtemp()) / "steps.npy"
        >>> write_timestamps(enc, SeriesSource(np.ones((3, 1, 6))), out, show_progress=False)
        (3, 6, 4)
    """
    out = Path(out)
    shape = (len(source), int(source.item_shape[-1]), encoder.feature_dim)
    check_writable(out, 4 * math.prod(shape))
    batch_size = embed_batch(encoder, source, batch_size, "fp32")
    steps = math.ceil(len(source) / batch_size)
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    with (
        atomic_path(out) as tmp,
        tmp.open("wb") as f,
        TrainingProgress(
            steps, f"embedding {source.name} per time step", enabled=show_progress
        ) as bar,
    ):
        np.lib.format.write_array_header_2_0(f, header)
        for _, block in _timestamp_blocks(encoder, source, batch_size):
            f.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
            bar.advance(1, len(block))
    return shape


def _timestamp_blocks(
    encoder: Encoder, source: Source, batch_size: int
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, per-step embeddings) of each batch of ``batch_size`` items of ``source``,
    in order."""
    encoder.eval()
    with torch.no_grad():
        for start in range(0, len(source), batch_size):
            rows = list(range(start, min(len(source), start + batch_size)))
            x = source.read_batch(rows).items.to(encoder.device)
            steps = encoder.timestamps(x).float()
            absent = torch.isnan(x).all(dim=1)
            yield start, steps.masked_fill(absent[..., None], float("nan")).cpu().numpy()


@dataclass
class EmbeddingFile:
    """What ``write_embeddings`` wrote."""

    path: Path
    rows: int
    dim: int
    skipped: list[SkippedItem] = field(default_factory=list)
    #: The file of ids beside a ``.npy`` (one id a line, in row order); None otherwise.
    ids_path: Path | None = None
    #: Rows an interrupted write had saved, which this one did not embed again.
    resumed_from: int = 0


def ids_file(out: str | os.PathLike) -> Path:
    """The ids file written beside a ``.npy`` of embeddings.

    Example:
        >>> ids_file("out/emb.npy").as_posix()
        'out/emb.ids.txt'
    """
    out = Path(out)
    return out.with_name(out.stem + ".ids.txt")


def embeddings_bytes(n: int, dim: int) -> int:
    """About the bytes of ``n`` float32 embeddings of ``dim`` values with their ids."""
    return n * (4 * dim + 64)


def write_embeddings(
    encoder: Encoder,
    source: Source,
    out: str | os.PathLike,
    batch_size: int = 512,
    precision: str = "auto",
    show_progress: ShowProgress = True,
    say: Callable[[str], None] | None = None,
    key: dict[str, Any] | None = None,
) -> EmbeddingFile:
    """Write one embedding per item to ``.npy``, ``.npz`` or ``.parquet``, in input order,
    with the items' ids; an interrupted write goes on where it stopped.

    ``.npy`` is a float32 (n, D) array, its ids one a line in ``NAME.ids.txt`` beside it
    (:func:`ids_file`); ``.npz`` holds ``embeddings`` and ``ids`` (a text array, read
    without pickle); ``.parquet`` has columns ``id``, ``label`` (when the source has labels;
    null where an item has none), ``readable`` and ``embedding`` (a list of floats). Rows of
    unreadable items are NaN (``readable`` false) and the items are returned in
    ``skipped``. Memory stays bounded by the batch size, whatever the dataset size. A folder
    that cannot be written, or a disk without room for the result, is found before anything
    is embedded.

    The rows are streamed to ``NAME.partial`` (:func:`partial_folder`) and saved every
    ``SAVE_EVERY`` seconds and when the write is interrupted (Ctrl-C, an error); the file
    is made from them at the end. The same call after an interruption, a kill or a lost
    machine (the same encoder weights, the same items) embeds only the rows not saved yet,
    and says so through ``say``: a million support tickets through all-MiniLM-L6-v2 take
    most of an hour on two cores (100,000 took 227 s in bf16; fp32 ran at 192 texts/s,
    an hour and a half for the million), and no more than ``SAVE_EVERY`` seconds of it are
    lost. ``key`` (default: the weights' and the
    items' digests) is what saved rows must match.
    """
    out = Path(out)
    suffix = _embedding_suffix(out)
    dim, n = encoder.feature_dim, len(source)
    # Room for the rows and, where they are packed into another format, for the copy too.
    check_writable(out, embeddings_bytes(n, dim) * (1 if suffix == ".npy" else 2))
    with _only_writer(out):
        return _write_embeddings(
            encoder, source, out, batch_size, precision, show_progress, say, key
        )


@contextlib.contextmanager
def _only_writer(out: Path) -> Iterator[None]:
    """Hold a lock on writing ``out`` (``.NAME.lock`` beside it) while the block runs.

    Raises:
        BlockingIOError: another process is writing it (two commands on the same large data
            keep its embeddings in the same run file).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.with_name(f".{out.name}.lock")
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BlockingIOError(
                errno.EBUSY,
                "another selfsup process is writing it; run this again once it is done",
                str(out),
            ) from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)


def _write_embeddings(
    encoder: Encoder,
    source: Source,
    out: Path,
    batch_size: int,
    precision: str,
    show_progress: bool,
    say: Callable[[str], None] | None,
    key: dict[str, Any] | None,
) -> EmbeddingFile:
    """:func:`write_embeddings`, with the lock on ``out`` held."""
    dim, n = encoder.feature_dim, len(source)
    stream = EmbeddingStream(partial_folder(out), key or embedding_key(encoder, source))
    first = stream.open(n, dim)
    if first and say is not None:
        say(
            f"going on with {out}: {first:,} of {n:,} rows were embedded before an "
            f"interruption (kept in {stream.folder})"
        )
    todo = source if first == 0 else SubsetSource(source, np.arange(first, n), source.name)
    try:
        with stream:
            if first < n:
                batches = iter_embeddings(encoder, todo, batch_size, precision, show_progress)
                for _, block, _, bad in row_blocks(batches, n - first, dim):
                    moved = [
                        SkippedItem(first + item.index, item.item_id, item.reason) for item in bad
                    ]
                    stream.append(block, moved)
    except KeyboardInterrupt:
        raise EmbeddingInterrupted(stream.rows, stream.folder) from None
    rows = stream.folder / EmbeddingStream.ROWS
    written = write_embedding_rows(rows, source, stream.skipped, out, move=True)
    shutil.rmtree(stream.folder, ignore_errors=True)
    written.resumed_from = first
    return written


def write_embedding_rows(
    rows: Path, source: Source, skipped: list[SkippedItem], out: Path, move: bool = False
) -> EmbeddingFile:
    """Write the embeddings in the ``.npy`` file ``rows`` (one row per item of ``source``)
    as ``out`` in its format, as :func:`write_embeddings` does; ``move`` lets a ``.npy``
    output take the file itself instead of a copy.

    Example:
        >>> import tempfile
        >>> from selfsup.data.arrays import ArraySource
        >>> folder = Path(tempfile.mkdtemp())
        >>> np.save(folder / "rows.npy", np.ones((2, 3), np.float32))
        >>> written = write_embedding_rows(folder / "rows.npy", ArraySource(np.zeros((2, 4, 4))),
        ...                                [], folder / "e.parquet")
        >>> written.rows, written.dim, written.path.name
        (2, 3, 'e.parquet')
    """
    suffix = _embedding_suffix(out)
    array = np.load(rows, mmap_mode="r")
    n, dim = array.shape
    if suffix == ".npy":
        with atomic_path(out) as tmp:
            if move:
                os.replace(rows, tmp)
            else:
                shutil.copyfile(rows, tmp)
        with atomic_path(ids_file(out)) as ids_tmp:
            ids_tmp.write_text("".join(f"{item_id}\n" for item_id in source.ids))
    elif suffix == ".npz":
        ids = np.asarray([str(i) for i in source.ids])
        with atomic_path(out) as tmp, tmp.open("wb") as f:
            np.savez(f, embeddings=array, ids=ids)
    else:
        _write_parquet(array, source, skipped, out)
    del array
    return EmbeddingFile(out, n, dim, skipped, ids_file(out) if suffix == ".npy" else None)


def _embedding_suffix(out: Path) -> str:
    """The format ``out`` names, lower case.

    Raises:
        ValueError: not ``.npy``, ``.npz`` or ``.parquet``.
    """
    suffix = out.suffix.lower()
    if suffix not in (".npy", ".npz", ".parquet"):
        raise ValueError(f"{out}: embeddings are written as .npy, .npz or .parquet, not {suffix!r}")
    return suffix


def _write_parquet(
    array: np.ndarray, source: Source, skipped: list[SkippedItem], out: Path
) -> None:
    """The rows of ``array`` as a Parquet file of ``id``, ``label`` (class names, when the
    source has labels; null for items without one), ``readable`` and ``embedding`` columns,
    ``PARQUET_ROWS`` rows a row group."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, dim = array.shape
    ids = source.ids
    readable = np.ones(n, dtype=bool)
    readable[[item.index for item in skipped]] = False
    fields = [pa.field("id", pa.string())]
    labels = item_labels(source)  # class names; None for items without one
    if labels is not None:
        fields.append(pa.field("label", pa.string()))
    fields.append(pa.field("readable", pa.bool_()))
    fields.append(pa.field("embedding", pa.list_(pa.float32(), dim)))
    schema = pa.schema(fields)
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, n, PARQUET_ROWS):
            rows = range(start, min(n, start + PARQUET_ROWS))
            columns: dict[str, Any] = {"id": [str(ids[i]) for i in rows]}
            if labels is not None:
                columns["label"] = labels[start : rows.stop]
            columns["readable"] = readable[start : rows.stop]
            block = np.ascontiguousarray(array[start : rows.stop], dtype=np.float32)
            columns["embedding"] = pa.FixedSizeListArray.from_arrays(block.reshape(-1), dim)
            writer.write_table(pa.table(columns, schema=schema))


def cached_embeddings(
    encoder: Encoder,
    source: Source,
    folder: Path,
    show_progress: ShowProgress = False,
    say: Callable[[str], None] | None = None,
) -> np.ndarray:
    """:func:`embed_source`, kept in ``folder`` (a run's ``embeddings``) for data read from
    files of at least ``CACHE_ITEMS`` items: the next command on the same files (by name,
    size and modification time: :func:`data_stamp`), the same items and the same weights
    reads them back instead of embedding again, an hour for a million texts on two cores;
    unreadable items are listed in ``source.unreadable`` as the embedding listed them. The
    file is written as ``embed`` writes, so an interrupted command's rows are reused too. A
    split of a file is served from the whole file's kept embeddings when there are some, and
    one of at least ``WHOLE_SHARE`` of it keeps them first, so that evaluating on a file and
    then embedding it, or scoring it, embeds it once.

    Kept embeddings come back as a read-only memory map of the file, not read into memory:
    their pages are the page cache's, which the system reclaims before it kills a command,
    so ten million 256-d embeddings (10 GB) are selected from in a 10 GB memory limit
    (``select``: 84 s; read whole, it was killed). Callers never write to them.

    Example:
        >>> import tempfile
        >>> from selfsup.data.arrays import ArraySource
        >>> from selfsup.modalities.image import build_image_encoder
        >>> enc = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4)
        >>> cached_embeddings(enc, ArraySource(np.zeros((5, 8, 8))), Path(tempfile.mkdtemp())).shape
        (5, 32)
    """
    root, rows = root_rows(source)
    if rows is not None:  # a split: its rows of the whole file's, kept already or now
        large = len(rows) >= WHOLE_SHARE * len(root)
        whole = keep_embeddings(encoder, root, folder, show_progress, say, make=large)
        if whole is not None:
            return kept_rows(whole, rows)
    path = keep_embeddings(encoder, source, folder, show_progress, say)
    if path is None:
        return embed_source(encoder, source, show_progress=show_progress)
    return np.load(path, mmap_mode="r")


#: Rows of a kept file read through one mapping of it (then unmapped, see :func:`kept_rows`).
ROWS_AT_ONCE = 65_536


def kept_rows(path: Path, rows: np.ndarray, at_once: int = ROWS_AT_ONCE) -> np.ndarray:
    """Rows ``rows`` of a kept ``.npy``, read ``at_once`` at a time through a mapping of the
    file closed after each: a million rows spread over ten million (10 GB of 256-d
    embeddings) left the whole file mapped and counted in the command's memory (15 GB at
    its peak); now only the rows read are held.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "e.npy"
        >>> np.save(path, np.arange(20, dtype=np.float32).reshape(10, 2))
        >>> kept_rows(path, np.array([1, 4, 9]), at_once=2).tolist()
        [[2.0, 3.0], [8.0, 9.0], [18.0, 19.0]]
    """
    mapped = np.load(path, mmap_mode="r")
    out = np.empty((len(rows), *mapped.shape[1:]), mapped.dtype)
    del mapped
    for start in range(0, len(rows), at_once):
        mapped = np.load(path, mmap_mode="r")
        out[start : start + at_once] = mapped[rows[start : start + at_once]]
        del mapped  # unmapped: its pages leave this process (the page cache may keep them)
    return out


def keep_embeddings(
    encoder: Encoder,
    source: Source,
    folder: Path,
    show_progress: ShowProgress,
    say: Callable[[str], None] | None,
    make: bool = True,
    batch_size: int = 512,
) -> Path | None:
    """The ``.npy`` of ``source``'s embeddings kept in ``folder``, embedded and kept first
    when none is (with ``make``, in batches of at most ``batch_size``); None for data whose
    embeddings are not kept (see :func:`cache_key`), or not kept yet without ``make``.

    Example:
        >>> import tempfile
        >>> from selfsup.data.arrays import ArraySource
        >>> from selfsup.modalities.image import build_image_encoder
        >>> enc = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4)
        >>> array = ArraySource(np.zeros((5, 8, 8)))  # in memory, not files: not kept
        >>> keep_embeddings(enc, array, Path(tempfile.mkdtemp()), False, None) is None
        True
    """
    key = cache_key(encoder, source)
    if key is None:
        return None
    found = kept_embeddings(source, folder, key, say)
    if found is not None:
        return found[0]
    if not make:
        return None
    path, about = _cache_files(folder, key)
    result = write_embeddings(
        encoder, source, path, batch_size, show_progress=show_progress, say=say, key=key
    )
    skipped = [
        {"index": item.index, "id": item.item_id, "reason": item.reason} for item in result.skipped
    ]
    place = data_place(source)
    write_json(about, {"data": source.name, "place": place, "key": key, "skipped": skipped})
    if say is not None:
        say(f"embeddings of {source.name} kept in {path} for the next command on the same files")
    freed = drop_superseded(folder, place, keep=path)
    if freed and say is not None:
        say(
            f"removed {freed[0]} kept embedding file(s) of {source.name} as it was before "
            f"(other files or weights), {freed[1] / 1e6:,.0f} MB"
        )
    return path


def data_place(source: Source) -> str:
    """Where kept embeddings of ``source`` come from: the resolved path of the files it
    reads and its name (a split or subset of them is a place of its own).

    Example:
        >>> from selfsup.data.text import TextSource
        >>> data_place(TextSource(["one"], name="/data/a.txt"))
        '/data/a.txt\\t/data/a.txt'
    """
    root = source
    while getattr(root, "source", None) is not None:
        root = root.source  # type: ignore[attr-defined]
    return f"{Path(str(root.name)).expanduser().resolve()}\t{source.name}"


def drop_superseded(folder: Path, place: str, keep: Path) -> tuple[int, int] | None:
    """Delete the embeddings kept in ``folder`` for ``place`` (:func:`data_place`) other
    than ``keep``: they were made of the same place's files as they were before, or by the
    run's earlier weights, and would never be read again (a folder of photos that grows every
    day would otherwise add a file of all its embeddings every day). The number of files
    and their bytes; None when there were none.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for stem in ("old", "new"):
        ...     _ = (folder / f"{stem}.npy").write_bytes(b"x" * 10)
        ...     _ = (folder / f"{stem}.json").write_text(json.dumps({"place": "p"}))
        >>> drop_superseded(folder, "p", keep=folder / "new.npy"), sorted(
        ...     f.name for f in folder.iterdir())
        ((1, 10), ['new.json', 'new.npy'])
    """
    count = size = 0
    for about in folder.glob("*.json"):
        if about.stem == keep.stem:
            continue
        try:
            saved = json.loads(about.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(saved, dict) or saved.get("place") != place:
            continue
        rows = about.with_suffix(".npy")
        with contextlib.suppress(OSError):
            size += rows.stat().st_size
        for stale in (rows, rows.with_name(rows.stem + ".ids.txt"), about):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        shutil.rmtree(partial_folder(rows), ignore_errors=True)
        count += 1
    return (count, size) if count else None


def kept_embeddings(
    source: Source,
    folder: Path,
    key: dict[str, Any] | None,
    say: Callable[[str], None] | None = None,
) -> tuple[Path, list[SkippedItem]] | None:
    """The ``.npy`` file in ``folder`` that :func:`cached_embeddings` kept for ``source``
    under ``key`` (:func:`cache_key`: the same files, items and weights), with the items it
    could not read (listed in ``source.unreadable`` again); None when there is none, or no
    key (data whose embeddings are not kept).

    Example:
        >>> import tempfile
        >>> from selfsup.data.arrays import ArraySource
        >>> from selfsup.modalities.image import build_image_encoder
        >>> enc = build_image_encoder("small-cnn", in_channels=1, image_size=8, width=4)
        >>> source = ArraySource(np.zeros((5, 8, 8)))
        >>> kept_embeddings(source, Path(tempfile.mkdtemp()), cache_key(enc, source)) is None
        True
    """
    if key is None:
        return None
    path, about = _cache_files(folder, key)
    saved = None
    with contextlib.suppress(OSError, ValueError):
        saved = json.loads(about.read_text())
    if not path.exists() or not isinstance(saved, dict) or saved.get("key") != key:
        return None
    try:
        skipped = [
            SkippedItem(int(item["index"]), str(item["id"]), str(item["reason"]))
            for item in saved.get("skipped", [])
        ]
    except (KeyError, TypeError, ValueError):  # not as this version writes it: embed again
        return None
    if say is not None:
        say(f"embeddings of {source.name} read from {path} (same files, same weights)")
    source.unreadable.update({item.item_id: item.reason for item in skipped})
    return path, skipped


def cache_key(encoder: Encoder, source: Source) -> dict[str, Any] | None:
    """What kept embeddings of ``source`` are found by; None where they are not kept (fewer
    than ``CACHE_ITEMS`` items of fewer than ``CACHE_VALUES`` input values in all, or data
    not read from files)."""
    stamp = data_stamp(source) if _worth_keeping(source) else None
    return None if stamp is None else {**embedding_key(encoder, source), "files": stamp}


def _worth_keeping(source: Source) -> bool:
    """Whether ``source`` is large enough for its embeddings to be kept: ``CACHE_ITEMS``
    items, or ``CACHE_VALUES`` input values (its items' shape, where it has one); of items
    embedded by their parts (a recording by 32 of its clips, a document by its windows),
    the parts (cut once: the embedding reads the same cut): a call centre's 2,002 calls are
    64,002 clips, four minutes of embedding that ``anomalies`` after ``embed`` paid again.
    Parts cut a block at a time as they are embedded (documents' windows,
    ``Source.parts_block``) are not cut here, which would tokenize every document twice.

    Example:
        >>> from selfsup.data.series import SeriesSource
        >>> _worth_keeping(SeriesSource(np.zeros((10, 12, 1440)))), _worth_keeping(
        ...     SeriesSource(np.zeros((3000, 12, 1440))))
        (False, True)
    """
    if len(source) >= CACHE_ITEMS:
        return True
    parts = source.parts() if source.parts_block is None else None
    if parts is not None and len(parts.source) > len(source):
        return _worth_keeping(parts.source)
    shape = getattr(source, "item_shape", None)  # texts have none
    return isinstance(shape, tuple) and len(source) * math.prod(shape) >= CACHE_VALUES


def _cache_files(folder: Path, key: dict[str, Any]) -> tuple[Path, Path]:
    """The embeddings kept for ``key`` in ``folder`` and the JSON that says what they are."""
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return folder / f"{name}.npy", folder / f"{name}.json"


def data_stamp(source: Source) -> str | None:
    """A digest of the names, sizes and modification times of the files ``source`` (or the
    source under a subset) reads: the file, or every file under the folder (of a split
    ``PATH:SPLIT``, under ``PATH``); None for data not read from a path (arrays, DataFrames,
    named datasets).

    Example:
        >>> import tempfile
        >>> from selfsup.data.text import TextSource
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.txt").write_text("one")
        >>> first = data_stamp(TextSource(["one"], name=str(folder / "a.txt")))
        >>> _ = (folder / "a.txt").write_text("one, edited")
        >>> data_stamp(TextSource(["one"], name=str(folder / "a.txt"))) == first, data_stamp(
        ...     TextSource(["one"], name="in memory"))
        (False, None)
    """
    root = source
    while getattr(root, "source", None) is not None:
        root = root.source  # type: ignore[attr-defined]
    path = split_spec(str(root.name))[0]  # a dataset's split PATH:SPLIT: its folder's files
    digest = hashlib.sha256()
    if path.is_file():
        found = path.stat()
        digest.update(f"{path.resolve()}\t{found.st_size}\t{found.st_mtime_ns}".encode())
    elif path.is_dir():
        for folder, _, files in walk_folders(path):  # through links, as the folder is read
            for name in sorted(files):
                with contextlib.suppress(OSError):  # gone since: it is not read either
                    found = os.stat(os.path.join(folder, name))
                    relative = os.path.relpath(os.path.join(folder, name), path)
                    digest.update(f"{relative}\t{found.st_size}\t{found.st_mtime_ns}\n".encode())
    else:
        return None
    return digest.hexdigest()[:32]


def partial_folder(out: str | os.PathLike) -> Path:
    """Where the rows of an embedding file are kept while it is written: ``NAME.partial``
    beside it (see :func:`write_embeddings`).

    Example:
        >>> partial_folder("out/emb.parquet").as_posix()
        'out/emb.parquet.partial'
    """
    out = Path(out)
    return out.with_name(out.name + ".partial")


def saved_rows(out: str | os.PathLike) -> int | None:
    """How many rows of ``out`` an interrupted :func:`write_embeddings` saved (None: none).

    Example:
        >>> saved_rows("/nonexistent/emb.npy") is None
        True
    """
    progress = partial_folder(out) / EmbeddingStream.PROGRESS
    try:
        return int(json.loads(progress.read_text())["rows"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def embedding_key(encoder: Encoder, source: Source) -> dict[str, Any]:
    """What saved rows must have been embedded from to be reused: the encoder's weights and
    the items (their count, ids, and the values of 8 spread over them: a file of the same
    rows edited, or another of as many rows, is embedded afresh), as digests."""
    weights = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        weights.update(name.encode())
        weights.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    items = hashlib.sha256()
    ids = source.ids
    for start in range(0, len(ids), 65_536):
        part = ids[start : start + 65_536]
        items.update("\n".join(str(i) for i in part).encode() + b"\n")
    batch = source.read_batch(source.sample_rows(8).tolist())
    items.update(str(batch.indices).encode())
    if batch.indices:
        items.update(batch.items.contiguous().reshape(-1).view(torch.uint8).numpy())
    return {
        "encoder": weights.hexdigest()[:32],
        "items": len(source),
        "dim": int(encoder.feature_dim),
        "ids": items.hexdigest()[:32],
    }


class EmbeddingInterrupted(KeyboardInterrupt):
    """An embedding interrupted (Ctrl-C): ``rows`` rows are saved in ``folder``, and the same
    command goes on from there.

    Example:
        >>> stop = EmbeddingInterrupted(33_579, Path("runs/p/embeddings/a.npy.partial"))
        >>> isinstance(stop, KeyboardInterrupt), stop.rows
        (True, 33579)
    """

    def __init__(self, rows: int, folder: Path) -> None:
        super().__init__(f"{rows} rows saved in {folder}")
        self.rows = rows
        self.folder = folder


class EmbeddingStream:
    """The rows of an embedding file being written, kept in a folder and saved every
    ``SAVE_EVERY`` seconds and on leaving (even by an exception): ``rows.npy`` (a float32
    ``.npy`` of all ``n`` rows, filled from the start), ``skipped.jsonl`` (unreadable items)
    and ``progress.json`` (the rows saved, and what they are embeddings of).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp()) / "e.npy.partial"
        >>> stream = EmbeddingStream(folder, {"encoder": "w"})
        >>> with stream:
        ...     stream.open(3, 2)
        ...     stream.append(np.ones((2, 2), np.float32), [])
        0
        >>> EmbeddingStream(folder, {"encoder": "w"}).open(3, 2), EmbeddingStream(
        ...     folder, {"encoder": "other"}).open(3, 2)
        (2, 0)
    """

    ROWS = "rows.npy"
    SKIPPED = "skipped.jsonl"
    PROGRESS = "progress.json"

    def __init__(self, folder: Path, key: dict[str, Any]) -> None:
        self.folder = folder
        self.key = key
        self.rows = 0
        self.skipped: list[SkippedItem] = []
        self._file: Any = None
        self._skipped_file: Any = None
        self._saved_at = time.monotonic()

    def open(self, n: int, dim: int) -> int:
        """Open the folder for ``n`` rows of ``dim`` values; the rows already saved there for
        the same key (0 when none, and a folder of other rows is started afresh)."""
        saved = None
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads((self.folder / self.PROGRESS).read_text())
        rows_file = self.folder / self.ROWS
        if not isinstance(saved, dict) or saved.get("key") != self.key or not rows_file.exists():
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            with rows_file.open("wb") as f:
                header = {"descr": "<f4", "fortran_order": False, "shape": (n, dim)}
                np.lib.format.write_array_header_1_0(f, header)
            saved = {"rows": 0}
        with rows_file.open("rb") as f:
            np.lib.format.read_magic(f)
            np.lib.format.read_array_header_1_0(f)
            self._header = f.tell()
        self.rows = int(saved["rows"])
        self._row_bytes = 4 * dim
        self._file = rows_file.open("r+b")
        self._file.truncate(self._header + self.rows * self._row_bytes)  # a half-written block
        self._file.seek(0, os.SEEK_END)
        skipped_file = self.folder / self.SKIPPED
        lines = skipped_file.read_text().splitlines() if skipped_file.exists() else []
        records = [json.loads(line) for line in lines if line.strip()]
        self.skipped = [
            SkippedItem(int(r["index"]), str(r["id"]), str(r["reason"]))
            for r in records
            if int(r["index"]) < self.rows
        ]
        self._skipped_file = skipped_file.open("w")
        self._write_skipped(self.skipped)
        self._save()
        return self.rows

    def append(self, block: np.ndarray, skipped: list[SkippedItem]) -> None:
        """Add the next rows (and their unreadable items); save when ``SAVE_EVERY`` passed."""
        self._file.write(np.ascontiguousarray(block, dtype="<f4").tobytes())
        self._write_skipped(skipped)
        self.skipped += skipped
        self.rows += len(block)
        if time.monotonic() - self._saved_at >= SAVE_EVERY:
            self._save()

    def _write_skipped(self, skipped: list[SkippedItem]) -> None:
        for item in skipped:
            record = {"index": item.index, "id": item.item_id, "reason": item.reason}
            self._skipped_file.write(json.dumps(record) + "\n")

    def _save(self) -> None:
        """Make the rows so far durable, then record how many there are."""
        for handle in (self._file, self._skipped_file):
            handle.flush()
            os.fsync(handle.fileno())
        write_json(self.folder / self.PROGRESS, {"rows": self.rows, "key": self.key})
        self._saved_at = time.monotonic()

    def __enter__(self) -> EmbeddingStream:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is None:
            return
        try:
            self._save()
        finally:
            self._file.close()
            self._skipped_file.close()
            self._file = self._skipped_file = None
