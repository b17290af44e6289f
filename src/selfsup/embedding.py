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
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfsup.core.files import atomic_path, check_writable
from selfsup.core.precision import cpu_has_fast_bf16
from selfsup.core.progress import TrainingProgress
from selfsup.data.base import SkippedItem, Source
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


#: Batches whose items are sorted by length together (see ``iter_embeddings``).
SORT_WINDOW = 16


def iter_embeddings(
    encoder: Encoder,
    source: Source,
    batch_size: int = 512,
    precision: str = "auto",
    show_progress: bool = False,
) -> Iterator[tuple[list[int], np.ndarray, list[SkippedItem]]]:
    """Yield (indices, float32 embeddings, skipped items) batch by batch, in source order.

    Items of varying length (text) are embedded in batches of like length, sorted within
    windows of ``SORT_WINDOW`` batches, and yielded in source order again: a batch pads to
    its longest item, so mixing long and short ones wastes most of the work. Items embedded
    by their parts (``source.parts()``: long recordings) get the mean of their parts'
    embeddings (see :func:`pooled_embeddings`).
    """
    parts = source.parts()
    if parts is not None:
        yield from pooled_embeddings(
            iter_embeddings(encoder, parts.source, batch_size, precision, show_progress),
            source,
            parts.owner,
            encoder.feature_dim,
        )
        return
    spec = encoder.spec or {}
    modality = modality_of(source)
    encoder.eval()
    n = len(source)
    if precision == "auto":
        precision = modality.embed_precision
    batch_size = modality.embed_batch_size(source, batch_size)
    steps = (n + batch_size - 1) // batch_size
    window = batch_size * SORT_WINDOW
    with TrainingProgress(steps, f"embedding {source.name}", enabled=show_progress) as bar:
        for first in range(0, n, window):
            rows = np.arange(first, min(n, first + window))
            keys = source.length_keys(rows)
            order = rows if keys is None else rows[np.argsort(keys, kind="stable")]
            found: dict[int, np.ndarray] = {}
            skipped: dict[int, SkippedItem] = {}
            for start in range(0, len(order), batch_size):
                chunk = [int(i) for i in order[start : start + batch_size]]
                batch = source.read_batch(chunk)
                if batch.indices:
                    x = modality.prepare_input(batch.items.to(encoder.device), spec)
                    with torch.no_grad(), autocast(precision, encoder.device):
                        emb = encoder(x).float().cpu().numpy()
                    found.update(zip(batch.indices, emb, strict=True))
                skipped.update({int(chunk[k]): s for k, s in _skipped_rows(chunk, batch)})
                bar.advance(1, len(batch.indices))
            for start in range(0, len(rows), batch_size):
                part = [int(i) for i in rows[start : start + batch_size]]
                kept = [i for i in part if i in found]
                emb = (
                    np.stack([found[i] for i in kept])
                    if kept
                    else np.zeros((0, encoder.feature_dim), dtype=np.float32)
                )
                yield kept, emb, [skipped[i] for i in part if i in skipped]


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
    show_progress: bool = False,
) -> np.ndarray:
    """All embeddings as one (n, D) float32 array; rows of unreadable items are NaN."""
    out = np.full((len(source), encoder.feature_dim), np.nan, dtype=np.float32)
    for indices, emb, _ in iter_embeddings(encoder, source, batch_size, precision, show_progress):
        out[indices] = emb
    return out


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
    channel is absent (the padding of shorter series), computed in fp32.

    Raises:
        TypeError: the encoder gives no features per time step (only series backbones do).
    """
    encoder.eval()
    batch_size = modality_of(source).embed_batch_size(source, batch_size)
    parts = []
    with torch.no_grad():
        for start in range(0, len(source), batch_size):
            rows = list(range(start, min(len(source), start + batch_size)))
            x = source.read_batch(rows).items.to(encoder.device)
            steps = encoder.timestamps(x).float()
            absent = torch.isnan(x).all(dim=1)
            parts.append(steps.masked_fill(absent[..., None], float("nan")).cpu().numpy())
    return np.concatenate(parts)


@dataclass
class EmbeddingFile:
    """What ``write_embeddings`` wrote."""

    path: Path
    rows: int
    dim: int
    skipped: list[SkippedItem] = field(default_factory=list)
    #: The file of ids beside a ``.npy`` (one id a line, in row order); None otherwise.
    ids_path: Path | None = None


def ids_file(out: str | os.PathLike) -> Path:
    """The ids file written beside a ``.npy`` of embeddings.

    Example:
        >>> ids_file("out/emb.npy").as_posix()
        'out/emb.ids.txt'
    """
    out = Path(out)
    return out.with_name(out.stem + ".ids.txt")


def _embeddings_bytes(n: int, dim: int) -> int:
    """About the bytes of ``n`` float32 embeddings of ``dim`` values with their ids."""
    return n * (4 * dim + 64)


def write_embeddings(
    encoder: Encoder,
    source: Source,
    out: str | os.PathLike,
    batch_size: int = 512,
    precision: str = "auto",
    show_progress: bool = True,
) -> EmbeddingFile:
    """Write one embedding per item to ``.npy``, ``.npz`` or ``.parquet``, in input order,
    with the items' ids.

    ``.npy`` is a float32 (n, D) array written as a stream, its ids one a line in
    ``NAME.ids.txt`` beside it (:func:`ids_file`); ``.npz`` holds ``embeddings`` and ``ids``
    (a text array, read without pickle); ``.parquet`` has columns ``id``, ``label`` (when the
    source has labels), ``readable`` and ``embedding`` (a list of floats), written one row
    group per batch. Rows of unreadable items are NaN (``readable`` false) and the items are
    returned in ``skipped``. Memory stays bounded by the batch size, whatever the dataset
    size (``.npz``: one copy of the array while it is packed). A folder that cannot be
    written, or a disk without room for the result, is found before anything is embedded.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".npy", ".npz", ".parquet"):
        raise ValueError(f"{out}: embeddings are written as .npy, .npz or .parquet, not {suffix!r}")
    if suffix == ".npz":
        # Room for the packed copy too, before anything is embedded.
        check_writable(out, 2 * _embeddings_bytes(len(source), encoder.feature_dim))
        inner = write_embeddings(
            encoder, source, out.with_suffix(".npy"), batch_size, precision, show_progress
        )
        try:
            array = np.load(inner.path, mmap_mode="r")
            ids = np.asarray([str(i) for i in source.ids])
            with atomic_path(out) as tmp, tmp.open("wb") as f:
                np.savez(f, embeddings=array, ids=ids)
            del array
        finally:
            inner.path.unlink(missing_ok=True)
            if inner.ids_path is not None:
                inner.ids_path.unlink(missing_ok=True)
        return EmbeddingFile(out, inner.rows, inner.dim, inner.skipped)
    dim, n = encoder.feature_dim, len(source)
    ids = source.ids
    skipped: list[SkippedItem] = []
    batch_size = modality_of(source).embed_batch_size(source, batch_size)  # as iter_embeddings
    batches = iter_embeddings(encoder, source, batch_size, precision, show_progress)
    check_writable(out, _embeddings_bytes(n, dim))  # before the first item is embedded
    with atomic_path(out) as tmp:
        if suffix == ".npy":
            # Written as a stream, not through a memory map: a disk that fills up then raises
            # an error that names the file, where a memory map dies of SIGBUS without a word.
            with tmp.open("wb") as f:
                header = {"descr": "<f4", "fortran_order": False, "shape": (n, dim)}
                np.lib.format.write_array_header_1_0(f, header)
                for _, block, _, bad in row_blocks(batches, n, dim):
                    f.write(block.astype("<f4", copy=False).tobytes())
                    skipped += bad
            with atomic_path(ids_file(out)) as ids_tmp:
                ids_tmp.write_text("".join(f"{item_id}\n" for item_id in ids))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            fields = [pa.field("id", pa.string())]
            if source.labels is not None:
                fields.append(pa.field("label", pa.string() if source.classes else pa.int64()))
            fields.append(pa.field("readable", pa.bool_()))
            fields.append(pa.field("embedding", pa.list_(pa.float32(), dim)))
            schema = pa.schema(fields)
            with pq.ParquetWriter(tmp, schema) as writer:
                for start, block, readable, bad in row_blocks(batches, n, dim):
                    rows = list(range(start, start + len(block)))
                    columns = {"id": [ids[i] for i in rows]}
                    if source.labels is not None:
                        codes = source.labels[rows]
                        columns["label"] = (
                            [source.classes[c] for c in codes] if source.classes else codes.tolist()
                        )
                    columns["readable"] = readable.tolist()
                    columns["embedding"] = list(block)
                    writer.write_table(pa.table(columns, schema=schema))
                    skipped += bad
    return EmbeddingFile(out, n, dim, skipped, ids_file(out) if suffix == ".npy" else None)
