"""Images stored as files in a folder tree, labelled by their first-level subfolder or a table.

Example:
    >>> import tempfile
    >>> from PIL import Image
    >>> root = Path(tempfile.mkdtemp())
    >>> for cls in ("cat", "dog"):
    ...     (root / cls).mkdir()
    ...     Image.new("RGB", (40, 30), "red").save(root / cls / "a.png")
    >>> src = ImageFolderSource(root)
    >>> list(src.ids), src.classes, src.read(0).shape
    (['cat/a.png', 'dog/a.png'], ['cat', 'dog'], torch.Size([3, 30, 30]))
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
import pillow_heif
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from selfsup.core.progress import activity
from selfsup.data.base import (
    CODE_ERRORS,
    Batch,
    EmptySourceError,
    ItemReadError,
    Parts,
    Source,
    block_order,
    unit_items,
)
from selfsup.data.dicom import (
    DICOM_EXTENSIONS,
    DICOM_MARKER,
    dicom_frames,
    dicom_header,
    dicom_patient,
    is_dicom,
    read_dicom,
)
from selfsup.data.file_labels import (
    SUBFOLDER_NOTE,
    FolderLabels,
    NoFileNamedError,
    folder_labels,
    metadata_file,
)
from selfsup.data.folders import (
    IndexCache,
    dated_folders,
    find_files,
    index_folder,
    others_note,
    subfolder_labels,
)
from selfsup.data.held import CACHE_BYTES, HeldCache, file_key
from selfsup.data.tiff import (
    DataOverview,
    Region,
    TiffForPillow,
    is_tiff,
    read_tiff,
    tiff_data_overview,
    tiff_header,
    tiff_stored_maximum,
)
from selfsup.data.volumes import (
    VOLUME_EXTENSIONS,
    is_compressed,
    is_volume,
    parse_window,
    read_plane,
    volume_layout,
)

T = TypeVar("T")
# HEIC and HEIF photos (what phones save by default) open in Pillow through pillow-heif, whose
# draft mode decodes the file's embedded thumbnail where it is at least the size asked for
# (a 12-megapixel photo's 320x240: 45 times faster, benchmarks/phone_photos.py), as JPEG's
# decodes at a reduced scale; it applies the file's rotation and resets its EXIF
# orientation, so nothing turns it twice.
# AVIF is Pillow's own; a GIF gives its first frame; .jfif is a JPEG as browsers save it.
pillow_heif.register_heif_opener()
#: File suffixes read as images, compared case-insensitively.
IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".heic",
    ".heif", ".avif", ".svs", *DICOM_EXTENSIONS, *VOLUME_EXTENSIONS,
)  # fmt: skip
#: What a folder scan lists as images: those suffixes, and DICOM files without one (a PACS
#: export's ``IM000001``), found by their marker.
IMAGE_FILES = (*IMAGE_EXTENSIONS, DICOM_MARKER)
# PIL modes of one gray channel. Wider-than-8-bit ones (16-bit PNG and TIFF) are divided by
# 65535: PIL's own conversion to "L" would clip them at 255. Float images (TIFFs of mode "F")
# in [0, 1] are read as they are, other float images are scaled from their own range; PIL's
# conversion would read [0, 1] as black.
_WIDE_GRAY_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
GRAY_MODES = {"1", "L", "LA", "F", *_WIDE_GRAY_MODES}
#: Files whose headers give the folder's default size and channels.
SIZE_SAMPLE = 64
#: First-level folders, and DICOM files in each, whose patients tell a hospital's patient
#: folders from classes (:func:`patient_folders`).
PATIENT_SAMPLE = (16, 4)
#: The smallest tile (``--tile``) in pixels.
MIN_TILE = 16
#: Files whose largest stored values give the significant bits of a folder's wide integer
#: pixels (:func:`significant_bits`); each is read whole once.
BITS_SAMPLE = 16
#: Files decoded whole to read their parts (compressed volumes, images cut into tiles) whose
#: parts give statistics over a folder of them (each one read is decoded whole: a CT of 300
#: slices, 0.4 s; a drone's 20-megapixel JPEG at 1/4 scale, 0.1 s).
SAMPLE_FILES = 8
#: Suffixes of JPEG files, which decode at 1/2, 1/4 or 1/8 scale (draft mode).
_JPEG = (".jpg", ".jpeg", ".jfif")
# Large photos are expected and read at a reduced size; PIL still refuses images above twice
# this limit (a decompression bomb), which are then skipped as unreadable.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageFolderSource(Source):
    """Every image file under a folder, found recursively and sorted by relative path.

    Files with the suffixes in ``IMAGE_EXTENSIONS`` (any case) are read; hidden files and
    folders (names starting with ".") are left out. When every image lies in a subfolder and
    there are at least two first-level subfolders, their names are the classes (sorted) and
    each image is labelled by the one it lies in; a labels table (``labels_file``, or a
    ``metadata.csv`` at the top) labels them instead; otherwise the source is unlabeled.

    Every item has the same shape (channels, image_size, image_size): each image is converted to
    gray ("L") or "RGB" (alpha dropped, EXIF rotation applied), its shorter side resized to
    ``image_size`` and its center cropped square. TIFFs are read through
    :mod:`selfsup.data.tiff` (any bit depth, any number of channels, the middle plane of a
    stack), DICOM files through :mod:`selfsup.data.dicom`. JPEGs larger than that are decoded at
    1/2, 1/4 or 1/8 scale directly (PIL's draft mode), which makes them several times faster to
    read. Images above PIL's decompression-bomb limit (about 179 million pixels) are refused as
    unreadable rather than decoded. A file that cannot be opened or decoded (not an image,
    truncated) raises :class:`ItemReadError` on ``read`` and is reported in
    ``read_batch(...).skipped``.

    Args:
        root: the folder.
        image_size: the side of the square items; by default the median shorter side of a
            sample of ``SIZE_SAMPLE`` files spread over the folder (only their headers are
            read), so one huge or tiny file does not set it. Training chooses its own side
            (see ``selfsup.modalities.image.training_side``) and sets it with ``read_at``.
        channels: 1 (gray), 3 (RGB) or a TIFF's own count (five fluorescence channels,
            thirteen spectral bands); by default as :func:`default_channels` takes it from
            the sampled headers. Gray and colour images convert into each other; an image
            with another count is skipped as unreadable, with its count.
        index: where a saved list of the folder's files may be (a run's
            ``data_index.json``; see :class:`selfsup.data.folders.IndexCache`); by default
            the folder is scanned.
        labels_file: a table labelling the files (``--labels``; see
            :mod:`selfsup.data.file_labels`), instead of their subfolders; files it does not
            label are unlabelled items. A ``metadata.csv`` at the top of ``root`` is read
            without it.
        label_column: the table's label column (default ``label``).
        id_column: the table's column of file names (default ``file_name``, ``file``...).
        channel_pattern: one file per channel (see :class:`ChannelFiles`).
        pixel_bits: the significant bits of the folder's integer pixels wider than 8 bits: a
            camera's 12-bit values in 16-bit files are divided by 4095, not 65535, so they
            span [0, 1] rather than its first 6%. By default :func:`significant_bits` of the
            largest values ``BITS_SAMPLE`` files spread over the folder store (said in
            ``index_note``); None where it has no such files. 8-bit, float and DICOM images
            (windowed by their own tags) are read as they are.
        tile: cut every image into squares of this many pixels at its full size, each an
            item (``--tile``: a satellite scene, a pathology slide, an inspection camera's
            frame, where the centre square at ``image_size`` would keep a few pixels of
            what matters). An image's tiles spread evenly over it, the last ones ending at
            its edges (neighbours overlap by less than a tile where its side is no multiple
            of the tile); they are named ``FILE@xLEFT_yTOP`` (in pixels of the upright image)
            and read at ``image_size`` (by default the tile). A TIFF's tile is read from the
            strips or tiles of the file under it alone; other formats decode the whole image
            for each tile (a JPEG at the reduced scale the tile needs). An image smaller
            than a tile is one item, its centre square. A label of a file (its folder, a
            table naming files) is the label of each of its tiles; a table naming tiles
            (``scene.tif@x512_y1024``: what ``select`` picks) labels tiles. Tiles of one image
            are held out together in ``evaluate``'s split (``split_groups`` "images").
        scan_window: show scans (DICOM, NIfTI) through this window of their values (``LOW,HIGH``
            in their units, a CT's Hounsfield units; ``--scan-window``) instead of each
            DICOM file's window or each volume's percentiles.

    NIfTI volumes (``.nii``, ``.nii.gz``: a CT, an MR) are cut into their axial slices, each
    an item named ``FILE@zK``, read as :mod:`selfsup.data.volumes` says (oriented as a
    radiologist looks at them, one window per volume); labels of a volume label its slices,
    a table naming slices labels slices, and a volume's slices are held out together. First-
    level folders each holding one scan's volumes (a folder per patient) are not classes
    (:func:`scan_folders`).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        NotADirectoryError: ``root`` is a file.
        EmptySourceError: no image file under ``root``, or none that can be read when a
            default has to be taken from one.
        ValueError: ``image_size`` or ``channels`` below 1.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        image_size: int | None = None,
        channels: int | None = None,
        index: IndexCache | None = None,
        labels_file: str | os.PathLike | None = None,
        label_column: str | None = None,
        id_column: str | None = None,
        channel_pattern: str | None = None,
        pixel_bits: int | None = None,
        tile: int | None = None,
        scan_window: str | tuple[float, float] | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(f"no such folder: {self.root}")
        if not self.root.is_dir():
            raise NotADirectoryError(f"not a folder: {self.root}")
        if image_size is not None and image_size < 1:
            raise ValueError(f"image_size must be at least 1, got {image_size}")
        if channels is not None and channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        if tile is not None and tile < MIN_TILE:
            raise ValueError(f"--tile must be at least {MIN_TILE} pixels, got {tile}")
        if tile is not None and channel_pattern:
            raise ValueError(
                "--tile cuts image files into squares; an image of one file per channel "
                "(--channel-pattern) cannot be cut: leave one of them out"
            )
        self.name = str(self.root)
        self.reads_files = True
        self.tile = tile
        self._volume_bytes: dict[int, int] = {}  # a compressed volume's decompressed size
        self._tiled: dict[int, tuple[int, int, bool]] = {}  # decoded whole: width, height, JPEG
        self.scan_window = None if scan_window is None else parse_window(scan_window)
        self.index, self.index_note = index_folder(self.root, IMAGE_FILES, index)
        self._ids = self.index.files
        if not self._ids:
            left = f"; it holds {others_note(self.index.others)}" if self.index.others else ""
            raise EmptySourceError(
                f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {self.root}{left}"
            )
        # One file per channel (a plate reader's stains): the files of an item by channel.
        self.channel_files: ChannelFiles | None = None
        if channel_pattern:
            self.channel_files = ChannelFiles.group(self._ids, channel_pattern, self.name)
            self._ids = self.channel_files.ids
            channels = len(self.channel_files.channels)
            self.index_note = "; ".join(filter(None, [self.index_note, self.channel_files.note()]))
        #: Where items are parts of files (slices of volumes, tiles): each one's file, slice
        #: and square; None where every item is a whole file.
        self.places: Places | None = None
        self.files: list[str] = list(self._ids)
        self._frames = {} if self.channel_files else self._multi_frame()
        if tile is not None or self._frames or any(is_volume(rel) for rel in self.files):
            self._split(tile)
            image_size = tile if image_size is None and tile is not None else image_size
        self._find_labels(labels_file, label_column, id_column)
        if image_size is None or channels is None:
            sides, counts = self._sample_headers()
            if image_size is None:
                image_size = int(np.median(sides))
            if channels is None:
                channels = default_channels(counts)
        self.image_size: int = image_size
        self.channels: int = channels
        if pixel_bits is None:
            pixel_bits, note = self._sample_bits()
            self.index_note = "; ".join(filter(None, [self.index_note, note]))
        self.pixel_bits = pixel_bits

    def read_at(self, side: int) -> None:
        """Read items at ``side`` pixels from now on (training reads at its own side)."""
        self.image_size = int(side)

    def _multi_frame(self) -> dict[int, int]:
        """The positions in ``files`` of gray multi-frame DICOM files (an enhanced CT or MR
        volume, a gray cine loop) and their frames. Only where one of ``SIZE_SAMPLE`` files
        spread over the folder is one are all DICOM files' headers read (a folder of
        single slices pays for the sample alone)."""
        n = len(self.files)
        picks = np.unique(np.linspace(0, n - 1, min(SIZE_SAMPLE, n)).astype(int)).tolist()

        def frames(position: int) -> int:
            path = self.root / self.files[position]
            try:
                return dicom_frames(path) if is_dicom(path) else 1
            except (OSError, ValueError):  # unreadable: skipped when read
                return 1

        sampled = {i: frames(i) for i in picks}
        if all(count == 1 for count in sampled.values()):
            return {}
        found = {i: sampled.get(i) or frames(i) for i in range(n) if not is_volume(self.files[i])}
        return {i: count for i, count in found.items() if count > 1}

    def _split(self, tile: int | None) -> None:
        """Make the items the slices of every volume (:mod:`selfsup.data.volumes`) and, with
        ``tile``, the tiles of ``tile`` pixels of every other image (:func:`tile_grid`),
        from the files' headers; a file whose header cannot be read is one item, skipped as
        unreadable when read. Of a GeoTIFF with a pyramid and a no-data value (a satellite
        scene's edges), tiles without any data on its small level are left out, and of a
        slide (``.svs``) those of glass, with less than a tenth tissue
        (:func:`tiff_data_overview`)."""
        owners, planes, squares, ids = [], [], [], []
        small = cut = volumes = slices = 0
        empty: dict[str, int] = {}  # tiles left out, by what they show
        what = "cut them into slices" if tile is None else "cut them into tiles"
        # A phone's HEIC header takes 13 ms: a library of 200,000 is 40 minutes to cut, said.
        with activity(f"reading the sizes of {len(self.files):,} images to {what}"):
            grouped = self.channel_files
            for position, rel in enumerate(self.files):
                path = self.root / rel
                if is_volume(rel) or position in self._frames:
                    first = path if grouped is None else self.root / grouped.first_files[position]
                    try:
                        layout = volume_layout(first)  # of channel files: the first one's
                    except Exception:  # an unreadable file is passed over, skipped on read
                        count = 1
                    else:
                        count = layout.planes
                        if is_compressed(rel) or position in self._frames:  # decoded whole
                            files = 1 if grouped is None else len(grouped.channels)
                            self._volume_bytes[position] = layout.nbytes * files
                    volumes += count > 1
                    slices += count if count > 1 else 0
                    owners += [position] * count
                    planes += list(range(count)) if count > 1 else [0]
                    squares += [(0, 0, 0)] * count
                    ids += [f"{rel}@z{k}" for k in range(count)] if count > 1 else [rel]
                    continue
                grid: list[tuple[int, int]] = []
                if tile is not None:
                    try:
                        width, height = image_dimensions(path)[:2]
                    except Exception:  # an unreadable file is passed over, skipped on read
                        width = height = 0
                    grid = tile_grid(width, height, tile)
                    small += bool(width and not grid)
                    overview = _data_overview(path, tile) if grid else None
                    if overview is not None:
                        kept = [corner for corner in grid if overview.holds(corner, tile)]
                        left = len(grid) - len(kept)
                        empty[overview.absent] = empty.get(overview.absent, 0) + left
                        if not kept:
                            continue  # no data anywhere: nothing to learn from
                        grid = kept
                cut += bool(grid)
                if grid and not is_tiff(path):  # decoded whole for its tiles, kept while read
                    self._tiled[position] = (width, height, path.suffix.lower() in _JPEG)
                if not grid:  # not cut, smaller than a tile, or unreadable: the whole file
                    grid, named = [(0, 0)], [rel]
                    side = 0
                else:
                    named = [f"{rel}@x{left}_y{top}" for top, left in grid]
                    side = tile or 0
                owners += [position] * len(grid)
                planes += [-1] * len(grid)
                squares += [(top, left, side) for top, left in grid]
                ids += named
        self.places = Places(
            np.asarray(owners, np.int64),
            np.asarray(planes, np.int64),
            np.asarray(squares, np.int64).reshape(-1, 3),
        )
        self._ids = ids
        notes = []
        if volumes:
            notes.append(f"{volumes:,} volume(s) cut into {slices:,} slices")
        if tile is not None:
            tiles = int((self.places.square[:, 2] > 0).sum())
            notes.append(f"{cut:,} image(s) cut into {tiles:,} tiles of {tile} pixels")
        if small:
            notes.append(f"{small:,} smaller than a tile read whole (their centre square)")
        for absent, count in empty.items():
            if count:
                notes.append(f"{count:,} tiles {absent} left out")
        self.index_note = "; ".join(filter(None, [self.index_note, *notes]))
        if not ids:
            raise EmptySourceError(
                f"{self.root}: every tile of its images was left out: "
                + ", ".join(f"{count:,} tiles {absent}" for absent, count in empty.items())
            )

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        """A seeded permutation; where files are decoded whole to read their parts
        (:meth:`kept_bytes`: a ``.nii.gz`` volume's slices, a JPEG's tiles), the files in a
        random order and the items of as many consecutive files as a process keeps decoded
        (``CACHE_BYTES``) shuffled together, so each file is decoded about once an epoch (as
        packed shards are read)."""
        kept = self.kept_bytes()
        if not kept:
            return super().epoch_order(seed, epoch)
        window = int(max(1, CACHE_BYTES // max(1, max(kept.values()))))
        return block_order(self.places.owner, window, seed, epoch)  # type: ignore[union-attr]

    def kept_bytes(self) -> dict[int, int]:
        """The files decoded whole while their parts are read, by position in ``files``, and
        the bytes each keeps decoded: a compressed volume's values, an image cut into tiles
        (other than TIFF, whose tiles are read alone) at the scale its tiles are read at
        (:func:`tile_decode_bytes`)."""
        kept = dict(self._volume_bytes)
        if self._tiled:
            gray = self.channels == 1 and (self.pixel_bits or 8) <= 8
            for position, (width, height, jpeg) in self._tiled.items():
                kept[position] = tile_decode_bytes(
                    width, height, self.tile or 0, self.image_size, jpeg, 1 if gray else 4
                )
        return kept

    def held_bytes(self) -> int:
        """Of files decoded whole to read their parts (:meth:`kept_bytes`): those a process
        keeps (``CACHE_BYTES`` at most of volumes, as much of images) and the largest as
        it is decoded; else 0."""
        kept = self.kept_bytes()
        if not kept:
            return 0
        volumes = sum(self._volume_bytes.values())
        images = sum(size for position, size in kept.items() if position in self._tiled)
        return min(CACHE_BYTES, volumes) + min(CACHE_BYTES, images) + 2 * max(kept.values())

    def read_groups(self) -> np.ndarray | None:
        """Where files are decoded whole to read their parts (compressed volumes, images
        cut into tiles), each item's file (read together once it is decoded); else None."""
        if self.places is None or not (self._volume_bytes or self._tiled):
            return None
        return self.places.owner

    def sample_rows(self, limit: int) -> np.ndarray:
        """Up to ``limit`` rows for statistics; of files decoded whole to read their parts,
        spread evenly over ``SAMPLE_FILES`` of them spread over the folder (each one read is
        decoded whole)."""
        groups = self.read_groups()
        if groups is None:
            return super().sample_rows(limit)
        present = np.unique(groups)
        count = min(SAMPLE_FILES, len(present))
        chosen = present[np.unique(np.linspace(0, len(present) - 1, count).astype(int))]
        rows = np.flatnonzero(np.isin(groups, chosen))
        return rows[np.unique(np.linspace(0, len(rows) - 1, min(limit, len(rows))).astype(int))]

    def _tile_labels(
        self,
        labels_file: str | os.PathLike | None,
        label_column: str | None,
        id_column: str | None,
    ) -> FolderLabels | None:
        """The labels of a table naming tiles (``scene.tif@x512_y1024``, as ``select`` picks
        them); None where the items are not tiles, no table is given, or it names files."""
        if self.places is None or (labels_file is None and metadata_file(self.root) is None):
            return None
        try:
            found = folder_labels(self.root, self._ids, labels_file, label_column, id_column)
        except NoFileNamedError:
            return None  # it names files: their tiles take their labels
        if found.note is not None and found.note.startswith(SUBFOLDER_NOTE):
            return None  # no table after all: the folders label the files
        if found.note is not None:
            found.note = found.note.replace(" files from ", " tiles from ", 1)
        return found

    def _find_labels(
        self,
        labels_file: str | os.PathLike | None,
        label_column: str | None,
        id_column: str | None,
    ) -> None:
        """Label the images from a table or their first-level folders (:func:`folder_labels`)."""
        # A table names an item of several channel files by any of its files, or its id.
        grouped = self.channel_files
        named = self.files if grouped is None else grouped.first_files
        aliases = None
        if grouped is not None:
            aliases = {f: i for i, files in enumerate(grouped.files) for f in files if f}
            aliases.update({item: i for i, item in enumerate(grouped.ids)})
        tiled = self._tile_labels(labels_file, label_column, id_column)
        found = tiled or folder_labels(
            self.root, named, labels_file, label_column, id_column, aliases
        )
        by_folder = found.note is not None and found.note.startswith(SUBFOLDER_NOTE)
        folders = found.labels if by_folder else (subfolder_labels(named) or (None, None))[1]
        patients = None
        if folders is not None:
            patients = patient_folders(self.root, named, folders) or scan_folders(named, folders)
        if patients is not None:  # a hospital's export: a folder per patient
            self.split_groups = "patients"
            if by_folder:
                found = FolderLabels(note=patients)
        else:  # a phone's import by day: a day's photos are near copies of one another
            self.split_groups = dated_folders(named)
        #: The labels of the files (before they label their tiles or slices); None where a
        #: table names tiles or slices (see :class:`WholeFiles`).
        self.file_labels: FolderLabels | None = None if tiled else copy.copy(found)
        if self.places is not None:
            self.split_groups = self.split_groups or "images"  # an image's tiles: one scene
            if tiled is None:  # the labels of files: those of their tiles and slices
                found = _of_tiles(found, self.places.owner)
        self.labels, self.classes, self.partial_labels = found.labels, found.classes, found.partial
        self.labels_note, self.warning = found.note, found.warning

    def _sample_headers(self) -> tuple[list[int], list[int]]:
        """Shorter sides and channels of a sample of files spread over the folder; only
        headers are read. Unreadable files are passed over here (and skipped on read); when
        the whole sample is unreadable, every file is tried in turn."""
        n = len(self.files)
        picks = np.unique(np.linspace(0, n - 1, min(SIZE_SAMPLE, n)).astype(int)).tolist()
        sides, counts, _ = self._headers(picks)
        if not sides:
            sides, counts, why = self._headers(range(n))
            if not sides:
                raise EmptySourceError(
                    f"none of the {n} image files in {self.root} can be read (the first, {why})"
                )
        return sides, counts

    def _sample_bits(self) -> tuple[int | None, str | None]:
        """The significant bits of the wide integer pixels of ``BITS_SAMPLE`` files spread
        over the folder (every channel file of a grouped item), and what they are in words
        where fewer than the files' own."""
        n = len(self.files)
        picks = np.unique(np.linspace(0, n - 1, min(BITS_SAMPLE, n)).astype(int)).tolist()
        files = []
        for i in picks:
            grouped = self.channel_files
            named = [self.files[i]] if grouped is None else grouped.files[i]
            files += [self.root / f for f in named if f is not None]
        return bits_of(files)

    def _headers(self, positions: Sequence[int]) -> tuple[list[int], list[int], str | None]:
        """Shorter sides and channels of the readable files at ``positions``, and why the
        first unreadable one is (``FILE: Error: reason``; None where all are readable)."""
        sides, counts, why = [], [], None
        for i in positions:
            grouped = self.channel_files
            first = self.files[i] if grouped is None else grouped.first_files[i]
            try:
                side, channels = image_header(self.root / first)
            except Exception as err:  # an unreadable file is passed over here, skipped on read
                why = why or f"{first}: {type(err).__name__}: {err}"
                continue
            sides.append(side)
            counts.append(channels)
        return sides, counts, why

    @property
    def item_shape(self) -> tuple[int, int, int]:
        """The shape (C, H, W) of every item."""
        return (self.channels, self.image_size, self.image_size)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> Sequence[str]:
        """The paths relative to the root, with "/" separators."""
        return self._ids

    def read(self, index: int) -> torch.Tensor:
        """Image ``index`` as a float32 tensor (C, image_size, image_size) in [0, 1]."""
        return item_tensor(self._pixels(index))

    def read_training_batch(self, indices: Sequence[int]) -> Batch:
        """As :meth:`read_batch`, but a batch of 8-bit images comes as uint8 (n, C, H, W) in
        channels-last memory: a quarter of the bytes a loader worker hands over and a GPU is
        sent, made the same floats there (``unit_items``); a batch holding a wider image
        (16-bit, float) comes as float32."""
        pixels, kept, skipped = self.read_each(indices, self._pixels)
        if not pixels:
            return Batch(torch.empty(0), kept, skipped)
        if any(p.dtype != np.uint8 for p in pixels):
            items = torch.stack([item_tensor(p) for p in pixels])
            return Batch(items, kept, skipped)
        stacked = torch.from_numpy(np.stack(pixels))
        items = stacked[:, None] if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2)
        return Batch(items, kept, skipped)

    def _pixels(self, index: int) -> np.ndarray:
        """Image ``index`` as :func:`read_pixels` gives it (uint8 or float32, (H, W[, C]))."""
        item, region = self._ids[index], None
        try:
            if self.channel_files is not None:
                owner, plane = index, None
                if self.places is not None:  # volumes of one file per channel (MR sequences)
                    owner, plane = int(self.places.owner[index]), int(self.places.plane[index])
                size, bits = self.image_size, self.pixel_bits
                return self.channel_files.read(
                    self.root, owner, size, bits, plane, self.scan_window
                )
            file, plane = item, None
            if self.places is not None:
                top, left, side = (int(v) for v in self.places.square[index])
                file, region = self.files[self.places.owner[index]], (top, left, side)
                region = region if side else None
                plane = int(self.places.plane[index]) if self.places.plane[index] >= 0 else None
            return read_pixels(
                self.root / file,
                self.image_size,
                self.channels,
                self.pixel_bits,
                region,
                plane,
                self.scan_window,
            )
        except CODE_ERRORS:
            raise
        except Exception as err:  # a bad file can fail in any of the ways a decoder can fail
            reason = f"cannot read image: {type(err).__name__}: {err}"
            if isinstance(err, Image.DecompressionBombError) or _BOMB in str(err):
                reason += _TILES_HINT if self.tile is None else _TILED_TIFF_HINT
            raise ItemReadError(item, reason) from err


#: What PIL's and tifffile's readers say of an image too large to decode whole.
_BOMB = "decompression-bomb"
_TILES_HINT = "; --tile SIZE reads a large image in squares of SIZE pixels"
_TILED_TIFF_HINT = (
    "; saved as a tiled TIFF (gdal_translate -co TILED=YES, vips tiffsave --tile), its "
    "tiles are read alone"
)


@dataclass
class ChannelFiles:
    r"""Images stored one file per channel (a plate reader's ``r01c01f01-ch1.tiff`` to
    ``-ch5.tiff``, an ImageXpress's ``A01_s1_w1.tif`` to ``_w4``), grouped into items of
    several channels by a pattern: a regular expression whose first group (else its whole
    match) is the channel in a file's name. The files that differ only there are one item,
    named by its files' path with the channel as ``*`` (``r01c01f01-ch*.tiff``), its channels
    in the order of their names (numbers as numbers).

    Attributes:
        ids: the items' names.
        channels: the channel names, in order.
        files: per item, its file for each channel (None where it has none).
        pattern: the regular expression.
        left_out: files whose names hold no channel.

    Example:
        >>> files = ["a-ch2.tif", "a-ch1.tif", "b-ch1.tif", "b-ch2.tif", "plan.png"]
        >>> grouped = ChannelFiles.group(files, r"-ch(\d+)", "plate")
        >>> grouped.ids, grouped.channels, grouped.files[0], grouped.left_out
        (['a-ch*.tif', 'b-ch*.tif'], ['1', '2'], ['a-ch1.tif', 'a-ch2.tif'], ['plan.png'])
    """

    ids: list[str]
    channels: list[str]
    files: list[list[str | None]]
    pattern: str
    left_out: list[str]

    @classmethod
    def group(cls, files: Sequence[str], pattern: str, name: str) -> ChannelFiles:
        """Group ``files`` (paths relative to the folder ``name``) by ``pattern``.

        Raises:
            ValueError: a pattern that is not a regular expression, or one no file matches.
        """
        try:
            compiled = re.compile(pattern)
        except re.error as err:
            raise ValueError(
                f"--channel-pattern {pattern!r}: not a regular expression: {err}"
            ) from None
        found: dict[str, dict[str, str]] = {}
        left_out = []
        for file in files:
            base = file.rsplit("/", 1)[-1]
            match = compiled.search(base)
            if match is None:
                left_out.append(file)
                continue
            group = 1 if compiled.groups else 0
            start, end = match.span(group)
            item = file[: len(file) - len(base)] + base[:start] + "*" + base[end:]
            found.setdefault(item, {})[match.group(group)] = file
        if not found:
            raise ValueError(
                f"{name}: no file name holds a channel matching --channel-pattern {pattern!r} "
                f"(e.g. {files[0].rsplit('/', 1)[-1]!r})"
            )
        channels = sorted({c for by in found.values() for c in by}, key=natural_order)
        ids = sorted(found)
        grouped = [[found[i].get(c) for c in channels] for i in ids]
        return cls(ids, channels, grouped, pattern, left_out)

    def __post_init__(self) -> None:
        #: Each item's first file (that of the lowest channel it has).
        self.first_files = [next(f for f in files if f is not None) for files in self.files]

    def read(
        self,
        root: Path,
        index: int,
        size: int,
        bits: int | None = None,
        plane: int | None = None,
        window: tuple[float, float] | None = None,
    ) -> np.ndarray:
        """Item ``index`` as (size, size, channels): each file read as gray (wide integer
        pixels by their significant ``bits``, see :func:`read_pixels`; of volumes, slice
        ``plane`` of each, through ``window`` where given), stacked.

        Raises:
            ValueError: a channel without its file.
        """
        missing = [c for c, f in zip(self.channels, self.files[index], strict=True) if f is None]
        if missing:
            have = len(self.channels) - len(missing)
            raise ValueError(
                f"{have} of {len(self.channels)} channel files: none for channel "
                f"{', '.join(missing)}"
            )
        files = [f for f in self.files[index] if f]
        planes = [read_pixels(root / f, size, 1, bits, plane=plane, window=window) for f in files]
        if any(p.dtype != np.uint8 for p in planes):
            planes = [p.astype(np.float32) / 255 if p.dtype == np.uint8 else p for p in planes]
        return np.stack(planes, axis=-1)

    def note(self) -> str:
        """What the grouping found, in words."""
        said = f"{len(self.ids):,} images of {len(self.channels)} channel files each"
        said += f" (channels {', '.join(self.channels)} of --channel-pattern {self.pattern!r})"
        if self.left_out:
            shown = ", ".join(self.left_out[:3]) + (", ..." if len(self.left_out) > 3 else "")
            count = len(self.left_out)
            files = "file" if count == 1 else "files"
            said += f"; {count:,} {files} without a channel in their name left out ({shown})"
        return said


def scan_folders(files: Sequence[str], codes: np.ndarray) -> str | None:
    """Why the first-level folders of ``files`` (coded by ``codes``) are not classes where
    they hold a scan's volumes each (a folder per patient or study): three folders at
    least, every folder's files volumes, and either one in each or the same names in each
    once the folder's own name is taken out of them (``ct.nii.gz``; BraTS's
    ``CASE/CASE_flair.nii.gz``...); else None. A class of one volume teaches nothing.

    Example:
        >>> files = [f"p{i}/ct.nii.gz" for i in range(3)]
        >>> scan_folders(files, np.array([0, 1, 2]))[:40]
        'no classes: the 3 first-level folders ea'
        >>> scan_folders(["a/1.nii", "a/2.nii", "b/3.nii", "c/4.nii"], np.array([0, 0, 1, 2]))
        >>> brats = [f"c{i}/c{i}_{s}.nii.gz" for i in range(3) for s in ("t1", "t2")]
        >>> scan_folders(brats, np.repeat(np.arange(3), 2)).split("; ")[-1]
        "each holds 2 (_t1.nii.gz, _t2.nii.gz): --channel-pattern '_(t1|t2|flair)' reads a \
patient's sequences as the channels of one slice"
    """
    present = np.unique(codes)
    if len(present) < 3 or not all(is_volume(f) for f in files):
        return None
    names: dict[int, set[str]] = {}
    for file, code in zip(files, codes, strict=True):
        folder, _, rest = file.partition("/")
        names.setdefault(int(code), set()).add(rest.replace(folder, ""))
    one_each = all(len(held) == 1 for held in names.values())
    if not one_each and len({frozenset(held) for held in names.values()}) > 1:
        return None
    note = (
        f"no classes: the {len(present):,} first-level folders each hold one scan's volumes "
        "(evaluation splits by them); --labels FILE labels the scans"
    )
    if not one_each:  # MR sequences, one file each: the channels of one slice
        shown = sorted(next(iter(names.values())))
        note += (
            f"; each holds {len(shown)} ({', '.join(shown[:5])}{', ...' if len(shown) > 5 else ''}"
            "): --channel-pattern '_(t1|t2|flair)' reads a patient's sequences as the channels "
            "of one slice"
        )
    return note


def patient_folders(root: Path, files: Sequence[str], codes: np.ndarray) -> str | None:
    """Why the first-level folders of ``files`` (coded by ``codes``) are not classes where
    they are a hospital's patient folders: the DICOM files sampled in each (up to
    ``PATIENT_SAMPLE``) have one ``PatientID`` per folder, another in each, over three
    folders at least; else None. Classes (``normal/``, ``nodule/``) hold many patients each.

    Example:
        >>> patient_folders(Path("."), ["cat/a.png", "dog/b.png"], np.array([0, 1])) is None
        True
    """
    folders, per_folder = PATIENT_SAMPLE
    present = np.unique(codes)
    patients: dict[int, set[str]] = {}
    for code in present[np.unique(np.linspace(0, len(present) - 1, folders).astype(int))]:
        members = np.flatnonzero(codes == code)
        picks = members[np.unique(np.linspace(0, len(members) - 1, per_folder).astype(int))]
        found = set()
        for i in picks:
            path = root / files[i]
            try:
                patient = dicom_patient(path) if is_dicom(path) else None
            except (OSError, ValueError):  # unreadable: skipped when read
                continue
            if patient is not None:
                found.add(patient)
        if found:
            patients[int(code)] = found
    ids = [next(iter(p)) for p in patients.values() if len(p) == 1]
    if len(patients) < 3 or len(ids) < len(patients) or len(set(ids)) < len(ids):
        return None
    return (
        f"no classes: the {len(present):,} first-level folders are patients (each sampled "
        "folder's DICOM files have one PatientID, another in each; evaluation splits by "
        "them); --labels FILE labels the scans"
    )


def tile_decode_bytes(
    width: int, height: int, tile: int, side: int, jpeg: bool, pixel_bytes: int
) -> int:
    """The bytes an image of ``width`` x ``height`` holds decoded whole to read its tiles of
    ``tile`` pixels at ``side`` (``pixel_bytes`` a pixel: 4 for colour, as Pillow keeps it):
    a JPEG at the smallest of its draft scales (1/2, 1/4, 1/8) that still holds them, as
    Pillow picks it; any other format at full size.

    Example:
        >>> tile_decode_bytes(5472, 3648, 512, 128, jpeg=True, pixel_bytes=4)  # at 1/4
        4990464
        >>> tile_decode_bytes(5472, 3648, 512, 128, jpeg=False, pixel_bytes=4)
        79847424
    """
    reduce = 1
    if jpeg and tile > side:
        wanted = (math.ceil(width * side / tile), math.ceil(height * side / tile))
        most = min(width // wanted[0], height // wanted[1])
        reduce = max(r for r in (1, 2, 4, 8) if r <= most)
    return math.ceil(width / reduce) * math.ceil(height / reduce) * pixel_bytes


def tile_grid(width: int, height: int, tile: int) -> list[tuple[int, int]]:
    """The (top, left) corners of the tiles of ``tile`` pixels covering a ``width`` x
    ``height`` image: on each axis as few as cover it, spread evenly, the first at 0 and the
    last ending at the edge (neighbours overlap by less than a tile where the side is no
    multiple of it); none where the image is smaller than a tile.

    Example:
        >>> tile_grid(512, 256, 256)
        [(0, 0), (0, 256)]
        >>> tile_grid(600, 256, 256)  # three tiles across, overlapping by 84 pixels
        [(0, 0), (0, 172), (0, 344)]
        >>> tile_grid(200, 900, 256)
        []
    """
    if width < tile or height < tile:
        return []
    tops = np.round(np.linspace(0, height - tile, math.ceil(height / tile))).astype(int)
    lefts = np.round(np.linspace(0, width - tile, math.ceil(width / tile))).astype(int)
    return [(int(top), int(left)) for top in tops for left in lefts]


def _data_overview(path: Path, tile: int) -> DataOverview | None:
    """Where the TIFF at ``path`` holds data (:func:`tiff_data_overview`: a GeoTIFF's
    no-data, a slide's glass); None for other files, and where it cannot tell cheaply or
    cannot be read."""
    if not is_tiff(path):
        return None
    try:
        return tiff_data_overview(path, tile)
    except Exception:  # an unreadable file is passed over here, and skipped on read
        return None


class WholeFiles(Source):
    """The files of an image folder whose items are parts of files (the slices of volumes,
    the tiles of ``--tile``) as items again (``--whole-files``): each file one item, embedded
    as the mean of its parts' embeddings (:meth:`parts`, as a long recording is the mean of
    its clips), so that ``embed``, ``evaluate``, ``select`` and ``anomalies`` see a study or
    a scene, labelled as a file (its folder, a table naming files); read alone (``explain``,
    statistics) it is its middle part. Pretraining reads the parts.

    Raises:
        ValueError: the folder's items are whole files already, or a table labels its
            slices or tiles (not files).
    """

    def __init__(self, inner: ImageFolderSource) -> None:
        if inner.places is None:
            raise ValueError(
                f"{inner.name}: --whole-files is for volumes and tiles; its items are whole "
                "files already"
            )
        found = inner.file_labels
        if found is None:
            raise ValueError(
                f"{inner.name}: its labels table names slices or tiles; --whole-files takes "
                "labels of files (a table naming files, or folders)"
            )
        self.inner = inner
        owner = inner.places.owner
        self._files = np.unique(owner)  # the files with items (a scene of no data has none)
        self._owner = np.searchsorted(self._files, owner)
        self._ids = [inner.files[int(f)] for f in self._files]
        self.name, self.reads_files, self.pixel_bits = inner.name, True, inner.pixel_bits
        self.index_note, self.labels_note, self.warning = (
            inner.index_note,
            found.note,
            found.warning,
        )
        self.split_groups = None if inner.split_groups == "images" else inner.split_groups
        self.classes = found.classes
        self.labels = None if found.labels is None else found.labels[self._files]
        partial = found.partial
        if partial is not None:
            kept = np.isin(partial.rows, self._files)
            rows = np.searchsorted(self._files, partial.rows[kept])
            partial = dataclasses.replace(partial, rows=rows, codes=partial.codes[kept])
        self.partial_labels = partial
        volumes = bool((inner.places.plane >= 0).any())
        self._words = ("slices", "volumes") if volumes else ("tiles", "images")

    @property
    def item_shape(self) -> tuple[int, int, int]:
        return self.inner.item_shape

    def read_at(self, side: int) -> None:
        self.inner.read_at(side)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> Sequence[str]:
        """The files' paths relative to the folder."""
        return self._ids

    def _middle(self, index: int) -> int:
        first, end = np.searchsorted(self._owner, [index, index + 1])
        return int(first + (end - first) // 2)

    def read(self, index: int) -> torch.Tensor:
        """File ``index``'s middle slice or tile."""
        try:
            return self.inner.read(self._middle(index))
        except ItemReadError as err:
            raise ItemReadError(self._ids[index], err.reason) from err

    def parts(self) -> Parts:
        """Each file's slices or tiles, all of them (owner: the file's position here)."""
        part = self._words[0]
        return Parts(self.inner, self._owner, self._words, f"its middle {part[:-1]}")


@dataclass
class Places:
    """Where a source's items are parts of its files (the slices of volumes, the tiles of
    ``--tile``), one row per item.

    Attributes:
        owner: each item's file (a position in the source's ``files``), nondecreasing.
        plane: its slice of a volume; -1 for a 2-D image.
        square: its square (top, left, side) in pixels of the upright image at full size;
            side 0 for a whole image (its centre square) or a slice.
    """

    owner: np.ndarray
    plane: np.ndarray
    square: np.ndarray


def _of_tiles(found: FolderLabels, owner: np.ndarray) -> FolderLabels:
    """The labels of files (``found``) as labels of their tiles or slices (``owner``: each
    item's file, nondecreasing)."""
    if found.labels is not None:
        found.labels = found.labels[owner]
    if found.partial is not None:
        found.partial = found.partial.of_parts(owner)
    return found


def natural_order(name: str) -> tuple[int, int | str]:
    """A sort key: numbers in numeric order before words (``2`` before ``10``): channels,
    class names.

    Example:
        >>> sorted(["10", "b", "2", "-1"], key=natural_order)
        ['-1', '2', '10', 'b']
    """
    return (0, int(name)) if name.lstrip("-").isdigit() else (1, name)


def image_header(file: str | os.PathLike | BinaryIO) -> tuple[int, int]:
    """The shorter side of the image in ``file`` and its channels (1 for gray, 3 for colour,
    a TIFF's own count), from its header.

    Example:
        >>> import io
        >>> stream = io.BytesIO()
        >>> Image.new("RGBA", (30, 20)).save(stream, "PNG")
        >>> image_header(stream)
        (20, 3)
    """
    width, height, channels = image_dimensions(file)
    return min(width, height), channels


#: EXIF orientations that turn an image a quarter: its width is the upright image's height.
_QUARTER_TURNS = {5, 6, 7, 8}


def image_dimensions(file: str | os.PathLike | BinaryIO) -> tuple[int, int, int]:
    """The width and height of the image in ``file`` as it is shown (upright, where its EXIF
    orientation turns it a quarter) and its channels (1 for gray, 3 for colour, a TIFF's
    own count), from its header.

    Example:
        >>> import io
        >>> stream = io.BytesIO()
        >>> exif = Image.Exif()
        >>> exif[0x0112] = 6  # held sideways: shown turned a quarter
        >>> Image.new("RGB", (30, 20)).save(stream, "JPEG", exif=exif)
        >>> image_dimensions(stream)
        (20, 30, 3)
    """

    def dicom(file: str | os.PathLike | BinaryIO) -> tuple[int, int, int]:
        width, height, gray = dicom_header(file)
        return width, height, 1 if gray else 3

    def volume(file: str | os.PathLike) -> tuple[int, int, int]:
        return (*volume_layout(file).size, 1)

    def pillow(file: str | os.PathLike | BinaryIO) -> tuple[int, int, int]:
        with Image.open(file) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in _QUARTER_TURNS:
                width, height = height, width
            return width, height, 1 if image.mode in GRAY_MODES else 3

    return by_format(file, dicom, tiff_header, volume, pillow)


def by_format(
    file: str | os.PathLike | BinaryIO,
    dicom: Callable[[Any], T],
    tiff: Callable[[Any], T],
    volume: Callable[[Any], T],
    pillow: Callable[[Any], T],
) -> T:
    """``dicom(file)`` for a DICOM file (its preamble may hold a TIFF header), ``tiff(file)``
    for a TIFF unless it is one :mod:`selfsup.data.tiff` leaves to PIL
    (:class:`TiffForPillow`), ``volume(file)`` for a NIfTI volume, else ``pillow(file)``: the
    one place a reader picks its format.

    Example:
        >>> by_format("a.png", str.upper, str.lower, str.title, len)
        5
        >>> by_format("ct.nii.gz", str.upper, str.lower, str.title, len)
        'Ct.Nii.Gz'
    """
    if is_volume(file):
        return volume(file)
    if is_dicom(file):
        return dicom(file)
    if is_tiff(file):
        try:
            return tiff(file)
        except TiffForPillow:
            pass
    return pillow(file)


def default_channels(counts: Sequence[int]) -> int:
    """The channels a folder's images are read with, from those of a sample of them: the
    most frequent count where some have neither 1 nor 3 (a microscope's 5), else 1 when most
    are gray, else 3.

    Example:
        >>> default_channels([1, 1, 3]), default_channels([1, 3, 3]), default_channels([5, 5, 3])
        (1, 3, 5)
    """
    if any(c not in (1, 3) for c in counts):
        values, frequency = np.unique(np.asarray(counts), return_counts=True)
        return int(values[np.argmax(frequency)])
    return 1 if 2 * sum(c == 1 for c in counts) > len(counts) else 3


def read_pixels(
    file: str | os.PathLike | BinaryIO,
    size: int,
    channels: int,
    bits: int | None = None,
    region: Region | None = None,
    plane: int | None = None,
    window: tuple[float, float] | None = None,
) -> np.ndarray:
    """The image in ``file`` (a path or a binary stream) as an (H, W[, C]) array of side
    ``size`` with ``channels`` channels: its centre square, or the square ``region`` (top,
    left, side in pixels of the upright image at full size: a tile). TIFFs are read through
    :mod:`selfsup.data.tiff` (float32; of a region, only the strips or tiles under it),
    DICOM and other formats through :func:`decode_pixels`; of a NIfTI volume, slice
    ``plane`` (by default its middle one, :mod:`selfsup.data.volumes`). A scan's values
    (DICOM, NIfTI) are shown through ``window`` (low, high in its units) where given, else
    its own window or percentiles. Gray and colour convert into
    each other; other counts must match. Integer pixels wider than 8 bits are divided by
    ``2**bits - 1`` where ``bits`` (their significant bits, :func:`significant_bits`) is
    given, else by their file's bit depth.

    Raises:
        ValueError: an image whose channels cannot become ``channels``, or any reason the
            decoder gives.

    Example:
        >>> import io
        >>> stream = io.BytesIO()
        >>> Image.new("RGB", (40, 30), "red").save(stream, "PNG")
        >>> read_pixels(stream, 10, 1).shape
        (10, 10)
    """

    def decoded(opened: Callable[[], Image.Image]) -> np.ndarray:
        def whole() -> Decoded:
            with opened() as image:
                if channels not in (1, 3):
                    kind = "a gray" if image.mode in GRAY_MODES else "a colour"
                    raise ValueError(
                        f"{kind} image where the data's images have {channels} channels"
                    )
                crop = min(image.size) if region is None else region[2]
                return decode_whole(image, size, crop, channels, bits)

        if region is None or hasattr(file, "read"):
            return cut_pixels(whole(), size, region)
        # a tile: the file decoded once for all its tiles (at the scale they are read at)
        key = (*file_key(file), size, region[2], channels, bits, window)
        return cut_pixels(DECODED.get(key, whole), size, region)

    if _empty(file):  # every decoder says it in its own words, or names a stream object
        raise ValueError("the file is empty (0 bytes)")
    return by_format(
        file,
        # decoded to [0, 1] by its window; a frame of a multi-frame file as a volume's slice
        lambda f: decoded(
            lambda: read_dicom(f, window) if plane is None else read_plane(f, plane, window)
        ),
        lambda f: _conform_channels(read_tiff(f, size, bits, region), channels),
        lambda f: decoded(lambda: read_plane(f, plane, window)),  # to [0, 1] over its volume
        lambda f: decoded(lambda: open_whole(f)),
    )


#: The images this process has decoded whole to read their tiles (a JPEG frame cannot be
#: read a tile at a time), by file and the scale, channels and window their tiles are read at.
DECODED: HeldCache[Decoded] = HeldCache(CACHE_BYTES, lambda decoded: decoded.nbytes)


@contextlib.contextmanager
def _bytes_of(file: str | os.PathLike | BinaryIO) -> Iterator[BinaryIO]:
    """``file`` as a binary stream to seek in: a path opened (and closed after), a stream
    as it is, put back where it was after."""
    if not hasattr(file, "read"):
        with open(file, "rb") as opened:
            yield opened
        return
    stream: BinaryIO = file  # type: ignore[assignment]
    here = stream.tell()
    try:
        yield stream
    finally:
        stream.seek(here)


def _empty(file: str | os.PathLike | BinaryIO) -> bool:
    """Whether ``file`` (a path or a binary stream) holds no byte."""
    with _bytes_of(file) as stream:
        return stream.seek(0, os.SEEK_END) == 0


#: Formats kept in ISO base media boxes, whose decoders read a file cut short without a word.
_BOX_FORMATS = {"HEIF", "AVIF"}


def open_whole(file: str | os.PathLike | BinaryIO) -> Image.Image:
    """The image in ``file`` opened by Pillow, unless it is a HEIF or AVIF file cut short (a
    copy from a phone that stopped): libheif decodes what is there, its thumbnail and the
    first part of the photo, without an error, so the boxes such a file declares are checked
    against its length. Other formats' decoders say it themselves.

    Raises:
        ValueError: the file is cut short, or no installed decoder identifies it (said
            without the stream object a packed shard's item is read from).

    Example:
        >>> import io
        >>> stream = io.BytesIO()
        >>> Image.new("RGB", (8, 8)).save(stream, "PNG")
        >>> open_whole(stream).size
        (8, 8)
        >>> open_whole(io.BytesIO(b"notes"))
        Traceback (most recent call last):
        ...
        ValueError: cannot identify image file: not an image any installed decoder reads
    """
    try:
        image = Image.open(file)
    except UnidentifiedImageError:
        image = None
    boxes = image.format in _BOX_FORMATS if image is not None else _has_boxes(file)
    missing = missing_box_bytes(file) if boxes else 0
    if missing:
        if image is not None:
            image.close()
        kind = image.format if image is not None else "HEIF/AVIF"
        raise ValueError(
            f"the file is cut short: {missing:,} bytes of its {kind} boxes are missing"
        )
    if image is None:
        raise ValueError("cannot identify image file: not an image any installed decoder reads")
    return image


def _has_boxes(file: str | os.PathLike | BinaryIO) -> bool:
    """Whether ``file`` begins as an ISO base media file does (an ``ftyp`` box)."""
    with _bytes_of(file) as stream:
        stream.seek(0)
        return stream.read(8)[4:8] == b"ftyp"


def missing_box_bytes(file: str | os.PathLike | BinaryIO) -> int:
    """How many bytes the top-level boxes of an ISO base media file (HEIF, AVIF, MP4)
    declare beyond its end: 0 for a whole file (or one whose boxes cannot be walked, which
    is left to its decoder).

    Example:
        >>> import io
        >>> box = (16).to_bytes(4, "big") + b"ftypheic" + bytes(4)
        >>> missing_box_bytes(io.BytesIO(box)), missing_box_bytes(io.BytesIO(box[:10]))
        (0, 6)
    """
    with _bytes_of(file) as stream:
        end = stream.seek(0, os.SEEK_END)
        offset = 0
        while offset + 8 <= end:
            stream.seek(offset)
            header = stream.read(16)
            size = int.from_bytes(header[:4], "big")
            if size == 1 and len(header) == 16:  # a 64-bit size follows the type
                size = int.from_bytes(header[8:16], "big")
            if size == 0:  # the last box, to the end of the file
                break
            if size < 8:
                offset = end  # not boxes: the decoder says what is wrong
                break
            offset += size
        return max(0, offset - end)


def stored_maximum(file: str | os.PathLike | BinaryIO) -> int | None:
    """The largest value the image in ``file`` stores where its pixels are integers wider
    than 8 bits (16-bit PNGs and TIFFs, a camera's 12 bits in 16), its pixels decoded whole;
    None for any other image (8-bit, float, signed, DICOM: windowed by its own tags), which
    only its header tells.

    Example:
        >>> import io
        >>> stream = io.BytesIO()
        >>> Image.fromarray(np.array([[5, 3000]], np.uint16)).save(stream, "PNG")
        >>> stored_maximum(stream)
        3000
    """

    def pillow(file: str | os.PathLike | BinaryIO) -> int | None:
        with Image.open(file) as image:
            if image.mode not in _WIDE_GRAY_MODES:
                return None
            values = np.asarray(image)
        low, high = int(values.min()), int(values.max())
        return high if low >= 0 and high <= 65535 else None  # others span their own range

    return by_format(file, lambda _: None, tiff_stored_maximum, lambda _: None, pillow)


def significant_bits(maxima: Sequence[int]) -> int | None:
    """The bits a folder's integer pixels wider than 8 bits use, from the largest values a
    sample of its files store: the even count (8, 10, 12, 14 or 16, as a camera's
    converter gives) that holds the largest; None without such files.

    Example:
        >>> significant_bits([3870, 4095]), significant_bits([4096]), significant_bits([60000])
        (12, 14, 16)
        >>> significant_bits([200]), significant_bits([])
        (8, None)
    """
    if not maxima:
        return None
    bits = max(8, int(max(maxima)).bit_length())
    return min(16, bits + bits % 2)


def bits_of(
    files: Sequence[str | os.PathLike | BinaryIO],
) -> tuple[int | None, str | None]:
    """:func:`significant_bits` of ``files`` (unreadable ones passed over), and where they are
    fewer than 16, a note saying so."""
    maxima = []
    for file in files:
        try:
            found = stored_maximum(file)
        except Exception:  # an unreadable file is passed over here, and skipped on read
            continue
        if found is not None:
            maxima.append(found)
    bits = significant_bits(maxima)
    if bits is None or bits == 16:
        return bits, None
    return bits, (
        f"{bits}-bit values in wider files (at most {max(maxima):,} in {len(maxima)} sampled): "
        f"0..{2**bits - 1:,} read as [0, 1] (--pixel-bits to change)"
    )


def _conform_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """A float (H, W, C) array as (H, W) for one channel, (H, W, channels) otherwise; gray
    is repeated to colour, colour becomes its luma (PIL's "L" weights)."""
    have = pixels.shape[2]
    if have == channels:
        return pixels[:, :, 0] if channels == 1 else pixels
    if have == 3 and channels == 1:
        return pixels @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    if have == 1 and channels == 3:
        return np.repeat(pixels, 3, axis=2)
    raise ValueError(f"{have} channel{'s' * (have != 1)} where the data's images have {channels}")


def item_tensor(pixels: np.ndarray) -> torch.Tensor:
    """An (H, W[, C]) array of :func:`decode_pixels` as the float32 (C, H, W) item in [0, 1]
    that ``read`` gives (uint8 divided by 255, as ``unit_items`` does on a device).

    Example:
        >>> item_tensor(np.array([[0, 51], [255, 0]], np.uint8)).flatten().tolist()
        [0.0, 0.20000000298023224, 1.0, 0.0]
    """
    tensor = torch.from_numpy(pixels)
    tensor = tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()
    return unit_items(tensor)


def decode_pixels(
    image: Image.Image,
    size: int,
    channels: int,
    bits: int | None = None,
    region: Region | None = None,
) -> np.ndarray:
    """Decode, convert, resize and crop one opened image to an (H, W[, C]) array of side
    ``size``: uint8 for 8-bit images (0..255 for [0, 1]), float32 in [0, 1] for wider ones.
    JPEGs decode at reduced scale when larger (draft mode), EXIF rotation applies, wide gray
    modes are scaled by 65535 (``2**bits - 1`` where their significant ``bits`` are given)
    and float images by their range (see :func:`value_range`), the centre square is kept,
    or ``region`` (top, left, side in pixels of the upright image at full size). The same as
    :func:`cut_pixels` of :func:`decode_whole`.

    Raises:
        ValueError: a float image holding NaN or infinite pixels.

    Example:
        >>> image = Image.new("L", (64, 32))
        >>> image.paste(255, (48, 0, 64, 16))  # a white square at the top right
        >>> tile = decode_pixels(image, 4, 1, region=(0, 48, 16))
        >>> bool(tile.mean() > 200), bool(decode_pixels(image, 4, 1).mean() < 50)
        (True, True)
    """
    crop = min(image.size) if region is None else region[2]
    return cut_pixels(decode_whole(image, size, crop, channels, bits), size, region)


@dataclass
class Decoded:
    """An image decoded as its squares are cut from it (:func:`decode_whole`): upright, in
    the data's channels, at the scale of its JPEG draft, with the offset and span that bring
    a wide image's pixels to [0, 1]."""

    image: Image.Image  # mode "L", "RGB" or "F"
    full: int  # the shorter side of the upright image at full size
    channels: int  # what its squares are given in (a wide gray image's, repeated)
    low: float = 0.0
    peak: float = 1.0

    @property
    def nbytes(self) -> int:
        """The bytes it holds (Pillow keeps an RGB pixel in four)."""
        return self.image.width * self.image.height * (1 if self.image.mode == "L" else 4)


def decode_whole(
    image: Image.Image, size: int, crop: int, channels: int, bits: int | None = None
) -> Decoded:
    """Decode one opened image whole for squares of ``crop`` pixels read at ``size``: a JPEG
    larger than that needs at the reduced scale (draft mode) that still holds them, rotated
    upright by its EXIF orientation, in ``channels`` channels (wide gray and float images as
    floats, with their range, see :func:`decode_pixels`).

    Raises:
        ValueError: a float image holding NaN or infinite pixels.

    Example:
        >>> decoded = decode_whole(Image.new("RGB", (64, 32)), 8, 16, channels=1)
        >>> decoded.image.mode, decoded.full, decoded.nbytes
        ('L', 32, 2048)
    """
    full = min(image.size)
    if crop > size:
        # JPEG can decode at 1/2, 1/4 or 1/8 scale directly; the crop stays >= size.
        scale = size / crop
        draft_size = (math.ceil(image.width * scale), math.ceil(image.height * scale))
        image.draft(image.mode, draft_size)
    image.load()  # Image.open is lazy: decoding (and a truncation error) happens here
    ImageOps.exif_transpose(image, in_place=True)
    if image.mode in _WIDE_GRAY_MODES or image.mode == "F":
        mode, image = image.mode, image.convert("F")
        low, peak = value_range(np.asarray(image), mode, bits)
        return Decoded(image, full, channels, low, peak)
    if channels == 1:
        return Decoded(image.convert("L"), full, channels)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # avoids PIL's warning for such palettes
    return Decoded(image.convert("RGB"), full, channels)


def cut_pixels(decoded: Decoded, size: int, region: Region | None = None) -> np.ndarray:
    """The centre square of a :func:`decode_whole` image, or its square ``region`` (top,
    left, side in pixels of the upright image at full size), resized to ``size``, as
    :func:`decode_pixels` gives it; ``decoded`` is left as it is.

    Example:
        >>> decoded = decode_whole(Image.new("L", (64, 32), 255), 4, 16, channels=3)
        >>> cut_pixels(decoded, 4, region=(0, 48, 16)).shape
        (4, 4, 3)
    """
    image = decoded.image
    if region is not None:  # the region, in pixels of the image as decoded (a draft's scale)
        scale = min(image.size) / decoded.full
        top, left, side = (value * scale for value in region)
    else:  # the centre square, resized straight to size
        side = min(image.size)
        left, top = (image.width - side) / 2, (image.height - side) / 2
    if region is not None or image.size != (size, size):
        box = (left, top, left + side, top + side)
        image = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
    if image.mode != "F":
        return np.array(image, dtype=np.uint8)  # writable: torch shares it
    pixels = np.asarray(image, dtype=np.float32)
    pixels = ((pixels - decoded.low) / decoded.peak).clip(0.0, 1.0)
    return np.repeat(pixels[:, :, None], 3, axis=2) if decoded.channels == 3 else pixels


def value_range(pixels: np.ndarray, mode: str, bits: int | None = None) -> tuple[float, float]:
    """The offset and span that bring a wide image's pixels to [0, 1]: 16-bit images (and
    32-bit ones within 16 bits) span 0..65535 (0..``2**bits - 1`` where their significant
    ``bits`` are given; larger values are clipped after), float images in [0, 1] are kept,
    any other image spans its own minimum to maximum.

    Raises:
        ValueError: NaN or infinite pixels.

    Example:
        >>> value_range(np.array([[0.2, 0.9]]), "F"), value_range(np.array([[-3.0, 5.0]]), "F")
        ((0.0, 1.0), (-3.0, 8.0))
    """
    if not np.isfinite(pixels).all():
        raise ValueError("the image holds NaN or infinite pixels")
    low, high = float(pixels.min()), float(pixels.max())
    if mode == "F" and low >= 0.0 and high <= 1.0:
        return 0.0, 1.0
    if mode != "F" and low >= 0.0 and high <= 65535.0:
        return 0.0, float(2 ** min(bits or 16, 16) - 1)
    return low, (high - low) if high > low else 1.0


def find_image_files(root: Path) -> list[str]:
    """The image files under ``root`` as sorted "/"-separated relative paths, hidden ones left out.

    Example:
        >>> find_image_files(Path("/nonexistent"))
        []
    """
    return find_files(root, IMAGE_FILES)
