"""The source interface every modality shares: a length, items, optional labels, ids.

A source knows how to read items of one modality from somewhere (a folder, an array, a named
dataset). It knows nothing about augmentations, models or losses.

Example:
    >>> import numpy as np
    >>> from selfsup.data.arrays import ArraySource
    >>> src = ArraySource(np.zeros((4, 8, 8), dtype=np.uint8), name="zeros")
    >>> len(src), tuple(src.read_batch([0, 1]).items.shape)
    (4, (2, 1, 8, 8))
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

#: What a source's per-item reader returns (a tensor, or an image's pixels).
T = TypeVar("T")


#: What a reader's catch-all around decoding one file lets through: errors of selfsup's own
#: code (a name it lacks, a module it cannot import), not of a damaged file; skipped as
#: unreadable items they would drop every item without a word about the bug.
CODE_ERRORS = (NameError, ImportError, RecursionError)


class ItemReadError(Exception):
    """One item could not be read (a corrupt or unreadable file).

    Args:
        item_id: the id of the item, for files the path.
        reason: what is wrong with it, in words.
    """

    def __init__(self, item_id: str, reason: str) -> None:
        super().__init__(f"{item_id}: {reason}")
        self.item_id = item_id
        self.reason = reason


class DataWarning(UserWarning):
    """What a person should know about data a run opens (a source's ``warning``: columns not
    read, windows left out, labels that look like features); the command line prints it as
    one ``warning:`` line."""


class EmptySourceError(ValueError):
    """A source holds no readable item at all (an empty folder, an empty array)."""


@dataclass
class SkippedItem:
    """An item left out of a batch because it could not be read."""

    index: int
    item_id: str
    reason: str


@dataclass
class Batch:
    """Items read together.

    Attributes:
        items: the stacked items (for images a float32 tensor (n, C, H, W) in [0, 1]).
        indices: the source indices of the rows of ``items``, in order.
        skipped: the items that were asked for but could not be read.
    """

    items: torch.Tensor
    indices: list[int]
    skipped: list[SkippedItem] = field(default_factory=list)

    def pin_memory(self) -> Batch:
        """The batch with its items in page-locked memory, which a GPU copies from while
        the processor goes on (a ``DataLoader`` with ``pin_memory=True`` calls this)."""
        return Batch(self.items.pin_memory(), self.indices, self.skipped)


def unit_items(items: torch.Tensor) -> torch.Tensor:
    """Items of :meth:`Source.read_training_batch` as :meth:`Source.read_batch` gives them:
    uint8 images become float32 in [0, 1] (the same values as reading them as floats);
    anything else is returned as it is.

    Example:
        >>> unit_items(torch.tensor([0, 51, 255], dtype=torch.uint8)).tolist()
        [0.0, 0.20000000298023224, 1.0]
    """
    if items.dtype != torch.uint8:
        return items
    return items.float().div_(255.0)


@dataclass
class Parts:
    """The parts an item is embedded by, where one read of it would not stand for all of it
    (a long recording: clips spread over it): an item's embedding is the mean of its parts'.

    Attributes:
        source: the parts, as items of the same shape as the whole source's.
        owner: each part's item (row of the whole source), nondecreasing: an item's parts
            are consecutive.
        words: what a part and an item are called in progress lines (``clips``, ``files``).
        single: what one read of an item holds, where a tool reads it whole (``explain``):
            "its centre clip of 0.95 s", "its first 126 tokens".
    """

    source: Source
    owner: np.ndarray
    words: tuple[str, str] = ("parts", "items")
    single: str = "one part"


@dataclass
class PartialLabels:
    """The labels of a source whose label column is empty on some rows (far more raw data
    than labels). Such a source is unlabelled (``labels`` is None), so pretraining,
    embedding and the label-free tools read every row; ``labelled_part`` in
    ``selfsup.data.splits`` gives the labelled rows as a labelled source, which evaluation
    and adaptation use.

    Attributes:
        rows: the positions of the labelled items, increasing.
        codes: their class codes, indexing ``classes``.
        classes: the class names of the labelled rows.
        column: the label column, for messages.

    Example:
        >>> part = PartialLabels(np.array([0, 3]), np.array([1, 0]), ["bad", "good"], "stars")
        >>> part.note(5)
        "3 of 5 rows have no label in 'stars': all rows are read to pretrain and embed, the 2 \
labelled ones to evaluate and adapt"
    """

    rows: np.ndarray
    codes: np.ndarray
    classes: list[str]
    column: str

    def of_parts(self, owner: np.ndarray) -> PartialLabels:
        """The labels of parts of the items (a file's clips) whose items are ``owner``
        (nondecreasing): each part of a labelled item has its label.

        Example:
            >>> part = PartialLabels(np.array([1]), np.array([0]), ["dog"], "label")
            >>> part.of_parts(np.array([0, 0, 1, 1, 2])).rows.tolist()
            [2, 3]
        """
        code = np.full(int(owner.max()) + 1 if len(owner) else 0, -1, dtype=np.int64)
        inside = self.rows < len(code)
        code[self.rows[inside]] = self.codes[inside]
        parts = code[owner]
        rows = np.flatnonzero(parts >= 0)
        return PartialLabels(rows, parts[rows], self.classes, self.column)

    def note(self, total: int, unit: str = "rows") -> str:
        """What a person should know of these labels, for a source of ``total`` ``unit``."""
        missing = total - len(self.rows)
        return (
            f"{missing:,} of {total:,} {unit} {'has' if missing == 1 else 'have'} no label in "
            f"{self.column!r}: all {unit} are read to pretrain and embed, the "
            f"{len(self.rows):,} labelled one{'s' if len(self.rows) != 1 else ''} to "
            "evaluate and adapt"
        )


class RowIds(Sequence[str]):
    """The ids ``"0" .. "n-1"`` of an in-memory source, made on demand instead of stored."""

    def __init__(self, n: int) -> None:
        self._n = n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int | slice) -> str | list[str]:  # type: ignore[override]
        if isinstance(index, slice):
            return [str(i) for i in range(self._n)[index]]
        return str(range(self._n)[index])


class TextIds(Sequence[str]):
    """Ids held in one Arrow string array: about 13 bytes an id where a list of Python
    strings takes about 65 (ten million transaction ids: 0.13 GB, not 0.65), read as a list
    of ``str`` is (by position, slices, ``index``, ``in``, iteration, NumPy and Arrow).

    Example:
        >>> ids = TextIds(["T1", "T2", "T3"])
        >>> len(ids), ids[1], ids[-1], ids[:2], ids.index("T3"), "T9" in ids, list(ids)
        (3, 'T2', 'T3', ['T1', 'T2'], 2, False, ['T1', 'T2', 'T3'])
    """

    def __init__(self, values: Iterable[str] | Any) -> None:
        import pyarrow as pa

        array = pa.array(values, type=pa.large_string(), from_pandas=True)
        self._array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array

    def __len__(self) -> int:
        return len(self._array)

    def __getitem__(self, index: int | slice) -> str | list[str]:  # type: ignore[override]
        if isinstance(index, slice):
            return self._array[index].to_pylist()
        if not -len(self) <= index < len(self):
            raise IndexError(f"id {index} of {len(self)}")
        return self._array[index].as_py()

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), _IDS_AT_ONCE):
            yield from self._array[start : start + _IDS_AT_ONCE].to_pylist()

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        """The first position of ``value`` (from ``start``, before ``stop``).

        Raises:
            ValueError: it is not among them.
        """
        import pyarrow.compute as pc

        stop = len(self) if stop is None else stop
        found = -1
        if isinstance(value, str):
            found = pc.index(self._array, value, start=start, end=stop).as_py()
        if found < 0:
            raise ValueError(f"{value!r} is not among the ids")
        return int(found)

    def __contains__(self, value: object) -> bool:
        try:
            self.index(value)
        except ValueError:
            return False
        return True

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self._array.to_numpy(zero_copy_only=False), dtype=dtype)

    def __arrow_array__(self, type: Any = None) -> Any:
        return self._array if type is None else self._array.cast(type)


#: Ids made into Python strings at a time when iterated.
_IDS_AT_ONCE = 65_536
#: A table of at least this many rows keeps its ids as :class:`TextIds`.
COMPACT_IDS = 100_000


def check_unique_ids(ids: Sequence[str], name: str, unit: str = "row", offset: int = 0) -> None:
    """Refuse ids that repeat: outputs are joined back to the data by id.

    Example:
        >>> check_unique_ids(["a", "b", "a"], "x.csv")
        Traceback (most recent call last):
        ...
        ValueError: x.csv: row 2 repeats the id 'a' of row 0; ids must be unique
    """
    first: dict[str, int] = {}
    for i, item_id in enumerate(ids):
        if item_id in first:
            raise ValueError(
                f"{name}: {unit} {i + offset} repeats the id {item_id!r} of {unit} "
                f"{first[item_id] + offset}; ids must be unique"
            )
        first[item_id] = i


def column_ids(frame: Any, column: str | None, name: str) -> Sequence[str]:
    """Item ids of a table: the values of ``column`` as text (present and unique; a
    :class:`TextIds` from ``COMPACT_IDS`` rows), else the row numbers from 0, the convention
    for row ids in every modality.

    Example:
        >>> import pandas as pd
        >>> column_ids(pd.DataFrame({"key": ["u7", "u9"]}), "key", "t"), column_ids(
        ...     pd.DataFrame({"key": [1]}), None, "t")
        (['u7', 'u9'], ['0'])
    """
    if column is None:
        return [str(i) for i in range(len(frame))]
    values = frame[column]
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ValueError(f"{name}: row {row} has no id in column {column!r}")
    ids = values.astype(str)
    if not ids.is_unique:  # hashed by pandas (ten million ids: no dict of them), then named
        check_unique_ids(ids.tolist(), name)
    if len(ids) < COMPACT_IDS:
        return ids.tolist()
    from selfsup.core.memory import give_back_freed

    give_back_freed()  # the hash of them, kept by Arrow's allocator
    return TextIds(ids)


def checked_rows(indices: Sequence[int], n: int, name: str) -> np.ndarray:
    """``indices`` as an int64 array, after checking each lies in ``0..n-1``.

    Raises:
        IndexError: an index out of range; the message names it and the source.

    Example:
        >>> checked_rows([2, 0], 3, "x").tolist()
        [2, 0]
    """
    rows = np.asarray(indices, dtype=np.int64).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        bad = rows[(rows < 0) | (rows >= n)][0]
        raise IndexError(f"index {bad} out of range for {name} with {n} items")
    return rows


def require_labels(source: Source, purpose: str) -> np.ndarray:
    """The source's labels, or a one-line refusal that says where labels come from.

    Example:
        >>> class Unlabelled:
        ...     name, labels = "reviews.jsonl", None
        >>> require_labels(Unlabelled(), "evaluation")
        Traceback (most recent call last):
        ...
        ValueError: reviews.jsonl: evaluation needs labels, and this data has none (a folder's \
labels are its first-level subfolders or a --labels table; a JSONL, CSV or table file names its \
field of labels with --label-column)
    """
    if source.labels is None:
        why = getattr(source, "labels_note", None)  # a folder's own reason: patient folders
        if not (why or "").startswith("no classes"):
            why = (
                "a folder's labels are its first-level subfolders or a --labels table; a "
                "JSONL, CSV or table file names its field of labels with --label-column"
            )
        raise ValueError(f"{source.name}: {purpose} needs labels, and this data has none ({why})")
    return source.labels


def require_classes(labels: np.ndarray, name: str, purpose: str) -> None:
    """Refuse labels of fewer than two classes where a classifier is fitted on them: a probe
    of one class scores 1.0 whatever the encoder, and a model of one class predicts it for
    everything.

    Args:
        labels: the integer class codes.
        name: the data's name, for the message.
        purpose: what needs the classes ("evaluation", "adaptation"...).

    Raises:
        ValueError: fewer than two distinct classes; the message names the data.

    Example:
        >>> try:
        ...     require_classes(np.zeros(5, dtype=int), "reviews.csv", "evaluation")
        ... except ValueError as err:
        ...     print(str(err).split(";")[0])
        reviews.csv: evaluation needs labels of two classes or more
    """
    distinct = np.unique(np.asarray(labels))
    if distinct.size < 2:
        raise ValueError(
            f"{name}: {purpose} needs labels of two classes or more; all {len(labels)} items "
            f"have the same label"
        )


class Source(abc.ABC):
    """A finite, indexable collection of items of one modality.

    Subclasses implement ``__len__``, ``read`` and the ``ids`` property; they may override
    ``read_batch`` when reading many items at once is faster than one by one.
    """

    #: The modality of the items: "image", "series", "tabular", "audio" or "text".
    modality: str = "image"
    #: A short human-readable name (a folder path, a dataset name).
    name: str = ""
    #: Whether items are decoded from files when read (worth worker processes).
    reads_files: bool = False
    #: Integer class codes per item, or None when the source is unlabeled.
    labels: np.ndarray | None = None
    #: Class names indexed by label code, or None when unlabeled.
    classes: list[str] | None = None
    #: Labels of only some items (a label column with empty cells; ``labels`` is then None).
    partial_labels: PartialLabels | None = None
    #: How a folder's file list was found (scanned, or a run's saved index), for people.
    index_note: str | None = None
    #: Where a folder's labels came from when a table gave them (``--labels``, metadata.csv).
    labels_note: str | None = None
    #: What of each item the encoder reads where the data decided it (a table's columns:
    #: which are numbers, categories or times, which are not read), for people; None else.
    inputs_note: str | None = None
    #: Images: the significant bits its integer pixels wider than 8 bits are read with (12
    #: for a camera's 12-bit values in 16-bit files); None where it has none such.
    pixel_bits: int | None = None
    #: What a source's first-level folders are where items in one must stay on one side of
    #: a split (``"patients"``: a hospital's slices of one patient are near copies;
    #: ``"units"``: the windows ``UNIT@START`` of one machine's logs; ``"periods"``: the
    #: windows of a single machine, split by stretches of time, see
    #: ``selfsup.data.splits.period_groups``; ``"images"``: the tiles ``FILE@xLEFT_yTOP`` of
    #: one image; ``"recordings"``: the clips ``FILE@STARTs`` of one recording); evaluation
    #: splits by them unless told otherwise, and a run's kNN vote of its labelled items
    #: counts other groups' items only. None: items split freely.
    split_groups: str | None = None
    #: What a person should know before using it: printed with pretrain's data line, and by
    #: ``Run.open`` (every command that reads data) as a :class:`DataWarning`.
    warning: str | None = None

    @abc.abstractmethod
    def __len__(self) -> int:
        """The number of items."""

    @abc.abstractmethod
    def read(self, index: int) -> torch.Tensor:
        """Read one item as a tensor; raise ItemReadError when it cannot be read."""

    @property
    @abc.abstractmethod
    def ids(self) -> Sequence[str]:
        """One stable id per item (a relative path, or the row number as text)."""

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        """The order training reads the items in during ``epoch``: a seeded permutation
        (sources read in blocks, such as shards, shuffle block-wise instead)."""
        return np.random.default_rng([seed, epoch]).permutation(len(self))

    def held_bytes(self) -> int:
        """The bytes a process reading this source keeps besides the items it gives (the
        decompressed volumes of a folder of scans), for the memory plan; 0 by default.

        Example:
            >>> Source.held_bytes(None)
            0
        """
        return 0

    def read_groups(self) -> np.ndarray | None:
        """Each item's group of items read together cheaply and apart dearly (the slices of
        a compressed volume: decompressing the volume is the cost), so that what is held
        out to monitor training takes whole groups; None (the default): items read alone.

        Example:
            >>> Source.read_groups(None) is None
            True
        """
        return None

    def sample_rows(self, limit: int) -> np.ndarray:
        """Up to ``limit`` evenly spaced rows, for statistics over the data."""
        return np.unique(np.linspace(0, len(self) - 1, min(limit, len(self))).astype(int))

    def length_keys(self, indices: np.ndarray) -> np.ndarray | None:
        """A cheap guess of each item's length (text: characters), so that items of like
        length can share a batch and pad less; None when items all have one size.

        Example:
            >>> Source.length_keys(None, np.arange(3)) is None  # images, tables...
            True
        """
        return None

    def varies_in_length(self) -> bool:
        """Whether items differ in size (texts: they have :meth:`length_keys`), so batches
        are grouped by length and their sizes change from one to the next.

        Example:
            >>> from selfsup.data.arrays import ArraySource
            >>> ArraySource(np.zeros((3, 4, 4), np.uint8)).varies_in_length()  # images
            False
        """
        return len(self) > 0 and self.length_keys(np.arange(1)) is not None

    def times(self) -> tuple[str, np.ndarray] | None:
        """Where items carry a time (a table's first date and time column): its name and each
        item's time in days since 1970, NaN where missing; None (the default) where they do
        not. Evaluation splits by it with ``--split-by time``.

        Example:
            >>> Source.times(None) is None  # images, texts...
            True
        """
        return None

    def parts(self) -> Parts | None:
        """The parts each item is embedded by (see :class:`Parts`); None (the default):
        every item is embedded as it is read.

        Example:
            >>> from selfsup.data.arrays import ArraySource
            >>> ArraySource(np.zeros((2, 4, 4), np.uint8)).parts() is None
            True
        """
        return None

    def parts_of(self, rows: np.ndarray, name: str) -> Parts | None:
        """The parts of the items at ``rows`` (a subset's, named ``name``), each owned by its
        position in ``rows``; by default cut from :meth:`parts` of every item.

        Example:
            >>> from selfsup.data.arrays import ArraySource
            >>> ArraySource(np.zeros((2, 4, 4), np.uint8)).parts_of(np.array([1]), "x") is None
            True
        """
        whole = self.parts()
        if whole is None:
            return None
        from selfsup.data.splits import SubsetSource

        first = np.searchsorted(whole.owner, rows, side="left")
        end = np.searchsorted(whole.owner, rows, side="right")
        counts = end - first
        # Each item's run of parts, item after item: starts repeated, plus 0, 1, ... within.
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        found = np.repeat(first, counts) + within
        owner = np.repeat(np.arange(len(rows)), counts)
        part, item = whole.words
        named = f"{name} ({len(found):,} {part} of {len(rows):,} {item})"
        return Parts(SubsetSource(whole.source, found, named), owner, whole.words, whole.single)

    @property
    def parts_block(self) -> int | None:
        """How many items have their parts found at once when all of them are embedded, where
        finding an item's parts reads it (a document's windows come from its tokens: cutting
        two million reviews up front took 85 s and held 2.8 million windows' texts); None (the
        default) where :meth:`parts` is cheap (recordings' clips come from their lengths) or
        there are none.

        Example:
            >>> from selfsup.data.arrays import ArraySource
            >>> ArraySource(np.zeros((2, 4, 4), np.uint8)).parts_block is None
            True
        """
        return None

    def cut_parts(self, rows: np.ndarray, name: str) -> Parts:
        """The parts of the items at ``rows`` alone, each owned by its position in ``rows``,
        an item that one read holds being its own single part: what embedding reads a block
        of :attr:`parts_block` items by.

        Example:
            >>> from selfsup.data.arrays import ArraySource
            >>> cut = ArraySource(np.zeros((3, 4, 4), np.uint8)).cut_parts(np.array([2, 0]), "x")
            >>> len(cut.source), cut.owner.tolist()
            (2, [0, 1])
        """
        found = self.parts_of(rows, name)
        if found is not None:
            return found
        from selfsup.data.splits import SubsetSource

        return Parts(SubsetSource(self, rows, name), np.arange(len(rows), dtype=np.int64))

    def read_at(self, side: int) -> None:
        """Read items at ``side`` pixels a side from now on, where the source decodes at any
        size (image folders); the others keep their items as they are."""
        return None

    def first_item(self, tries: int = 64) -> torch.Tensor:
        """The first readable item, as a batch of one (its shape tells size and channels);
        unreadable items before it are passed over. Items are read one at a time: a folder of
        12-megapixel photos read at their own size takes 110 MB a photo as floats (reading
        eight at once held 2.2 GB to learn one shape).

        Raises:
            EmptySourceError: none of the first ``tries`` items can be read.
        """
        reasons = []
        for index in range(min(len(self), tries)):
            batch = self.read_batch([index])
            if batch.indices:
                return batch.items
            reasons += [f"{s.item_id}: {s.reason}" for s in batch.skipped]
        first = f" (the first: {reasons[0]})" if reasons else ""
        raise EmptySourceError(
            f"{self.name}: none of the first {min(len(self), tries)} items can be read{first}"
        )

    def read_batch(self, indices: Sequence[int]) -> Batch:
        """Read several items, skipping (and reporting) those that cannot be read."""
        items, kept, skipped = self.read_each(indices, self.read)
        stacked = torch.stack(items) if items else torch.empty(0)
        return Batch(stacked, kept, skipped)

    def read_each(
        self, indices: Sequence[int], read: Callable[[int], T]
    ) -> tuple[list[T], list[int], list[SkippedItem]]:
        """``read`` of each item that can be read, their indices, and the items that cannot
        be (each also kept in :attr:`unreadable`)."""
        items, kept, skipped = [], [], []
        for i in indices:
            try:
                items.append(read(int(i)))
                kept.append(int(i))
            except ItemReadError as err:
                skipped.append(SkippedItem(int(i), err.item_id, err.reason))
                self.unreadable[err.item_id] = err.reason
        return items, kept, skipped

    def read_training_batch(self, indices: Sequence[int]) -> Batch:
        """Read several items as training moves them to its device: as :meth:`read_batch`,
        except that 8-bit images may come as uint8 (0..255 standing for [0, 1]), a quarter of
        the bytes to copy, pin and send; :func:`unit_items` turns them into floats there.

        Example:
            >>> from selfsup.data.arrays import ArraySource
            >>> source = ArraySource(np.full((2, 4, 4), 255, np.uint8))
            >>> items = source.read_training_batch([0, 1]).items
            >>> items.dtype, unit_items(items).max().item()
            (torch.uint8, 1.0)
        """
        return self.read_batch(indices)

    @property
    def unreadable(self) -> dict[str, str]:
        """Unreadable items this source met in this process so far: id -> reason (each
        once, however often it was read)."""
        if "_unreadable" not in self.__dict__:
            self._unreadable: dict[str, str] = {}
        return self._unreadable

    def known_unreadable(self) -> dict[str, str]:
        """Items known to be unreadable without reading them, id -> reason: those found when
        the data was opened and named in its warning (a text file's rows without text), of
        the data a subset is drawn from as a whole. A run lists them in ``skipped.txt``
        however few of them its steps met.

        Example:
            >>> from selfsup.data.text import TextSource
            >>> TextSource(["a", None, "c"]).known_unreadable()
            {'1': 'no text'}
        """
        return {}

    @property
    def has_labels(self) -> bool:
        """Whether every item carries a class label."""
        return self.labels is not None

    def describe(self) -> str:
        """A one-line summary, e.g. ``fashion-mnist: 60000 image items, 10 classes``."""
        classes = f", {len(self.classes)} classes" if self.classes else ", unlabeled"
        return f"{self.name}: {len(self)} {self.modality} items{classes}"


class InMemorySource(Source):
    """A source whose items are the rows of one array or tensor ``values`` (n, ...), with
    optional ids; ``read_batch`` is one indexing copy and never skips anything.

    Subclasses set ``self.values``, ``self.name`` and, if they have ids, ``self._ids``.
    """

    values: np.ndarray | torch.Tensor
    _ids: list[str] | None = None

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def ids(self) -> Sequence[str]:
        """The given ids, or the row numbers as text."""
        return self._ids if self._ids is not None else RowIds(len(self))

    def read(self, index: int) -> torch.Tensor:
        """Item ``index`` as a tensor."""
        return self.read_batch([index]).items[0]

    def read_batch(self, indices: Sequence[int]) -> Batch:
        """Items at ``indices`` as one tensor (n, ...)."""
        rows = checked_rows(indices, len(self), self.name)
        return Batch(torch.as_tensor(self.values[rows]), rows.tolist(), [])


#: Steps whose items are sorted by length together when training batches are grouped by
#: length (Hugging Face's ``group_by_length`` sorts 50 batches' items at a time).
LENGTH_GROUP_STEPS = 50
#: Lengths are sorted with a random factor in exp(+-this), new each epoch, so that items of
#: like length do not share a batch every epoch where an epoch is a single group (which would
#: fix a contrastive method's negatives). On 30,000 WordNet glosses in batches of 64, the
#: batches hold 1.26x the characters of their texts (1.07x without the factor, 3.3x when
#: shuffled plainly); on 640 of them, two epochs share 36% of their pairs of items in a batch
#: (98% without it).
LENGTH_JITTER = 0.2


def grouped_by_length(
    source: Source, order: np.ndarray, per_step: int, rng: np.random.Generator
) -> np.ndarray:
    """``order`` (a whole number of steps of ``per_step`` items) rearranged so that each
    step's items are of like length and pad little: the items of every ``LENGTH_GROUP_STEPS``
    consecutive steps are sorted by length (``Source.length_keys``, times a random factor
    near 1, ``LENGTH_JITTER``) and cut into steps, which are then shuffled among
    themselves. Items stay in their group of steps, so a source read in blocks is still read
    block by block; ``order`` as it is where items have one size.

    Example:
        >>> from selfsup.data.text import TextSource
        >>> texts = ["a", "a long text", "bb", "another long text"]
        >>> order = grouped_by_length(TextSource(texts), np.arange(4), 2,
        ...                           np.random.default_rng(0))
        >>> sorted(sorted(step) for step in order.reshape(2, 2).tolist())
        [[0, 2], [1, 3]]
    """
    order = np.asarray(order)
    keys = source.length_keys(order)
    if keys is None:
        return order
    keys = keys * np.exp(rng.uniform(-LENGTH_JITTER, LENGTH_JITTER, len(keys)))
    grouped = np.empty_like(order)
    span = per_step * LENGTH_GROUP_STEPS
    for start in range(0, len(order), span):
        part = order[start : start + span]
        steps = part[np.argsort(keys[start : start + span], kind="stable")].reshape(-1, per_step)
        grouped[start : start + len(part)] = steps[rng.permutation(len(steps))].reshape(-1)
    return grouped


def by_length(source: Source, rows: np.ndarray) -> np.ndarray:
    """``rows`` in order of their items' lengths (``Source.length_keys``), shortest first, so
    that batches cut from them in turn pad little; as they are where items have one size.

    Example:
        >>> from selfsup.data.text import TextSource
        >>> by_length(TextSource(["a longer text", "short", "mid text"]), np.arange(3))
        array([1, 2, 0])
    """
    rows = np.asarray(rows)
    keys = source.length_keys(rows)
    return rows if keys is None else rows[np.argsort(keys, kind="stable")]


def block_order(group_of: np.ndarray, window: int, seed: int, epoch: int) -> np.ndarray:
    """An epoch's order of items read in blocks (``group_of[i]``: item i's row group): the
    groups in a random order, and the items of each ``window`` consecutive ones shuffled
    together, so a batch touches a few groups and each is read about once an epoch.

    Example:
        >>> order = block_order(np.array([0, 0, 1, 1, 2, 2]), 1, seed=0, epoch=0)
        >>> sorted(order.tolist()), [set((order[k : k + 2] // 2).tolist()) for k in (0, 2, 4)]
        ([0, 1, 2, 3, 4, 5], [{2}, {0}, {1}])
    """
    rng = np.random.default_rng([seed, epoch])
    groups = rng.permutation(int(group_of.max()) + 1 if len(group_of) else 0)
    members = np.split(np.argsort(group_of, kind="stable"), np.cumsum(np.bincount(group_of))[:-1])
    parts = [
        rng.permutation(np.concatenate([members[g] for g in groups[w : w + window]]))
        for w in range(0, len(groups), window)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
