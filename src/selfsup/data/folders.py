"""Folder trees of files: finding the files of some types (one scan, kept in a run folder so
the next command on the same folder need not scan it again), and labels from subfolders.

Shared by the folder sources of every modality (images, audio).

Example:
    >>> subfolder_labels(["cat/a.png", "dog/b.png", "dog/c.png"])
    (['cat', 'dog'], array([0, 1, 1]))
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from selfsup.core.files import write_text

#: A year alone as a folder or file name: 2025.
YEAR_NAME = re.compile(r"^(19|20)\d\d$")
#: A date inside a name: 2025-03, 2025_03_31, 20250331, 2025-03-31T12-00 (a year and a month at
#: least, so the 2001 of ``pump-2001`` is no date).
DATE_IN_NAME = re.compile(
    r"(?<!\d)(19|20)\d\d[-_.]?(0[1-9]|1[0-2])([-_.]?\d\d)?([T_ -]?\d\d([-:_.]?\d\d){0,2})?(?!\d)"
)
#: A digital camera's folder (DCF): 100CANON, 101APPLE, 100_FUJI, 100MSDCF.
_CAMERA_FOLDER = re.compile(r"^[1-9]\d\d[A-Za-z0-9_]{5}$")

#: The file in a run folder that keeps the file list of its training folder.
INDEX_FILE = "data_index.json"
_INDEX_FORMAT = "selfsup-folder-index"
# A folder modified this close to (or after) the start of its scan may have changed within
# one tick of the file system's clock without its time changing ("racy" entries, as git
# calls them): an index holding one is rescanned rather than trusted.
_RACY_NS = 2_000_000_000


@dataclass
class FolderIndex:
    """The files of some types under a folder, and what tells whether the folder changed.

    Attributes:
        root: the folder, as an absolute path with symbolic links resolved.
        suffixes: the file name endings looked for (lower case).
        files: the files, as sorted "/"-separated paths relative to ``root``.
        folders: every folder listed (relative path, "" for ``root``) and its modification
            time in nanoseconds when it was listed. Adding, removing or renaming a file
            changes the time of the folder holding it.
        scanned_ns: when the scan started (``time.time_ns()``).
        unlisted: folders that could not be listed (no permission), with the reason.
    """

    root: str
    suffixes: tuple[str, ...]
    files: list[str]
    folders: dict[str, int]
    scanned_ns: int
    unlisted: dict[str, str] = field(default_factory=dict)
    #: Files of other kinds the scan left out, counted by suffix (lowercase, "" for none):
    #: what a user is told was not read (a phone's videos, a camera's raw files). Not saved.
    others: dict[str, int] = field(default_factory=dict)

    def changed(self) -> list[str]:
        """The folders that were modified since the scan, disappeared or were listed too
        close to a modification to tell (all of them when the root is gone).

        Example:
            >>> import tempfile
            >>> root = Path(tempfile.mkdtemp())
            >>> os.utime(root, ns=(10**18, 10**18))  # last modified long before the scan
            >>> index = scan_folder(root, (".txt",))
            >>> index.changed()
            []
            >>> _ = (root / "new.txt").write_text("x")
            >>> index.changed()
            ['.']
        """
        changed = []
        for rel, mtime in self.folders.items():
            try:
                now = os.stat(os.path.join(self.root, rel) if rel else self.root).st_mtime_ns
            except OSError:
                now = None
            if now != mtime or mtime >= self.scanned_ns - _RACY_NS:
                changed.append(rel or ".")
        return changed

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to ``path`` as JSON (atomically)."""
        data = {
            "format": _INDEX_FORMAT,
            "version": 1,
            "root": self.root,
            "suffixes": list(self.suffixes),
            "scanned_ns": self.scanned_ns,
            "folders": self.folders,
            "files": self.files,
        }
        write_text(path, json.dumps(data, separators=(",", ":")))

    @classmethod
    def load(cls, path: str | os.PathLike) -> FolderIndex:
        """The index saved at ``path``, checked: its paths must stay inside the root.

        Raises:
            ValueError: the file is not a folder index or holds values out of place.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a readable folder index ({err})") from None
        if not isinstance(data, dict) or data.get("format") != _INDEX_FORMAT:
            raise ValueError(f"{path}: not a selfsup folder index")
        if data.get("version") != 1:
            raise ValueError(f"{path}: folder index version {data.get('version')!r}; expected 1")
        root, suffixes, folders = data.get("root"), data.get("suffixes"), data.get("folders")
        files, scanned = data.get("files"), data.get("scanned_ns")
        checks = {
            "root": isinstance(root, str) and os.path.isabs(root),
            "suffixes": isinstance(suffixes, list) and all(isinstance(s, str) for s in suffixes),
            "scanned_ns": isinstance(scanned, int) and not isinstance(scanned, bool),
            "folders": isinstance(folders, dict)
            and all(_inside(k, allow_root=True) and type(v) is int for k, v in folders.items()),
            "files": isinstance(files, list) and _all_inside(files),
        }
        bad = [key for key, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"{path}: bad {', '.join(bad)} in the folder index (paths must be relative "
                f"and stay inside the folder); delete the file to scan the folder again"
            )
        return cls(root, tuple(suffixes), files, folders, scanned)


# What no path inside a folder holds, once the paths are joined with newlines around each.
_OUTSIDE = ("\n/", "/../", "\n../", "/..\n", "\n..\n", "/./", "\n./", "/.\n", "\n.\n", "//",
            "\n\n", "\\")  # fmt: skip


def _all_inside(files: list[Any]) -> bool:
    """Whether every entry is a relative path inside its root (as :func:`_inside`, for a
    million paths at once: a name holding a newline is refused with them).

    Example:
        >>> _all_inside(["a/b.png", "c.png"]), _all_inside(["a/../../x.png"]), _all_inside([3])
        (True, False, False)
    """
    if not all(type(f) is str for f in files):
        return False
    blob = "\n" + "\n".join(files) + "\n"
    return not any(bad in blob for bad in _OUTSIDE)


def _inside(rel: Any, allow_root: bool = False) -> bool:
    """Whether ``rel`` is a "/"-separated relative path that stays inside its root."""
    if not isinstance(rel, str):
        return False
    if rel == "":
        return allow_root
    parts = rel.split("/")
    return (
        not rel.startswith("/") and "\\" not in rel and all(p not in ("", ".", "..") for p in parts)
    )


def marker_suffix(offset: int, magic: bytes) -> str:
    """A pseudo-suffix for :func:`scan_folder`: files without a suffix whose bytes at
    ``offset`` are ``magic`` (DICOM files of a PACS export are named ``IM000001``).

    Example:
        >>> marker_suffix(128, b"DICM")
        '@128:4449434d'
    """
    return f"@{offset}:{magic.hex()}"


def _markers(endings: Sequence[str]) -> list[tuple[int, bytes]]:
    """The (offset, magic) of the pseudo-suffixes among ``endings``."""
    found = []
    for ending in endings:
        if ending.startswith("@"):
            offset, magic = ending[1:].split(":")
            found.append((int(offset), bytes.fromhex(magic)))
    return found


def _marked(path: str, markers: list[tuple[int, bytes]]) -> bool:
    """Whether the file at ``path`` holds one of the ``markers``."""
    try:
        with open(path, "rb") as f:
            for offset, magic in markers:
                f.seek(offset)
                if f.read(len(magic)) == magic:
                    return True
    except OSError:
        return False
    return False


def scan_folder(root: str | os.PathLike, suffixes: Sequence[str]) -> FolderIndex:
    """One scan of the tree under ``root``: the files whose names end with one of
    ``suffixes`` (any case), hidden files and folders (".") left out. Symbolic links to
    folders outside the tree are followed, as PyTorch's ``ImageFolder`` follows them (a
    cluster's dataset folder of links to the shares its recordings live on), in sorted
    order, each real folder once (the first way to it by name); links to the tree's own
    folders or above it (a loop) are not. A suffix made by :func:`marker_suffix` adds the
    files without a suffix (no "." in the name, or digits after the last one:
    ``IM000001``, ``1.2.840.113619.2.55.3.7``; ``DICOMDIR``, a DICOM export's table of
    contents, left out) that hold its marker.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "b").mkdir()
        >>> for name in ("b/x.WAV", "a.wav", ".hidden.wav", "notes.txt"):
        ...     _ = (root / name).write_text("")
        >>> scan_folder(root, (".wav",)).files
        ['a.wav', 'b/x.WAV']
        >>> (root / "again").symlink_to(root / "b")  # a link inside the tree: not followed
        >>> elsewhere = Path(tempfile.mkdtemp())
        >>> _ = (elsewhere / "y.wav").write_text("")
        >>> (elsewhere / "loop").symlink_to(elsewhere)  # a loop: walked once
        >>> (elsewhere / "up").symlink_to(root.parent)  # above the tree: a loop too
        >>> (root / "shared").symlink_to(elsewhere)
        >>> scan_folder(root, (".wav",)).files
        ['a.wav', 'b/x.WAV', 'shared/y.wav']
    """
    top = os.path.realpath(root)
    endings = tuple(s.lower() for s in suffixes)
    markers = _markers(endings)
    real = tuple(e for e in endings if not e.startswith("@"))
    started = time.time_ns()
    files: list[str] = []
    folders: dict[str, int] = {}
    unlisted: dict[str, str] = {}
    others: dict[str, int] = {}
    pending = [""]
    walked: set[str] = set()  # the real folders walked: each once, whatever the way to it
    while pending:
        rel = pending.pop()
        prefix = rel + "/" if rel else ""
        real_folder = os.path.realpath(os.path.join(top, rel)) if rel else top
        if real_folder in walked:
            continue
        walked.add(real_folder)
        try:
            folders[rel] = os.stat(os.path.join(top, rel) if rel else top).st_mtime_ns
            subfolders: list[str] = []
            links: list[tuple[str, str]] = []
            with os.scandir(os.path.join(top, rel) if rel else top) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith("."):
                        continue
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        is_dir = False
                    if is_dir:
                        if entry.is_symlink():
                            links.append((name, entry.path))
                        else:
                            subfolders.append(name)
                    elif name.lower().endswith(real) or (
                        markers
                        and ("." not in name or name.rsplit(".", 1)[1].isdigit())
                        and name != "DICOMDIR"
                        and _marked(entry.path, markers)
                    ):
                        files.append(prefix + name)
                    else:
                        suffix = os.path.splitext(name)[1].lower()
                        others[suffix] = others.get(suffix, 0) + 1
            subfolders += [name for name, path in links if _followed(path, top)]
            pending.extend(prefix + name for name in sorted(subfolders, reverse=True))
        except OSError as err:
            folders.pop(rel, None)
            unlisted[rel or "."] = err.strerror or type(err).__name__
    files.sort()
    return FolderIndex(top, endings, files, folders, started, unlisted, others)


def others_note(others: dict[str, int], shown: int = 3) -> str:
    """The files a scan left out, for people: their count and most frequent suffixes.

    Example:
        >>> others_note({".mov": 212, ".aae": 40, "": 1, ".csv": 1, ".db": 1})
        '255 other files (.mov 212, .aae 40, 1 without a suffix, 2 more)'
        >>> others_note({".txt": 1})
        '1 other file (.txt)'
    """
    total = sum(others.values())
    ranked = sorted(others.items(), key=lambda kv: (-kv[1], kv[0]))
    parts = [
        (f"{count:,} without a suffix" if not suffix else f"{suffix} {count:,}")
        if total > 1
        else (suffix or "without a suffix")
        for suffix, count in ranked[:shown]
    ]
    rest = sum(count for _, count in ranked[shown:])
    if rest:
        parts.append(f"{rest:,} more")
    return f"{total:,} other file{'s' if total > 1 else ''} ({', '.join(parts)})"


@dataclass(frozen=True)
class IndexCache:
    """Where a folder's index is kept (a run's ``data_index.json``) and how it is used.

    Attributes:
        path: the index file; it need not exist.
        pinned: use the saved file list even when the folder has changed since (a resumed
            run reads the files it started on, so its positions in an epoch still hold);
            otherwise a saved list is used only while the folder is unchanged.
    """

    path: Path
    pinned: bool = False


def index_folder(
    root: str | os.PathLike, suffixes: Sequence[str], cache: IndexCache | None = None
) -> tuple[FolderIndex, str]:
    """The index of ``root``, from ``cache`` when it holds one for this folder that can be
    used (see :class:`IndexCache`), else from a scan; and a note saying which, for people.

    Raises:
        ValueError: a pinned cache file that is damaged.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = (root / "a.wav").write_text("")
        >>> index, note = index_folder(root, (".wav",))
        >>> index.files, note.startswith("found 1 files")
        (['a.wav'], True)
    """
    top = os.path.realpath(root)
    endings = tuple(s.lower() for s in suffixes)
    if cache is not None and cache.path.is_file():
        try:
            saved = FolderIndex.load(cache.path)
        except ValueError:
            if cache.pinned:
                raise
            saved = None
        if saved is not None and saved.root == top and saved.suffixes == endings:
            changed = saved.changed()
            if not changed:
                return saved, f"file list from {cache.path} (the folder is unchanged)"
            if cache.pinned:
                return saved, (
                    f"file list from {cache.path}, as when the run started; {len(changed):,} "
                    f"folder(s) changed since (first: {changed[0]}): files added since are "
                    f"not read, files removed are skipped"
                )
    started = time.perf_counter()
    index = scan_folder(top, endings)
    note = (
        f"found {len(index.files):,} files in {len(index.folders):,} folder(s) in "
        f"{time.perf_counter() - started:.1f} s"
    )
    if index.unlisted:
        first, reason = next(iter(index.unlisted.items()))
        note += (
            f"; {len(index.unlisted):,} could not be listed and were left out ({first}: {reason})"
        )
    if index.others:
        note += f"; {others_note(index.others)} left out"
    return index, note


def find_files(root: Path, suffixes: Sequence[str]) -> list[str]:
    """The files under ``root`` whose names end with one of ``suffixes`` (any case), as
    sorted "/"-separated relative paths; hidden files and folders (".") are left out.

    Example:
        >>> find_files(Path("/nonexistent"), (".wav",))
        []
    """
    return scan_folder(root, suffixes).files


def subfolder_labels(rel_paths: Sequence[str]) -> tuple[list[str], np.ndarray] | None:
    """Class names (sorted) and int64 codes per file from each file's first-level folder,
    when every file lies in a subfolder and there are at least two of them; else None.
    Folders that are all named by dates (a phone's ``2024-05-01``, a scanner's ``20240501``,
    a year's ``2024``) or are a camera's own (``100CANON``, ``101CANON``) are where files
    were put by when or by what took them, not classes: None too.

    Example:
        >>> subfolder_labels(["a.wav", "dog/b.wav"]) is None
        True
        >>> subfolder_labels(["2024-05-01/a.jpg", "2024-05-02/b.jpg"]) is None
        True
        >>> subfolder_labels(["100CANON/a.jpg", "101CANON/b.jpg"]) is None
        True
    """
    folders = [rel.split("/", 1)[0] if "/" in rel else None for rel in rel_paths]
    names = sorted(set(folders) - {None})
    if None in folders or len(names) < 2 or all(map(is_filing_name, names)):
        return None
    code = {name: i for i, name in enumerate(names)}
    return names, np.array([code[f] for f in folders], dtype=np.int64)


def is_filing_name(name: str) -> bool:
    """Whether a folder's name says when or by what its files were made rather than what
    they are: a date (a year and a month at least), a year, or a camera's folder (DCF).

    Example:
        >>> [is_filing_name(n) for n in ("2024-05-01", "20240501", "2024", "100CANON", "cat")]
        [True, True, True, True, False]
        >>> is_filing_name("0"), is_filing_name("class-2024")  # digits are MNIST's classes
        (False, False)
    """
    return bool(YEAR_NAME.match(name) or DATE_IN_NAME.fullmatch(name) or _CAMERA_FOLDER.match(name))


def dated_folders(rel_paths: Sequence[str]) -> str | None:
    """``"days"`` (or ``"months"``) where every file lies in a first-level folder named by a
    day (a month), as a phone's or a camera's import is filed (``2024-05-01/IMG_1000.HEIC``),
    of two folders at least: the photos of one day are a burst, a scene, copies of one
    another, held out together as a hospital's patients are (``Source.split_groups``);
    else None.

    Example:
        >>> dated_folders(["2024-05-01/a.jpg", "2024-05-02/b.jpg"]), dated_folders(["2024-05/a"])
        ('days', None)
        >>> dated_folders(["2024-05/a.jpg", "2024-06/b.jpg"]), dated_folders(["cat/a", "dog/b"])
        ('months', None)
    """
    folders = {rel.split("/", 1)[0] if "/" in rel else None for rel in rel_paths}
    if None in folders or len(folders) < 2:
        return None
    dates = [DATE_IN_NAME.fullmatch(f) for f in folders]  # type: ignore[arg-type]
    if not all(dates):
        return None
    return "days" if all(d.group(3) for d in dates if d) else "months"


def first_media(root: str | os.PathLike, kinds: dict[str, tuple[str, ...]]) -> str | None:
    """The kind (a key of ``kinds``) of the first file under ``root`` whose suffix one of
    ``kinds`` lists, in sorted order with hidden names left out; None when there is none or
    ``root`` is not a folder. The walk stops at that file, so large folders answer quickly.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = (root / "notes.txt").write_text("hello")
        >>> first_media(root, {"image": (".png",), "text": (".txt",)})
        'text'
    """
    found = first_file(root, tuple(s for suffixes in kinds.values() for s in suffixes))
    if found is None:
        return None
    name = found.name.lower()
    return next(kind for kind, suffixes in kinds.items() if name.endswith(suffixes))


def _followed(link: str, top: str) -> bool:
    """Whether a scan of the tree at ``top`` (a real path) goes through the link to a folder
    at ``link``: where it leads outside the tree and not above it (a loop).

    Example:
        >>> import tempfile
        >>> tree, share = os.path.realpath(tempfile.mkdtemp()), tempfile.mkdtemp()
        >>> os.symlink(share, os.path.join(tree, "day"))  # a share's folder
        >>> os.symlink(tree, os.path.join(tree, "self"))  # the tree itself: a loop
        >>> _followed(os.path.join(tree, "day"), tree), _followed(os.path.join(tree, "self"), tree)
        (True, False)
    """
    target = os.path.realpath(link) + os.sep
    return not target.startswith(top + os.sep) and not (top + os.sep).startswith(target)


def walk_folders(root: str | os.PathLike) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk`` of ``root`` in sorted order, hidden folders left out, through links to
    folders as :func:`scan_folder` goes through them (outside the tree, not above it), each
    real folder once.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "a").mkdir()
        >>> (root / "a" / "up").symlink_to(root)  # a loop
        >>> (root / "a" / "again").symlink_to(root / "a")  # a second way to a folder
        >>> [os.path.relpath(folder, root) for folder, _, _ in walk_folders(root)]
        ['.', 'a']
    """
    top = os.path.realpath(root)
    walked: set[str] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in walked:
            subfolders[:] = []
            continue
        walked.add(real)
        subfolders[:] = sorted(
            d
            for d in subfolders
            if not d.startswith(".")
            and (
                not os.path.islink(os.path.join(folder, d))
                or _followed(os.path.join(folder, d), top)
            )
        )
        yield folder, subfolders, files


def first_file(root: str | os.PathLike, suffixes: tuple[str, ...]) -> Path | None:
    """The first file under ``root`` whose name ends with one of ``suffixes`` (any case), in
    sorted order with hidden names left out; None when there is none or ``root`` is not a
    folder. The walk stops at that file.

    Example:
        >>> first_file("/nonexistent", (".csv",)) is None
        True
    """
    root = Path(root)
    if not root.is_dir():
        return None
    for folder, _, files in walk_folders(root):
        for file in sorted(f for f in files if not f.startswith(".")):
            if file.lower().endswith(suffixes):
                return Path(folder) / file
    return None


#: The place of a part of a file at the end of its id: a tile's (``scene.tif@x512_y1024``:
#: left 512, top 1024), a volume's slice's (``ct.nii.gz@z40``).
ITEM_PLACE = re.compile(r"@(?:x(\d+)_y(\d+)|z(\d+))$")
#: The place of a clip of a recording at the end of its id (``call.wav@12.35s``: from
#: 12.35 s; :class:`selfsup.data.audio.AudioFolderSource` cuts them).
CLIP_PLACE = re.compile(r"@\d+(?:\.\d+)?s$")


def unreadable_lines(found: Iterable[tuple[str, str]], limit: int = 10) -> list[str]:
    """Lines saying which items could not be read and why (``found``: id, reason), the
    parts of one file (tiles, slices) that failed alike said once with their count, at most
    ``limit`` lines and a count of the rest.

    Example:
        >>> found = [(f"a.jpg@x{k}_y0", "image file is truncated") for k in range(88)]
        >>> print("\\n".join(unreadable_lines([*found, ("b.png", "the file is empty")])))
          a.jpg (88 tiles): image file is truncated
          b.png: the file is empty
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for item, reason in found:
        groups.setdefault((ITEM_PLACE.sub("", item), reason), []).append(item)
    lines = []
    for (file, reason), items in list(groups.items())[:limit]:
        if len(items) == 1:
            lines.append(f"  {items[0]}: {reason}")
            continue
        place = ITEM_PLACE.search(items[0])
        kind = "slices" if place is not None and place.group(3) else "tiles"
        lines.append(f"  {file} ({len(items):,} {kind}): {reason}")
    if len(groups) > limit:
        lines.append(f"  and {len(groups) - limit:,} more")
    return lines


def tile_images(ids: Sequence[str]) -> np.ndarray | None:
    """The image of each tile or slice id (``scene.tif@x512_y1024`` -> ``scene.tif``,
    ``ct.nii.gz@z40`` -> ``ct.nii.gz``; an image read whole, smaller than a tile, is its
    own); None where no id is a part of a file.

    Example:
        >>> tile_images(["a.tif@x0_y0", "a.tif@x256_y0", "small.png", "ct.nii@z3"]).tolist()
        ['a.tif', 'a.tif', 'small.png', 'ct.nii']
        >>> tile_images(["a.png", "b.png"]) is None
        True
    """
    images = [ITEM_PLACE.sub("", item) for item in ids]
    if not any(image != item for image, item in zip(images, ids, strict=True)):
        return None
    return np.asarray(images, dtype=object)
