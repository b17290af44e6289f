"""Sharded image data: Parquet shards of encoded files, read row group by row group.

A collection too large for memory (or for one folder) is packed once by ``selfsup pack``
into a folder of Parquet files, ``shard-00000.parquet``..., each row an item (``id``,
``label``, ``bytes``: the file exactly as it was, a JPEG stays a JPEG), written in row groups
of ``ROWS_PER_GROUP`` items, and an ``index.json`` (shards, row groups, classes). Reading
decodes items at the side training asks for (as image folders do); memory holds a few row
groups at a time (``CACHED_GROUPS``), whatever the number of items.

Training shuffles in blocks: each epoch permutes the row groups, then shuffles items within
windows of ``WINDOW_GROUPS`` consecutive row groups (fewer where they are large), so a batch
touches a few row groups and each is read about once per epoch (the usual trade of streaming
loaders such as WebDataset and LitData: a local shuffle instead of a global one).

Example:
    >>> import io, tempfile
    >>> from PIL import Image
    >>> def png(value):
    ...     out = io.BytesIO()
    ...     Image.new("L", (8, 8), value).save(out, format="PNG")
    ...     return out.getvalue()
    >>> folder = Path(tempfile.mkdtemp())
    >>> items = ((f"{i}.png", "odd" if i % 2 else "even", png(i)) for i in range(10))
    >>> write_shards(items, folder, rows_per_group=4)
    10
    >>> source = ShardSource(folder)
    >>> len(source), source.classes, source.ids[9], source.read(3).shape
    (10, ['even', 'odd'], '9.png', torch.Size([1, 8, 8]))
"""

from __future__ import annotations

import io
import json
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfsup.core.files import write_json
from selfsup.core.progress import ShowProgress, TrainingProgress
from selfsup.data.base import (
    CODE_ERRORS,
    Batch,
    EmptySourceError,
    ItemReadError,
    PartialLabels,
    SkippedItem,
    Source,
    block_order,
)
from selfsup.data.image_folder import (
    BITS_SAMPLE,
    ImageFolderSource,
    bits_of,
    default_channels,
    image_header,
    item_tensor,
    read_pixels,
)
from selfsup.data.splits import item_labels

INDEX_FILE = "index.json"
FORMAT = "selfsup-shards/1"
#: Items per Parquet row group: the unit of reading.
ROWS_PER_GROUP = 256
#: Items per shard file.
ROWS_PER_SHARD = 100_000
#: Row groups a process keeps decoded-ready in memory, and the bytes they may hold (photos of
#: 5 MB make a row group of 1.3 GB; each worker process keeps its own).
CACHED_GROUPS = 12
CACHED_BYTES = 512 * 2**20
#: Row groups whose items are shuffled together in training.
WINDOW_GROUPS = 8


def is_shard_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by :func:`write_shards`."""
    index = Path(path) / INDEX_FILE
    if not index.is_file():
        return False
    try:
        return json.loads(index.read_text()).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def write_shards(
    items: Iterable[tuple[str, str | None, bytes]],
    out: str | os.PathLike,
    rows_per_group: int = ROWS_PER_GROUP,
    rows_per_shard: int = ROWS_PER_SHARD,
    split_groups: str | None = None,
) -> int:
    """Write ``(id, label or None, encoded bytes)`` items as Parquet shards and an index into
    ``out`` (which must not hold shards already); the number of items. Memory holds one row
    group. ``split_groups`` (the folder's ``Source.split_groups``: patients) is kept in the
    index, so evaluation splits the shards as it splits the folder.

    Raises:
        FileExistsError: ``out`` holds files already.
        EmptySourceError: no item.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: the folder holds files already; give an empty or new one")
    out.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("id", pa.string()), ("label", pa.string()), ("bytes", pa.binary())])
    shards: list[dict] = []
    classes: set[str] = set()
    writer, rows, group = None, 0, ([], [], [])

    def flush() -> None:
        nonlocal writer
        if not group[0]:
            return
        if writer is None:
            name = f"shard-{len(shards):05d}.parquet"
            writer = pq.ParquetWriter(out / f"{name}.tmp", schema, compression="none")
            shards.append({"file": name, "groups": []})
        table = pa.table({"id": group[0], "label": group[1], "bytes": group[2]}, schema=schema)
        writer.write_table(table, row_group_size=len(group[0]))
        shards[-1]["groups"].append(len(group[0]))
        for part in group:
            part.clear()

    def close_shard() -> None:
        nonlocal writer
        if writer is not None:
            writer.close()
            name = shards[-1]["file"]
            os.replace(out / f"{name}.tmp", out / name)
            writer = None

    for item_id, label, data in items:
        group[0].append(str(item_id))
        group[1].append(None if label is None else str(label))
        group[2].append(data)
        if label is not None:
            classes.add(str(label))
        rows += 1
        if len(group[0]) == rows_per_group:
            flush()
        if rows % rows_per_shard == 0:
            flush()
            close_shard()
    flush()
    close_shard()
    if rows == 0:
        raise EmptySourceError(f"{out}: no item to pack")
    index = {"format": FORMAT, "items": rows, "classes": sorted(classes), "shards": shards}
    if split_groups:
        index["split_groups"] = split_groups
    write_json(out / INDEX_FILE, index)
    return rows


def pack_image_folder(
    folder: str | os.PathLike,
    out: str | os.PathLike,
    rows_per_group: int = ROWS_PER_GROUP,
    show_progress: ShowProgress = "auto",
    **label_options: Any,
) -> int:
    """Pack every image file of ``folder`` (labels as :class:`ImageFolderSource` finds them:
    first-level subfolders, or a table given by ``labels_file``, ``label_column`` and
    ``id_column``; files without one are packed unlabelled) into shards in ``out``; files
    are copied as they are, not decoded, with progress once the work has taken 5 s (200,000
    photos of a few MB are hundreds of GB to copy). The number of items."""
    source = ImageFolderSource(folder, image_size=1, channels=3, **label_options)  # no sizes
    places = source.places
    if places is not None and bool((places.plane >= 0).any()):
        raise ValueError(
            f"{folder}: holds volumes (NIfTI, multi-frame DICOM) read slice by slice from their "
            "files; shards hold whole files, read as one image each: train on the folder"
        )
    labels = item_labels(source) or [None] * len(source)
    with TrainingProgress(len(source), f"packing {source.name}", show_progress) as bar:

        def items() -> Iterator[tuple[str, str | None, bytes]]:
            for rel, label in zip(source.ids, labels, strict=True):
                data = (source.root / rel).read_bytes()
                bar.advance(1, 1)
                yield rel, label, data

        return write_shards(items(), out, rows_per_group, split_groups=source.split_groups)


def blob_bytes(blobs: list[bytes | str]) -> int:
    """The bytes a row group's items hold."""
    return sum(len(b) for b in blobs)


class _GroupIds(Sequence[str]):
    """The ids of a shard source, read row group by row group when asked for."""

    def __init__(self, source: ShardSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int | slice) -> str | list[str]:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        group, offset = self.source.locate(int(index))
        return self.source.group(group)[0][offset]


class ShardSource(Source):
    """Images from a folder of shards written by :func:`write_shards`.

    Args:
        root: the shard folder.
        image_size: the side items are decoded to; by default the median shorter side of a
            sample of items.
        channels: as for :class:`ImageFolderSource` (by default :func:`default_channels`).
        pixel_bits: as for :class:`ImageFolderSource` (by default from a sample of items).
    """

    modality = "image"
    reads_files = True

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        image_size: int | None = None,
        channels: int | None = None,
        pixel_bits: int | None = None,
    ) -> None:
        self.root = Path(root)
        if not is_shard_folder(self.root):
            raise ValueError(f"{self.root}: not a shard folder (no {INDEX_FILE} of {FORMAT})")
        index = json.loads((self.root / INDEX_FILE).read_text())
        self.name = str(self.root)
        self.classes = index["classes"] or None
        self.split_groups = index.get("split_groups")  # a hospital's patients, as packed
        self._files = [shard["file"] for shard in index["shards"]]
        sizes = [(s, g, n) for s, shard in enumerate(index["shards"])
                 for g, n in enumerate(shard["groups"])]  # fmt: skip
        self._layout([(s, g) for s, g, _ in sizes], [n for _, _, n in sizes])
        if self.classes:
            self._read_labels()
        self._sizes_and_bits(image_size, channels, pixel_bits)

    def _layout(self, groups: list[tuple[int, ...]], counts: list[int]) -> None:
        """Set the row groups (where each lies, how a subclass reads it) and their item
        counts; empty caches."""
        self._groups = groups
        self._starts = np.cumsum([0, *counts])
        self._n = int(self._starts[-1])
        self._cache: OrderedDict[int, tuple[list[str], list[str | None], list[bytes | str]]] = (
            OrderedDict()
        )
        self._cached_bytes = 0
        self._handles: dict[int, object] = {}
        self._pid = os.getpid()

    def _sizes_and_bits(
        self, image_size: int | None, channels: int | None, pixel_bits: int | None
    ) -> None:
        """The side, channels and significant bits items are read with: given, else from a
        sample of items."""
        if image_size is None or channels is None:
            sides, counts = self._sample_headers()
            image_size = image_size or int(np.median(sides))
            channels = channels or default_channels(counts)
        self.image_size = int(image_size)
        self.channels = int(channels)
        if pixel_bits is None:
            sample = self._sampled()
            sample = sample[:: max(1, len(sample) // BITS_SAMPLE)]  # each one read whole
            pixel_bits, note = bits_of([io.BytesIO(b) for b in sample])
            self.index_note = "; ".join(n for n in (self.index_note, note) if n) or None
        self.pixel_bits = pixel_bits

    def _read_labels(self) -> None:
        """Label codes of every item (the label column only: 8 bytes an item); items packed
        without a label make the labels partial (:class:`PartialLabels`)."""
        import pyarrow.parquet as pq

        code = {name: i for i, name in enumerate(self.classes or [])}
        code[None] = -1
        labels = np.empty(self._n, dtype=np.int64)
        start = 0
        for file in self._files:
            column = pq.read_table(self.root / file, columns=["label"])["label"].to_pylist()
            labels[start : start + len(column)] = [code[v] for v in column]
            start += len(column)
        if (labels >= 0).all():
            self.labels = labels
            return
        rows = np.flatnonzero(labels >= 0)
        self.classes = None
        self.partial_labels = PartialLabels(rows, labels[rows], list(code)[:-1], "label")
        self.warning = self.partial_labels.note(self._n, "items")

    def _sampled(self) -> list[bytes]:
        """The bytes of up to 64 items: the first 8 of 8 row groups spread over the shards
        (items without bytes left out)."""
        groups = np.unique(np.linspace(0, len(self._groups) - 1, 8).astype(int))
        blobs = [data for g in groups for data in self.group(int(g))[2][:8]]
        return [data for data in blobs if isinstance(data, bytes)]

    def _sample_headers(self) -> tuple[list[int], list[int]]:
        sides, counts = [], []
        for data in self._sampled():
            try:
                side, channels = image_header(io.BytesIO(data))
            except Exception:  # unreadable items are skipped when read
                continue
            sides.append(side)
            counts.append(channels)
        if not sides:
            raise EmptySourceError(f"{self.root}: none of the sampled items can be read")
        return sides, counts

    def __len__(self) -> int:
        return self._n

    @property
    def ids(self) -> Sequence[str]:
        return _GroupIds(self)

    @property
    def item_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    def read_at(self, side: int) -> None:
        self.image_size = int(side)

    def locate(self, index: int) -> tuple[int, int]:
        """The row group holding item ``index`` and its offset there."""
        if not 0 <= index < self._n:
            raise IndexError(f"{self.name}: no item {index} (there are {self._n})")
        group = int(np.searchsorted(self._starts, index, side="right")) - 1
        return group, index - int(self._starts[group])

    def group(self, group: int) -> tuple[list[str], list[str | None], list[bytes | str]]:
        """Row group ``group``'s ids, labels and bytes (an item without bytes: the reason),
        cached: the last ``CACHED_GROUPS`` groups read, at most ``CACHED_BYTES`` of them
        (the one asked for whatever its size)."""
        if self._pid != os.getpid():  # a forked worker opens its own files
            self._handles, self._cache, self._pid = {}, OrderedDict(), os.getpid()
            self._cached_bytes = 0
        if group in self._cache:
            self._cache.move_to_end(group)
            return self._cache[group]
        rows = self._read_group(group)
        self._cache[group] = rows
        self._cached_bytes += blob_bytes(rows[2])
        while len(self._cache) > 1 and (
            len(self._cache) > CACHED_GROUPS or self._cached_bytes > CACHED_BYTES
        ):
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= blob_bytes(dropped[2])
        return rows

    def _read_group(self, group: int) -> tuple[list[str], list[str | None], list[bytes | str]]:
        """Row group ``group`` read from its shard."""
        import pyarrow.parquet as pq

        shard, within = self._groups[group]
        if shard not in self._handles:
            self._handles[shard] = pq.ParquetFile(self.root / self._files[shard])
        table = self._handles[shard].read_row_group(within)  # type: ignore[attr-defined]
        return (
            table["id"].to_pylist(),
            table["label"].to_pylist(),
            table["bytes"].to_pylist(),
        )

    def read(self, index: int) -> torch.Tensor:
        group, offset = self.locate(index)
        ids, _, blobs = self.group(group)
        if isinstance(blobs[offset], str):
            raise ItemReadError(ids[offset], blobs[offset])
        try:
            stream = io.BytesIO(blobs[offset])
            pixels = read_pixels(stream, self.image_size, self.channels, self.pixel_bits)
        except CODE_ERRORS:
            raise
        except Exception as err:
            reason = f"cannot read image: {type(err).__name__}: {err}"
            raise ItemReadError(ids[offset], reason) from err
        return item_tensor(pixels)

    def read_batch(self, indices: Sequence[int]) -> Batch:
        # Items in row-group order, so each group is read once for the batch.
        order = sorted(range(len(indices)), key=lambda k: int(indices[k]))
        items: dict[int, torch.Tensor] = {}
        skipped = []
        for k in order:
            i = int(indices[k])
            try:
                items[k] = self.read(i)
            except ItemReadError as err:
                skipped.append(SkippedItem(i, err.item_id, err.reason))
                self.unreadable[err.item_id] = err.reason
        kept = [k for k in range(len(indices)) if k in items]
        stacked = torch.stack([items[k] for k in kept]) if kept else torch.empty(0)
        return Batch(stacked, [int(indices[k]) for k in kept], skipped)

    def window_groups(self) -> int:
        """Row groups whose items are shuffled together: ``WINDOW_GROUPS``, fewer where
        that many (as large as the first) would pass ``CACHED_BYTES`` (then each would be
        read again for every batch), at least one."""
        first = blob_bytes(self.group(0)[2])
        return int(max(1, min(WINDOW_GROUPS, CACHED_BYTES // max(1, first))))

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        """Row groups in a random order, items shuffled within windows of
        :meth:`window_groups` of them."""
        owner = np.repeat(np.arange(len(self._groups)), np.diff(self._starts))
        return block_order(owner, self.window_groups(), seed, epoch)

    def sample_rows(self, limit: int) -> np.ndarray:
        """Up to ``limit`` rows from evenly spaced row groups, whole groups at a time (cheap
        to read), for statistics."""
        per_group = int(self._starts[1] - self._starts[0])
        count = max(1, min(len(self._groups), limit // max(1, per_group)))
        chosen = np.unique(np.linspace(0, len(self._groups) - 1, count).astype(int))
        rows = np.concatenate([np.arange(self._starts[g], self._starts[g + 1]) for g in chosen])
        return rows[:limit]
