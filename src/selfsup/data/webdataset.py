"""Images, sounds and texts in WebDataset shards: tar files whose members are grouped by key
(``000123.jpg``, ``000123.cls``; ``000123.flac``, ``000123.json``), as ``webdataset``'s
``ShardWriter``, ``img2dataset`` and LAION-style exports write them.

Opening a folder of ``.tar`` shards (or one ``.tar``) reads the tar headers once (a header
a member: the image bytes are skipped, not read) and the small label members (``.cls``,
``.label``): each key with an image member is an item, named ``SHARD/KEY``, its bytes read
later by seeking to them. Items are read as packed shards are
(:class:`~selfsup.data.shards.ShardSource`): 256 consecutive items of a shard to a group,
decoded at the side training asks for, groups shuffled in blocks, bounded memory. A shard
cut short (a copy that stopped) is read up to its last whole member, with a warning.
Sounds (:class:`WebDatasetAudioSource`) are read as a folder of audio files is, each key's
sound member decoded from its bytes; texts (``.txt`` members alone, not as the captions of
images: :func:`read_webdataset_texts`) as a folder of ``.txt`` files is.

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

import contextlib
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfsup.data.arrays import present_labels
from selfsup.data.audio import AUDIO_EXTENSIONS, AudioBytes, AudioFolderSource
from selfsup.data.base import EmptySourceError
from selfsup.data.hub import MAX_OTHER_FILES
from selfsup.data.image_folder import IMAGE_EXTENSIONS, natural_order
from selfsup.data.shards import ROWS_PER_GROUP, WINDOW_GROUPS, ShardSource, block_order
from selfsup.data.text import TextSource

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


def webdataset_media(path: str | os.PathLike) -> str | None:
    """``image``, ``audio`` or ``text``: what the items of the WebDataset shards ``path``
    names are, from the first shard's first few headers: images or sounds where a member is
    one (a ``.txt`` beside them is a caption), texts where ``.txt`` members come alone; None
    where ``path`` is no WebDataset shards.

    Example:
        >>> webdataset_media("/nonexistent") is None
        True
    """
    shards = tar_shards(path)
    if not shards:
        return None
    found = set()
    # A shard cut short (or no tar at all): the members read before the error say.
    with contextlib.suppress(tarfile.TarError, OSError), tarfile.open(shards[0], "r:") as tar:
        for _, member in zip(range(16), tar, strict=False):
            ext = _split(member.name)[1]
            if member.isfile():
                found.update(k for k, exts in MEDIA.items() if ext in exts)
    return next((kind for kind in MEDIA if kind in found), None)  # MEDIA's order: text last


_IMAGE_EXTS = {ext.lstrip(".") for ext in IMAGE_EXTENSIONS}
#: The member extensions of each kind of item, in the order a shard holding several is
#: read as (an image's ``.txt`` member is its caption).
MEDIA = {
    "image": _IMAGE_EXTS,
    "audio": {ext.lstrip(".") for ext in AUDIO_EXTENSIONS},
    "text": {"txt"},
}


def _split(name: str) -> tuple[str, str]:
    """A member's key and extension, as WebDataset splits them: at the first dot of its
    file name (``a/b.seg.png`` is key ``a/b``, extension ``seg.png``), lower case."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


@dataclass
class _Members:
    """What the tar headers of a root's shards say (:func:`_scan`): the shards, and for
    each item (a key with a member of the kind asked for) its id ``SHARD/KEY``, where its
    bytes are (shard number, data offset, size), its member's extension, its label (None:
    no label member), and a warning for shards cut short."""

    shards: list[Path]
    ids: list[str]
    places: list[tuple[int, int, int]]
    extensions: list[str]
    labels: list[str | None]
    warning: str | None

    @property
    def note(self) -> str:
        """``WebDataset: N tar shards``."""
        return f"WebDataset: {len(self.shards)} tar shard{'s' if len(self.shards) != 1 else ''}"

    def classes_and_labels(self) -> tuple[Any, list[str] | None, Any, str | None]:
        """Labels from the ``.cls`` members, classes in numeric order; keys without one
        make them partial: ``(labels, classes, partial_labels, warning)``."""
        used = sorted({v for v in self.labels if v is not None}, key=natural_order)
        labels, classes, partial = present_labels(self.labels, "cls", used)
        notes = [n for n in (self.warning, partial and partial.note(len(self.ids), "items")) if n]
        return labels, classes, partial, "; ".join(notes) or None


def _scan(root: Path, kind: str) -> _Members:
    """Read the tar headers of the shards under ``root`` for members of ``kind``
    (``image``, ``audio`` or ``text``: :data:`MEDIA`).

    Raises:
        EmptySourceError: no member of ``kind`` in any shard.
    """
    shards = tar_shards(root)
    base = root if root.is_dir() else root.parent
    found = _Members(shards, [], [], [], [], None)
    cut: list[str] = []
    for s, shard in enumerate(shards):
        name = str(shard.relative_to(base).with_suffix(""))
        members, complete = _index(shard, MEDIA[kind])
        if not complete:
            cut.append(shard.name)
        for key, (offset, size, ext, label) in members.items():
            found.ids.append(f"{name}/{key}")
            found.places.append((s, offset, size))
            found.extensions.append(ext)
            found.labels.append(label)
    if not found.ids:
        raise EmptySourceError(f"{root}: no {kind} member in its {len(shards)} tar shard(s)")
    if cut:
        found.warning = (
            f"{', '.join(cut)}: cut short (read up to its last whole member); copy the "
            "shard again to read the rest"
        )
    return found


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
        found = _scan(self.root, "image")
        self._files = [str(shard) for shard in found.shards]
        self._ids, self._places = found.ids, found.places
        places = found.places
        starts = [
            k
            for k in range(len(places))
            if k % ROWS_PER_GROUP == 0 or places[k][0] != places[k - 1][0]
        ]
        bounds = [*starts, len(places)]
        self._layout([(places[k][0], k) for k in starts], list(np.diff(bounds)))
        self.labels, self.classes, self.partial_labels, self.warning = found.classes_and_labels()
        self.index_note = f"{found.note}, {len(self._ids):,} images"
        self._sizes_and_bits(image_size, channels, pixel_bits)

    @property
    def ids(self) -> Sequence[str]:
        return self._ids

    def _read_group(self, group: int) -> tuple[list[str], list[str | None], list[bytes | str]]:
        start, stop = int(self._starts[group]), int(self._starts[group + 1])
        blobs: list[bytes | str] = [
            _member(self._handles, self._files, self._places[k]) for k in range(start, stop)
        ]
        return self._ids[start:stop], [None] * (stop - start), blobs


class WebDatasetAudioSource(AudioFolderSource):
    """Sounds of WebDataset tar shards (``.flac``, ``.wav``, ``.mp3``... members; see the
    module), read as :class:`~selfsup.data.audio.AudioFolderSource` reads a folder's files:
    labels from ``.cls`` members, ids ``SHARD/KEY`` (``SHARD/KEY@STARTs`` for clips).
    Training reads the items in blocks of ``ROWS_PER_GROUP`` consecutive ones, shuffled
    within ``WINDOW_GROUPS`` blocks, as packed shards are.

    Args:
        root: a folder of ``.tar`` shards, or one shard.
        clip_hop, pooled, **settings: as for :class:`~selfsup.data.audio.AudioFolderSource`
            (``sample_rate``, ``clip_seconds``, ``n_mels``...).

    Raises:
        EmptySourceError: no sound member in any shard.

    Example:
        >>> import io, tarfile, tempfile, soundfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with tarfile.open(folder / "calls-0000.tar", "w") as tar:
        ...     for key, seconds in enumerate((0.5, 2.0)):
        ...         sound = io.BytesIO()
        ...         soundfile.write(sound, np.zeros(int(seconds * 8000), np.float32), 8000,
        ...                         format="FLAC")
        ...         for ext, data in (("flac", sound.getvalue()), ("cls", b"7")):
        ...             member = tarfile.TarInfo(f"{key:06d}.{ext}")
        ...             member.size = len(data)
        ...             tar.addfile(member, io.BytesIO(data))
        >>> source = WebDatasetAudioSource(folder, sample_rate=8000, clip_seconds=1.0,
        ...                                clip_hop=1.0)
        >>> source.ids[1:], source.classes, tuple(source.read(2).shape)
        (['calls-0000/000001@0.00s', 'calls-0000/000001@1.00s'], ['7'], (1, 64, 51))
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        clip_hop: float | None = None,
        pooled: bool = False,
        **settings: Any,
    ) -> None:
        self.root = Path(root)
        self._settings(**settings)
        self.name = str(root)
        found = _scan(self.root, "audio")
        self._shards = [str(shard) for shard in found.shards]
        self._places, self._extensions = found.places, found.extensions
        self._ids = found.ids
        self.labels, self.classes, self.partial_labels, self.warning = found.classes_and_labels()
        self.labels_note = None
        self.index_note = f"{found.note}, {len(self._ids):,} sounds"
        self._handles: dict[int, Any] = {}
        self._pid = os.getpid()
        self._items(clip_hop, pooled)

    def _file_path(self, relative: str, file: int) -> AudioBytes:
        """Key ``file``'s sound member, read from its shard (the member's extension picks
        the decoder)."""
        if self._pid != os.getpid():  # a forked worker opens its own files
            self._handles, self._pid = {}, os.getpid()
        data = _member(self._handles, self._shards, self._places[file])
        return AudioBytes(f"{relative}.{self._extensions[file]}", data)

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        """Items shuffled in blocks of ``WINDOW_GROUPS`` groups of ``ROWS_PER_GROUP``
        consecutive keys (clips by their key's), as packed shards are: a batch reads a few
        stretches of the shards, not one place per item."""
        files = np.array([f for f, _ in self._clips]) if self._clips else np.arange(len(self))
        return block_order(files // ROWS_PER_GROUP, WINDOW_GROUPS, seed, epoch)

    def __getstate__(self) -> dict[str, Any]:
        """Without the open shard files (a worker process opens its own)."""
        return {**self.__dict__, "_handles": {}}


def read_webdataset_texts(root: str | os.PathLike, **options: Any) -> TextSource:
    """The ``.txt`` members of WebDataset shards as documents (see the module): ids
    ``SHARD/KEY``, labels from ``.cls`` members, held in memory as a folder of ``.txt``
    files is; a member that is not UTF-8 keeps its place as a row without text (skipped as
    an unreadable item) and is named in the warning.

    Args:
        root: a folder of ``.tar`` shards, or one shard.
        **options: those of :class:`~selfsup.data.text.TextSource` (``tokenizer``,
            ``max_length``, ``vocab_size``).

    Raises:
        EmptySourceError: no ``.txt`` member in any shard.

    Example:
        >>> import io, tarfile, tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with tarfile.open(folder / "tickets-0000.tar", "w") as tar:
        ...     for key, (text, team) in enumerate((("refund please", b"billing"),
        ...                                         ("app crashes", b"tech"))):
        ...         for ext, data in (("txt", text.encode()), ("cls", team)):
        ...             member = tarfile.TarInfo(f"{key:06d}.{ext}")
        ...             member.size = len(data)
        ...             tar.addfile(member, io.BytesIO(data))
        >>> source = read_webdataset_texts(folder)
        >>> source.texts, source.ids[1], source.classes
        (['refund please', 'app crashes'], 'tickets-0000/000001', ['billing', 'tech'])
    """
    root = Path(root)
    found = _scan(root, "text")
    texts: list[str | None] = []
    reasons: dict[int, str] = {}
    handles: dict[int, Any] = {}
    try:
        for k, place in enumerate(found.places):
            raw = _member(handles, found.shards, place)
            text = None
            if len(raw) < place[2]:  # a shard cut short inside the member: not half a text
                reasons[k] = "cut short: its shard ends inside it"
            else:
                try:
                    text = raw.decode("utf-8").strip()
                except UnicodeDecodeError as err:
                    reasons[k] = f"not UTF-8 text (byte 0x{raw[err.start]:02x} at {err.start})"
            texts.append(text)
    finally:
        for handle in handles.values():
            handle.close()
    source = TextSource(texts, name=str(root), ids=found.ids, reasons=reasons, **options)
    source.labels, source.classes, source.partial_labels, source.warning = (
        found.classes_and_labels()
    )
    source.index_note = f"{found.note}, {len(texts):,} texts"
    if reasons:
        names = ", ".join(found.ids[i] for i in list(reasons)[:3])
        unread = f"{len(reasons)} of {len(texts)} members cannot be read as text ({names}): skipped"
        source.warning = f"{source.warning}; {unread}" if source.warning else unread
    return source


def _member(
    handles: dict[int, Any], shards: Sequence[str | Path], place: tuple[int, int, int]
) -> bytes:
    """The bytes of the member at ``place`` (shard number, data offset, size), its shard
    opened once into ``handles`` and kept open there (fewer bytes where the shard is cut)."""
    shard, offset, size = place
    if shard not in handles:
        handles[shard] = open(shards[shard], "rb")  # noqa: SIM115  # kept open in handles
    handle = handles[shard]
    handle.seek(offset)
    return handle.read(size)


def _index(
    shard: Path, extensions: set[str]
) -> tuple[dict[str, tuple[int, int, str, str | None]], bool]:
    """Each key's member of one of ``extensions`` (where its bytes start, their size, its
    extension) and label, from the
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
                entry = found.setdefault(key, [None, None, None, None])
                if ext in extensions and entry[0] is None:
                    entry[0], entry[1], entry[2] = member.offset_data, member.size, ext
                elif ext in LABEL_EXTENSIONS and member.size <= LABEL_BYTES:
                    data = tar.extractfile(member)
                    text = data.read().decode("utf-8", "replace").strip() if data else ""
                    entry[3] = text or None
    except (tarfile.ReadError, EOFError, OSError):  # cut short: what was read is kept
        complete = False
    return {k: (v[0], v[1], v[2], v[3]) for k, v in found.items() if v[0] is not None}, complete
