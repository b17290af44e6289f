"""Images in WebDataset shards: tar files whose members are grouped by key
(``000123.jpg``, ``000123.cls``), as ``webdataset``'s ``ShardWriter``, ``img2dataset`` and
LAION-style exports write them.

Opening a folder of ``.tar`` shards (or one ``.tar``) reads the tar headers once (a header
a member: the image bytes are skipped, not read) and the small label members (``.cls``,
``.label``): each key with an image member is an item, named ``SHARD/KEY``, its bytes read
later by seeking to them. Items are read as packed shards are
(:class:`~selfsup.data.shards.ShardSource`): 256 consecutive items of a shard to a group,
decoded at the side training asks for, groups shuffled in blocks, bounded memory. A shard
cut short (a copy that stopped) is read up to its last whole member, with a warning.

Example:
    >>> import io, tarfile, tempfile
    >>> from PIL import Image
    >>> folder = Path(tempfile.mkdtemp())
    >>> with tarfile.open(folder / "shard-000000.tar", "w") as tar:
    ...     for key in range(3):
    ...         image = io.BytesIO()
    ...         Image.new("RGB", (8, 8), (40 * key, 0, 0)).save(image, format="PNG")
    ...         for ext, data in (("png", image.getvalue()), ("cls", str(key % 2).encode())):
    ...             member = tarfile.TarInfo(f"{key:06d}.{ext}")
    ...             member.size = len(data)
    ...             tar.addfile(member, io.BytesIO(data))
    >>> source = WebDatasetSource(folder)
    >>> len(source), source.classes, source.ids[2], tuple(source.read(1).shape)
    (3, ['0', '1'], 'shard-000000/000002', (3, 8, 8))
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from selfsup.data.arrays import present_labels
from selfsup.data.base import EmptySourceError
from selfsup.data.hub import MAX_OTHER_FILES
from selfsup.data.image_folder import IMAGE_EXTENSIONS, natural_order
from selfsup.data.shards import ROWS_PER_GROUP, ShardSource

#: Members read as an item's label (the class index or name as text).
LABEL_EXTENSIONS = ("cls", "label")
#: The largest label member read (a label is a few bytes; anything larger is not one).
LABEL_BYTES = 256


def tar_shards(path: str | os.PathLike) -> list[Path]:
    """The ``.tar`` shards a path names: the file, or every ``.tar`` under the folder (in
    sorted order, hidden ones left out); empty for anything else, and for a folder whose
    first ``MAX_OTHER_FILES`` files hold no shard (img2dataset's ``.parquet`` and
    ``_stats.json`` beside each shard are fine).

    Example:
        >>> tar_shards("/nonexistent")
        []
    """
    path = Path(path)
    if path.is_file():
        return [path] if path.suffix.lower() == ".tar" else []
    if not path.is_dir():
        return []
    shards, others = [], 0
    for folder, subfolders, names in os.walk(path):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            if name.lower().endswith(".tar") and not name.startswith("."):
                shards.append(Path(folder, name))
            else:
                others += 1
        if not shards and others > MAX_OTHER_FILES:  # a folder of photos: not walked through
            return []
    return sorted(shards)


def is_webdataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is WebDataset shards of images: its first shard's first members
    include an image (read from the first few headers only).

    Example:
        >>> is_webdataset("/nonexistent")
        False
    """
    shards = tar_shards(path)
    if not shards:
        return False
    try:
        with tarfile.open(shards[0], "r:") as tar:
            for _, member in zip(range(16), tar, strict=False):
                if member.isfile() and _split(member.name)[1] in _IMAGE_EXTS:
                    return True
    except (tarfile.TarError, OSError):
        return False
    return False


_IMAGE_EXTS = {ext.lstrip(".") for ext in IMAGE_EXTENSIONS}


def _split(name: str) -> tuple[str, str]:
    """A member's key and extension, as WebDataset splits them: at the first dot of its
    file name (``a/b.seg.png`` is key ``a/b``, extension ``seg.png``), lower case."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


class WebDatasetSource(ShardSource):
    """Images of WebDataset tar shards (see the module); labels from ``.cls`` members
    (partial where some keys have none), ids ``SHARD/KEY``.

    Args:
        root: a folder of ``.tar`` shards, or one shard.
        image_size, channels, pixel_bits: as for :class:`ShardSource`.

    Raises:
        EmptySourceError: no image member in any shard.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        image_size: int | None = None,
        channels: int | None = None,
        pixel_bits: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.name = str(root)
        shards = tar_shards(self.root)
        base = self.root if self.root.is_dir() else self.root.parent
        self._files = [str(shard) for shard in shards]
        ids: list[str] = []
        places: list[tuple[int, int, int]] = []  # (shard, data offset, size) of each image
        labels: list[str | None] = []
        cut: list[str] = []
        for s, shard in enumerate(shards):
            name = str(shard.relative_to(base).with_suffix(""))
            found, complete = _index(shard)
            if not complete:
                cut.append(shard.name)
            for key, (offset, size, label) in found.items():
                ids.append(f"{name}/{key}")
                places.append((s, offset, size))
                labels.append(label)
        if not ids:
            raise EmptySourceError(f"{root}: no image member in its {len(shards)} tar shard(s)")
        self._ids, self._places = ids, places
        starts = [
            k
            for k in range(len(ids))
            if k % ROWS_PER_GROUP == 0 or places[k][0] != places[k - 1][0]
        ]
        bounds = [*starts, len(ids)]
        self._layout([(places[k][0], k) for k in starts], list(np.diff(bounds)))
        self._set_labels(labels)
        count = f"{len(shards)} tar shard{'s' if len(shards) != 1 else ''}"
        self.index_note = f"WebDataset: {count}, {len(ids):,} images"
        if cut:
            said = (
                f"{', '.join(cut)}: cut short (read up to its last whole member); copy the "
                "shard again to read the rest"
            )
            self.warning = f"{said}; {self.warning}" if self.warning else said
        self._sizes_and_bits(image_size, channels, pixel_bits)

    def _set_labels(self, given: list[str | None]) -> None:
        """Labels from the ``.cls`` members, classes in numeric order; keys without one make
        them partial."""
        used = sorted({v for v in given if v is not None}, key=natural_order)
        self.labels, self.classes, self.partial_labels = present_labels(given, "cls", used)
        if self.partial_labels is not None:
            self.warning = self.partial_labels.note(len(given), "items")

    @property
    def ids(self) -> Sequence[str]:
        return self._ids

    def _read_group(self, group: int) -> tuple[list[str], list[str | None], list[bytes | str]]:
        start, stop = int(self._starts[group]), int(self._starts[group + 1])
        shard = self._groups[group][0]
        if shard not in self._handles:
            self._handles[shard] = open(self._files[shard], "rb")  # noqa: SIM115  # kept open
        handle = self._handles[shard]
        blobs: list[bytes | str] = []
        for k in range(start, stop):
            _, offset, size = self._places[k]
            handle.seek(offset)  # type: ignore[attr-defined]
            blobs.append(handle.read(size))  # type: ignore[attr-defined]
        return self._ids[start:stop], [None] * (stop - start), blobs


def _index(shard: Path) -> tuple[dict[str, tuple[int, int, str | None]], bool]:
    """Each key's image member (where its bytes start, their size) and label, from the
    tar headers; whether the shard is whole (it ends as a tar ends, and every member's
    bytes are in it)."""
    found: dict[str, list] = {}
    end = shard.stat().st_size
    with shard.open("rb") as f:  # a whole tar ends with two blocks of zeros
        f.seek(max(0, end - 2 * tarfile.BLOCKSIZE))
        complete = end >= 2 * tarfile.BLOCKSIZE and not f.read().strip(b"\0")
    try:
        with tarfile.open(shard, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                if member.offset_data + member.size > end:  # its bytes stop at the cut
                    complete = False
                key, ext = _split(member.name)
                entry = found.setdefault(key, [None, None, None])
                if ext in _IMAGE_EXTS and entry[0] is None:
                    entry[0], entry[1] = member.offset_data, member.size
                elif ext in LABEL_EXTENSIONS and member.size <= LABEL_BYTES:
                    data = tar.extractfile(member)
                    text = data.read().decode("utf-8", "replace").strip() if data else ""
                    entry[2] = text or None
    except (tarfile.ReadError, EOFError, OSError):  # cut short: what was read is kept
        complete = False
    return {k: (v[0], v[1], v[2]) for k, v in found.items() if v[0] is not None}, complete
