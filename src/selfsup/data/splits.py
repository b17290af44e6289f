"""Subsets of a source, and the held-out part the training monitor measures on.

Example:
    >>> import numpy as np
    >>> from selfsup.data.arrays import ArraySource
    >>> part = SubsetSource(ArraySource(np.zeros((10, 4, 4), dtype=np.uint8)), [2, 5], "two")
    >>> len(part), part.name
    (2, 'two')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from selfsup.data.base import Batch, Parts, Source
from selfsup.data.folders import CLIP_PLACE, ITEM_PLACE

#: The seed of the named datasets' train/test splits.
SPLIT_SEED = 0


def stratified_split(
    labels: np.ndarray,
    fraction: float,
    seed: int | np.random.Generator = SPLIT_SEED,
    *,
    at_least_one: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified split of item indices: each class sends ``round(count * fraction)`` of
    its items to the second part.

    Args:
        labels: integer labels, shape ``(n,)``.
        fraction: the share of each class in the second (test or validation) part.
        seed: an int draws with ``np.random.RandomState(seed)``, a stream numpy keeps stable
            (the named datasets' official splits depend on it); a Generator draws from it.
        at_least_one: every class gives at least one item to the second part and keeps one
            (every class then needs two items), as a validation split must.

    Returns:
        The first and second parts' indices, each sorted (items keep their order).

    Example:
        >>> first, second = stratified_split(np.array([0] * 4 + [1] * 8), 0.25)
        >>> len(first), len(second)
        (9, 3)
        >>> rng = np.random.default_rng(0)
        >>> [len(p) for p in stratified_split(np.array([0, 0, 1, 1]), 0.1, rng, at_least_one=True)]
        [2, 2]
    """
    rng = np.random.RandomState(seed) if isinstance(seed, int) else seed
    second = []
    for code in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == code))
        count = round(len(members) * fraction)
        if at_least_one:
            count = min(max(count, 1), len(members) - 1)
        second.append(members[:count])
    held = np.sort(np.concatenate(second))
    return np.setdiff1d(np.arange(len(labels)), held), held


def folder_groups(ids: Sequence[str], name: str) -> np.ndarray:
    """Each item's group for a split by folder: the first folder of its path (a patient of
    a hospital export, a day of photos), ``UNIT`` of a window ``UNIT@START``.

    Raises:
        ValueError: an item in no folder (the message names it and the data).

    Example:
        >>> folder_groups(["P1/a.dcm", "P1/b.dcm", "P2/c.dcm", "u7@1440"], "scans").tolist()
        ['P1', 'P1', 'P2', 'u7']
    """
    groups = []
    for item_id in ids:
        if "/" in item_id:
            groups.append(item_id.split("/", 1)[0])
        elif "@" in item_id:
            groups.append(item_id.rsplit("@", 1)[0])
        else:
            raise ValueError(
                f"{name}: {item_id!r} lies in no folder; a split by folder needs every file "
                "in one (a patient's, a day's)"
            )
    return np.array(groups, dtype=object)


#: Contiguous stretches of time the windows of a sensor log are split by, where there is
#: one machine (or too few to hold some out): neighbouring windows overlap or nearly repeat,
#: and on both sides of a split they would make the score a measure of memory.
PERIODS = 20


def time_split(days: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray, str]:
    """Items before a time and items from it, the later ones about ``fraction`` of the items
    with a time: a model is scored on what came after what it was fitted on, as a fraud team
    scores last month's transactions with what it learned before. Items without a time are
    fitted on. Returns both parts' indices (sorted) and the time, ISO 8601.

    Raises:
        ValueError: no item has a time, or all share the cut's time (nothing before it).

    Example:
        >>> days = np.array([20089.0, 20089.5, 20090.0, np.nan, 20091.0])  # 2025-01-01...
        >>> fit, test, cut = time_split(days, 0.25)
        >>> fit.tolist(), test.tolist(), cut
        ([0, 1, 2, 3], [4], '2025-01-03T00:00:00')
    """
    timed = np.flatnonzero(~np.isnan(days))
    if len(timed) == 0:
        raise ValueError("--split-by time: no item has a time")
    ranked = np.sort(days[timed])
    cut = ranked[min(len(ranked) - 1, int(np.ceil(len(ranked) * (1 - fraction))))]
    later = ~np.isnan(days) & (days >= cut)
    if later.all() or not later.any():
        raise ValueError("--split-by time: every item has the same time, none is before another")
    when = str(np.datetime64(round(float(cut) * 86400), "s"))
    return np.flatnonzero(~later), np.flatnonzero(later), when


def period_groups(ids: Sequence[str], periods: int = PERIODS) -> np.ndarray:
    """Each window's stretch of time, for a split by time: the windows ``UNIT@START`` ranked
    by their start (numbers as numbers, times as ISO text sorts them) and cut into
    ``periods`` runs of about equal count; windows of several units at one time share a
    period.

    Example:
        >>> period_groups(["p@3", "p@1", "p@2", "p@10"], periods=2).tolist()
        ['period 2', 'period 1', 'period 1', 'period 2']
        >>> period_groups(["a@2025-01-02", "b@2025-01-01", "a@2025-01-01"], periods=2).tolist()
        ['period 2', 'period 1', 'period 1']
    """
    starts = [item_id.rsplit("@", 1)[-1] for item_id in ids]
    try:
        keys: np.ndarray = np.array([float(start) for start in starts])
    except ValueError:
        keys = np.array(starts, dtype=object)
    order = np.argsort(keys, kind="stable")
    rank = np.searchsorted(keys[order], keys, side="left")  # windows of one time: one rank
    count = max(1, min(periods, len(order)))
    return np.array([f"period {r * count // len(order) + 1}" for r in rank], dtype=object)


def split_group_ids(ids: Sequence[str], name: str, kind: str | None) -> np.ndarray:
    """Each item's group for a split that keeps groups whole (``Source.split_groups``):
    its stretch of time for ``periods`` (:func:`period_groups`), its image for the tiles of
    ``images``, its recording for the clips of ``recordings``, else its first folder or unit
    (:func:`folder_groups`).

    Example:
        >>> split_group_ids(["P1/a.dcm", "P2/b.dcm"], "scans", "patients").tolist()
        ['P1', 'P2']
        >>> split_group_ids(["d1/call.wav@0.00s", "d1/call.wav@9.50s"], "calls", "recordings")
        array(['d1/call.wav', 'd1/call.wav'], dtype=object)
    """
    if kind == "images":  # tiles (scene.tif@x512_y1024): their image
        return np.array([ITEM_PLACE.sub("", item) for item in ids], dtype=object)
    if kind == "recordings":  # clips (call.wav@12.35s): their file
        return np.array([CLIP_PLACE.sub("", item) for item in ids], dtype=object)
    return period_groups(ids) if kind == "periods" else folder_groups(ids, name)


def stratified_group_split(
    labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int = SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """A split in which every group (a patient, a recording) lies on one side, the second
    part about ``fraction`` of the items with the classes' shares kept as far as the groups
    allow (scikit-learn's ``StratifiedGroupKFold``, its first fold).

    Raises:
        ValueError: fewer groups than the split needs (``1 / fraction``, at least 2), or
            fewer items in every class.

    Example:
        >>> labels = np.array([0, 0, 1, 1, 0, 0, 1, 1, 0, 1])
        >>> groups = np.array(list("aabbccddee"))
        >>> first, second = stratified_group_split(labels, groups, 0.2)
        >>> set(groups[first]) & set(groups[second]), len(second)
        (set(), 2)
    """
    from sklearn.model_selection import StratifiedGroupKFold

    folds = max(2, round(1 / fraction))
    distinct = len(set(groups.tolist()))
    if distinct < folds:
        raise ValueError(
            f"{distinct} group(s) for a split by folder that holds out 1 in {folds}: give "
            "more folders, or --test"
        )
    largest = int(np.unique(labels, return_counts=True)[1].max()) if len(labels) else 0
    if largest < folds:  # scikit-learn's own words name neither the data nor a way out
        raise ValueError(
            f"every class has fewer items (at most {largest}) than the {folds} a split by "
            f"folder that holds out 1 in {folds} needs: label more, or give --test"
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    first, second = next(splitter.split(np.zeros(len(labels)), labels, groups))
    return np.sort(first), np.sort(second)


class SubsetSource(Source):
    """The items of ``source`` at ``indices``, in that order.

    Args:
        source: the full source.
        indices: the positions to keep.
        name: the subset's name.
        labels: the subset's label codes and class names, where they are not the source's
            (the labelled rows of a partially labelled source: :func:`labelled_part`).
    """

    def __init__(
        self,
        source: Source,
        indices: Sequence[int],
        name: str,
        labels: tuple[np.ndarray, list[str]] | None = None,
    ) -> None:
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.name = name
        self.modality = source.modality
        if labels is not None:
            self.labels, self.classes = labels
        else:
            self.classes = source.classes
            self.labels = None if source.labels is None else source.labels[self.indices]
        self.preprocessor = getattr(source, "preprocessor", None)  # tables: their encoding
        self.pixel_bits = source.pixel_bits
        self.split_groups = source.split_groups
        self.reads_files = source.reads_files

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def ids(self) -> Sequence[str]:
        inner = self.source.ids  # once: a source may build its ids on each access
        return [inner[i] for i in self.indices]

    def read(self, index: int) -> torch.Tensor:
        return self.source.read(int(self.indices[index]))

    def read_at(self, side: int) -> None:
        self.source.read_at(side)

    def length_keys(self, indices: np.ndarray) -> np.ndarray | None:
        return self.source.length_keys(self.indices[np.asarray(indices)])

    def times(self) -> tuple[str, np.ndarray] | None:
        whole = self.source.times()
        return None if whole is None else (whole[0], whole[1][self.indices])

    def parts(self) -> Parts | None:
        """The base source's parts of this subset's items, in this subset's order."""
        return self.source.parts_of(self.indices, self.name)

    def parts_of(self, rows: np.ndarray, name: str) -> Parts | None:
        """The base source's parts of the items at ``rows`` here (a subset of a subset asks
        the base for its few items, not for every item of this one)."""
        return self.source.parts_of(self.indices[np.asarray(rows, dtype=np.int64)], name)

    @property
    def parts_block(self) -> int | None:
        return self.source.parts_block

    def cut_parts(self, rows: np.ndarray, name: str) -> Parts:
        """The base source's parts of the items at ``rows`` here (see
        :meth:`Source.cut_parts`)."""
        return self.source.cut_parts(self.indices[np.asarray(rows, dtype=np.int64)], name)

    @property
    def unreadable(self) -> dict[str, str]:
        return self.source.unreadable

    def known_unreadable(self) -> dict[str, str]:
        return self.source.known_unreadable()

    def _positions(self, base_rows: np.ndarray) -> np.ndarray:
        """The positions here of the base source's rows that this subset holds, in order."""
        found = np.searchsorted(self.indices, base_rows)
        found = np.minimum(found, len(self.indices) - 1)
        return found[self.indices[found] == base_rows]

    def _blocked(self, name: str) -> bool:
        """Whether the base source orders its items itself (blocks) and this subset keeps
        the base's order, so the subset follows it."""
        custom = getattr(type(self.source), name) is not getattr(Source, name)
        return custom and bool(np.all(self.indices[1:] > self.indices[:-1]))

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        if self._blocked("epoch_order"):
            return self._positions(self.source.epoch_order(seed, epoch))
        return super().epoch_order(seed, epoch)

    def held_bytes(self) -> int:
        return self.source.held_bytes()

    def read_groups(self) -> np.ndarray | None:
        whole = self.source.read_groups()
        return None if whole is None else whole[self.indices]

    def sample_rows(self, limit: int) -> np.ndarray:
        if self._blocked("sample_rows"):
            rows = self._positions(self.source.sample_rows(limit))
            if len(rows):
                return rows
        return super().sample_rows(limit)

    def read_batch(self, indices: Sequence[int]) -> Batch:
        return self._renumbered(indices, self.source.read_batch)

    def read_training_batch(self, indices: Sequence[int]) -> Batch:
        return self._renumbered(indices, self.source.read_training_batch)

    def _renumbered(self, indices: Sequence[int], read: Callable[[list[int]], Batch]) -> Batch:
        """The base source's batch of these items (``read``), numbered as in this subset."""
        positions = {int(self.indices[i]): int(i) for i in indices}
        batch = read([int(self.indices[i]) for i in indices])
        for item in batch.skipped:
            item.index = positions[item.index]
        return Batch(batch.items, [positions[i] for i in batch.indices], batch.skipped)


def held_out_rows(
    n: int, items: int, seed: int = 0, groups: np.ndarray | None = None
) -> np.ndarray | None:
    """The sorted rows :func:`hold_out` holds out of ``n`` items (None: none held out); a
    run's monitor items, which its encoder never trained on. Where items are read in
    ``groups`` (:meth:`Source.read_groups`: the slices of a volume), whole groups are drawn
    until they hold enough, and that many of their items are taken, spread evenly over them:
    a measurement reads a few volumes, not a slice of each.

    Example:
        >>> held_out_rows(1000, 64)[:3].tolist(), held_out_rows(100, 64)
        ([13, 29, 68], None)
        >>> volumes = np.repeat(np.arange(10), 100)  # ten volumes of 100 slices
        >>> np.unique(volumes[held_out_rows(1000, 100, groups=volumes)]).size
        1
    """
    count = min(items, n // 10)
    if count < 16:
        return None
    rng = np.random.default_rng([seed, 7919])
    if groups is None:
        return np.sort(rng.permutation(n)[:count])
    present, sizes = np.unique(groups, return_counts=True)
    drawn = rng.permutation(len(present))
    enough = int(np.searchsorted(np.cumsum(sizes[drawn]), count)) + 1
    rows = np.flatnonzero(np.isin(groups, present[drawn[:enough]]))
    return rows[np.unique(np.linspace(0, len(rows) - 1, count).astype(int))]


def hold_out(source: Source, items: int, seed: int = 0) -> tuple[Source, Source | None]:
    """Split off ``items`` random items (at most a tenth of ``source``) as a held-out part.

    The training loop measures label-free metrics on the held-out part, which it never
    trains on. The split depends only on ``seed``, so a resumed run gets the same one.

    Returns:
        ``(rest, held_out)``; ``held_out`` is None when ``items`` is 0 or the source is too
        small to spare 16 items.

    Example:
        >>> import numpy as np
        >>> from selfsup.data.arrays import ArraySource
        >>> rest, held = hold_out(ArraySource(np.zeros((1000, 4, 4), dtype=np.uint8)), 64)
        >>> len(rest), len(held)
        (936, 64)
    """
    held = held_out_rows(len(source), items, seed, source.read_groups())
    if held is None:
        return source, None
    rest = np.setdiff1d(np.arange(len(source)), held)
    return (
        SubsetSource(source, rest, source.name),
        SubsetSource(source, held, f"{source.name} (held out)"),
    )


def labelled_part(source: Source) -> Source:
    """The items of ``source`` that have labels, as a labelled source: ``source`` itself
    when all do or none does (then whatever needs labels refuses it), else its labelled rows
    (see :class:`selfsup.data.base.PartialLabels`), named ``NAME[labelled]``.

    Example:
        >>> from selfsup.data.text import TextSource
        >>> part = labelled_part(TextSource(["a", "b", "c"], ["pos", None, "neg"]))
        >>> part.name, len(part), part.labels.tolist(), part.classes
        ('texts[labelled]', 2, [1, 0], ['neg', 'pos'])
    """
    partial = source.partial_labels
    if source.labels is not None or partial is None:
        return source
    labels = (partial.codes, partial.classes)
    return SubsetSource(source, partial.rows, f"{source.name}[labelled]", labels=labels)


def unlabelled_part(source: Source) -> Source | None:
    """The items of a partially labelled ``source`` that have no label, named
    ``NAME[unlabelled]``; None when its labels are not partial.

    Example:
        >>> from selfsup.data.text import TextSource
        >>> part = unlabelled_part(TextSource(["a", "b", "c"], ["pos", None, "neg"]))
        >>> part.name, part.indices.tolist(), part.labels
        ('texts[unlabelled]', [1], None)
    """
    partial = source.partial_labels
    if source.labels is not None or partial is None:
        return None
    rows = np.setdiff1d(np.arange(len(source)), partial.rows)
    return SubsetSource(source, rows, f"{source.name}[unlabelled]")


def root_rows(source: Source) -> tuple[Source, np.ndarray | None]:
    """The data a subset (of a subset...) is drawn from, and the subset's rows in it; None
    for rows when ``source`` is no subset.

    Example:
        >>> from selfsup.data.text import TextSource
        >>> texts = TextSource(["a", "b", "c", "d"])
        >>> inner = SubsetSource(SubsetSource(texts, [3, 1, 2], "s"), [2, 0], "t")
        >>> root, rows = root_rows(inner)
        >>> root is texts, rows.tolist()
        (True, [2, 3])
    """
    root, rows = source, None
    while isinstance(root, SubsetSource):
        rows = root.indices if rows is None else root.indices[rows]
        root = root.source
    return root, rows


def item_codes(source: Source) -> np.ndarray | None:
    """Each item's class code, -1 for an item without one (data labelled on some rows only,
    or a subset of it); None when neither ``source`` nor the data it is drawn from has
    labels.

    Example:
        >>> from selfsup.data.text import TextSource
        >>> texts = TextSource(["a", "b", "c"], ["pos", None, "neg"])
        >>> item_codes(texts).tolist(), item_codes(SubsetSource(texts, [2, 1], "s")).tolist()
        ([1, -1, 0], [0, -1])
    """
    if source.labels is not None:
        return source.labels
    root, rows = root_rows(source)
    partial = root.partial_labels if root.labels is None else None
    if partial is None:
        return None
    codes = np.full(len(root), -1, dtype=np.int64)
    codes[partial.rows] = partial.codes
    return codes if rows is None else codes[rows]


def item_labels(source: Source) -> list[str | None] | None:
    """Each item's class name (None for an item without one, in data labelled on some rows
    only, or a subset of it), or None when there are no labels (see :func:`item_codes`).

    Example:
        >>> from selfsup.data.text import TextSource
        >>> item_labels(TextSource(["a", "b", "c"], ["pos", None, "neg"]))
        ['pos', None, 'neg']
    """
    codes = item_codes(source)
    if codes is None:
        return None
    if source.labels is not None:
        classes = source.classes or [str(c) for c in range(int(codes.max()) + 1)]
    else:
        classes = root_rows(source)[0].partial_labels.classes  # type: ignore[union-attr]
    return [classes[int(c)] if c >= 0 else None for c in codes]
