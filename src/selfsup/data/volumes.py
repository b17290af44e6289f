"""Volumes (CT, MR, PET scans saved as NIfTI files or multi-frame DICOM) read as the images
of their slices.

A scan is a stack of slices, and a 2-D encoder learns from slices: every NIfTI file
(``.nii``, ``.nii.gz``) in an image folder is cut into its axial slices, each an item named
``FILE@zK``, K the slice's index along the file's own axis nearest the body's long axis (as a
viewer such as ITK-SNAP counts it). A slice is shown as a radiologist looks at it, anterior at
the top and the patient's right on the left, whatever order the file stores its axes in (its
affine says, :func:`volume_layout`); a file without orientation is shown as stored. Values go
through the file's scaling (``scl_slope``, ``scl_inter``: a CT's Hounsfield units), then to
[0, 1] through the file's display range (``cal_min``, ``cal_max``) where it sets one, else the
0.5th to 99.5th percentiles of the whole volume's values: one window for all its slices, so
the air above a head stays dark instead of stretched noise. Values that are not numbers (NaN
outside a mask) read as 0. A 4-D file (an fMRI run, a diffusion series) is not one volume and
is refused with how to split it. A gray multi-frame DICOM file (an enhanced CT or MR, a gray
cine loop) is a volume of its frames in their stored order, each through its own rescale and
the file's window (:func:`selfsup.data.dicom.read_dicom_frames`), decoded whole like a
compressed volume (whatever its size: pydicom reads the file whole).

Reading: a compressed volume (``.nii.gz``) cannot be read a slice at a time without
decompressing all that lies before the slice, so a process decompresses a volume once and
keeps it, in its stored integers (:class:`VolumeCache`: ``CACHE_BYTES`` per process, the least
recently read volume given up first); training reads a volume's slices in blocks of volumes
that fit in it (see ``ImageFolderSource.epoch_order``), so a volume is decompressed about once
an epoch by each process that reads it. An uncompressed ``.nii`` is mapped, not read; a
compressed volume larger than the cache is read a slice at a time (slowly, in bounded memory).

Example:
    >>> import tempfile
    >>> import nibabel as nib
    >>> path = Path(tempfile.mkdtemp()) / "ct.nii.gz"
    >>> values = np.arange(4 * 3 * 5, dtype=np.int16).reshape(4, 3, 5)
    >>> nib.save(nib.Nifti1Image(values, np.eye(4)), path)  # axes toward right, anterior, up
    >>> volume_header(path)  # width, height, slices
    (4, 3, 5)
    >>> plane = read_plane(path, 2)  # anterior at the top, the patient's right on the left
    >>> plane.mode, plane.size, int(np.asarray(plane).argmax())  # values[3, 2, 2] is top left
    ('F', (4, 3), 0)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from selfsup.data.held import CACHE_BYTES, HeldCache, file_key

#: File suffixes of volumes, compared case-insensitively.
VOLUME_EXTENSIONS = (".nii", ".nii.gz")
#: The percentiles that map a volume without a display range of its own to [0, 1].
PERCENTILES = (0.5, 99.5)
#: Values sampled (evenly, over the whole volume) for its percentiles.
SAMPLE_VALUES = 2_000_000


class VolumeError(ValueError):
    """A NIfTI file that is not one volume of numbers (4-D, colour, complex)."""


def parse_window(text: str | tuple[float, float]) -> tuple[float, float]:
    """A window of a scan's values, ``LOW,HIGH`` (``--scan-window``), as two numbers.

    Raises:
        ValueError: not two numbers, LOW not below HIGH.

    Example:
        >>> parse_window("-160, 240"), parse_window((-1000, 400))
        ((-160.0, 240.0), (-1000.0, 400.0))
    """
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        low, high = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(
            f"{text!r}: give the window as LOW,HIGH in the scan's units (-160,240 for soft "
            "tissue in Hounsfield units: level 40, width 400)"
        ) from None
    if not (np.isfinite([low, high]).all() and low < high):
        raise ValueError(f"{text!r}: the window's LOW must be below its HIGH")
    return low, high


def is_volume(file: str | os.PathLike | Any) -> bool:
    """Whether ``file`` is a path named as a NIfTI volume (streams are not).

    Example:
        >>> is_volume("scans/ct.NII.GZ"), is_volume("brain.nii"), is_volume("photo.gz")
        (True, True, False)
    """
    if not isinstance(file, (str, os.PathLike)):
        return False
    return os.fspath(file).lower().endswith(VOLUME_EXTENSIONS)


def is_compressed(file: str | os.PathLike) -> bool:
    """Whether the volume ``file`` is gzip-compressed (``.nii.gz``)."""
    return os.fspath(file).lower().endswith(".gz")


@dataclass(frozen=True)
class VolumeLayout:
    """How a volume's slices are cut and shown.

    Attributes:
        shape: the stored shape (x, y, z) of the volume's voxels.
        axis: the voxel axis cut into slices (the one nearest the body's long axis).
        rows: the voxel axis that runs down a slice as shown (anterior to posterior).
        flip_rows: whether that axis is stored posterior to anterior (shown reversed).
        flip_cols: whether the axis across a slice is stored left to right (shown reversed,
            the patient's right on the image's left).
        nbytes: the bytes of the volume's stored values.
    """

    shape: tuple[int, int, int]
    axis: int
    rows: int
    flip_rows: bool
    flip_cols: bool
    nbytes: int

    @property
    def planes(self) -> int:
        """The number of slices."""
        return self.shape[self.axis]

    @property
    def size(self) -> tuple[int, int]:
        """A slice's (width, height) as shown."""
        cols = 3 - self.axis - self.rows
        return self.shape[cols], self.shape[self.rows]

    def plane(self, values: Any, index: int) -> np.ndarray:
        """Slice ``index`` of ``values`` (an array or nibabel's proxy of the stored shape)
        as shown: (height, width).

        Example:
            >>> layout = VolumeLayout((4, 3, 5), 2, 1, True, True, 120)
            >>> layout.plane(np.arange(60).reshape(4, 3, 5), 0).shape
            (3, 4)
        """
        where: list[Any] = [slice(None)] * 3 + [0] * (len(values.shape) - 3)
        where[self.axis] = index
        plane = np.asarray(values[tuple(where)])
        if self.rows > 3 - self.axis - self.rows:  # the rows' axis comes after the columns'
            plane = plane.T
        if self.flip_rows:
            plane = plane[::-1]
        if self.flip_cols:
            plane = plane[:, ::-1]
        return plane


def _load(path: str | os.PathLike) -> Any:
    """The NIfTI image at ``path``, its values not yet read."""
    import nibabel as nib

    try:
        return nib.load(os.fspath(path))
    except nib.filebasedimages.ImageFileError as err:
        raise VolumeError(f"not a NIfTI file nibabel reads ({err})") from None


def _dicom_layout(path: str | os.PathLike) -> VolumeLayout:
    """A gray multi-frame DICOM file's frames as slices, in their stored order, shown as
    stored, from its header."""
    from selfsup.data.dicom import _read, frame_count

    data = _read(path, header_only=True)
    frames = frame_count(data)
    rows, columns = int(data.get("Rows", 0) or 0), int(data.get("Columns", 0) or 0)
    if not rows or not columns:
        raise VolumeError("a DICOM object without an image")
    nbytes = frames * rows * columns * max(1, int(data.get("BitsAllocated", 16) or 16) // 8)
    return VolumeLayout((columns, rows, frames), 2, 1, False, False, nbytes)


def volume_layout(path: str | os.PathLike) -> VolumeLayout:
    """How the volume at ``path`` is cut into slices and shown, from its header: the voxel
    axis nearest the body's long axis (superior-inferior, by its affine) is cut; of the
    other two, the one nearest anterior-posterior runs down a slice. A file without
    orientation (``qform_code`` and ``sform_code`` 0) is cut along its third axis and shown
    as stored (x across, y down). A 2-D image is a volume of one slice.

    Raises:
        VolumeError: a 4-D file (several volumes), colour or complex values, or not NIfTI.
    """
    from selfsup.data.dicom import is_dicom

    return _dicom_layout(path) if is_dicom(path) else _nifti_layout(_load(path))


def _nifti_layout(image: Any) -> VolumeLayout:
    """:func:`volume_layout` of a NIfTI image already loaded (its header)."""
    import nibabel as nib

    shape = tuple(int(s) for s in image.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 3:
        raise VolumeError(
            f"a {len(shape)}-D volume of {int(np.prod(shape[3:])):,} volumes of "
            f"{'x'.join(map(str, shape[:3]))} (an fMRI run, a diffusion series): its slices "
            "are read from 3-D volumes; split it into them (fslsplit, nibabel's four_to_three)"
        )
    dtype = np.dtype(image.get_data_dtype())
    if dtype.kind not in "iufb":
        raise VolumeError(f"values of type {dtype} (colour or complex): not a scan's numbers")
    shape = (*shape, 1, 1)[:3]
    header = image.header
    oriented = int(header.get("qform_code", 0)) > 0 or int(header.get("sform_code", 0)) > 0
    axis, rows, flip_rows, flip_cols = 2, 1, False, False
    if oriented:
        ornt = nib.orientations.io_orientation(image.affine)
        world = ornt[:, 0]
        if np.isfinite(world).all() and sorted(world.astype(int).tolist()) == [0, 1, 2]:
            order = world.astype(int).tolist()
            axis, rows, cols = order.index(2), order.index(1), order.index(0)
            flip_rows, flip_cols = bool(ornt[rows, 1] > 0), bool(ornt[cols, 1] > 0)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    return VolumeLayout(shape, axis, rows, flip_rows, flip_cols, nbytes)  # type: ignore[arg-type]


def volume_header(path: str | os.PathLike) -> tuple[int, int, int]:
    """The width and height of the volume's slices as shown, and their number, from its
    header (:func:`volume_layout`)."""
    layout = volume_layout(path)
    return (*layout.size, layout.planes)


@dataclass
class _Volume:
    """A volume as a process keeps it: its stored values (or the proxy reading them), the
    scaling to its units and the window of those shown."""

    layout: VolumeLayout
    values: Any
    slope: float | np.ndarray  # one for the volume, or one for each slice (DICOM frames)
    inter: float | np.ndarray
    window: tuple[float, float]
    nbytes: int  # what it holds in memory (0: mapped, or read a slice at a time)
    inverted: bool = False  # MONOCHROME1: white stored as 0


def _window(image: Any, sample: np.ndarray) -> tuple[float, float]:
    """The lowest and highest value shown: the file's display range, else percentiles of
    ``sample`` (values in the file's units)."""
    low, high = float(image.header["cal_min"]), float(image.header["cal_max"])
    if np.isfinite([low, high]).all() and high > low:
        return low, high
    return _percentiles(sample)


def _percentiles(sample: np.ndarray) -> tuple[float, float]:
    """The window of ``PERCENTILES`` of a volume's ``sample`` of values, NaN left out."""
    finite = sample[np.isfinite(sample)]
    if not finite.size:
        raise ValueError("the volume holds no finite value")
    low, high = (float(v) for v in np.percentile(finite, PERCENTILES))
    return (low, high) if high > low else (low, low + 1.0)


def _stored_values(path: str | os.PathLike, image: Any, layout: VolumeLayout) -> np.ndarray:
    """The stored values of the volume at ``path`` (nibabel's ``image`` of it): a compressed
    one decompressed whole by libdeflate (through imagecodecs: 2 to 3 times as fast as the
    zlib nibabel reads through), unless it declines the file (several gzip members, a
    damaged stream), then by nibabel; an uncompressed one mapped.

    Raises:
        EOFError: the compressed data ends before the values do.
    """
    import imagecodecs

    count = int(np.prod(layout.shape))
    if is_compressed(path):
        offset = int(image.dataobj.offset)  # where the values start (the header's own may say 0)
        try:  # into the size the header gives (a file cut short would give its own)
            data = imagecodecs.gzip_decode(Path(path).read_bytes(), out=offset + layout.nbytes)
        except (imagecodecs.DeflateError, imagecodecs.GzipError, ValueError):
            data = b""  # nibabel's reader says what is wrong
        if len(data) >= offset + layout.nbytes:
            dtype = image.header.get_data_dtype()
            values = np.frombuffer(data, dtype, count=count, offset=offset)
            return values.reshape(layout.shape, order="F")
    return np.asanyarray(image.dataobj.get_unscaled()).reshape(layout.shape, order="A")


def _open_volume(path: str | os.PathLike, cache_bytes: int) -> _Volume:
    """The volume at ``path`` ready to cut: a compressed one decompressed (unless larger
    than ``cache_bytes``), an uncompressed one mapped; a multi-frame DICOM file decoded."""
    from selfsup.data.dicom import is_dicom, read_dicom_frames

    if is_dicom(path):
        frames = read_dicom_frames(path)
        stored = frames.stored.transpose(2, 1, 0)  # (columns, rows, frames): x, y, z
        layout = VolumeLayout(stored.shape, 2, 1, False, False, stored.nbytes)
        step = max(1, round((stored.size / SAMPLE_VALUES) ** (1 / 3)))
        picks = slice(None, None, step)
        sample = stored[picks, picks, picks] * frames.slope[picks] + frames.intercept[picks]
        window = frames.window or _percentiles(np.asarray(sample, np.float64))
        slope, inter = frames.slope, frames.intercept
        return _Volume(layout, stored, slope, inter, window, stored.nbytes, frames.inverted)
    image = _load(path)
    layout = _nifti_layout(image)
    proxy = image.dataobj
    if not is_compressed(path):
        end = int(getattr(proxy, "offset", 0)) + layout.nbytes
        size = os.path.getsize(path)
        if size < end:
            raise VolumeError(
                f"the file is cut short: it ends at {size:,} bytes and its values run to "
                f"{end:,} (a copy that stopped?)"
            )
    slope, inter = float(getattr(proxy, "slope", 1.0)), float(getattr(proxy, "inter", 0.0))
    step = max(1, round((np.prod(layout.shape) / SAMPLE_VALUES) ** (1 / 3)))
    strided = tuple(slice(None, None, step) for _ in range(3))
    if is_compressed(path) and layout.nbytes > cache_bytes:
        values, held = proxy, 0  # a slice at a time, each decompressing what lies before it
        sample = np.asarray(proxy[strided + (0,) * (len(proxy.shape) - 3)], dtype=np.float64)
    else:
        try:
            stored = _stored_values(path, image, layout)
        except EOFError:
            raise VolumeError(
                "the file is cut short: its compressed data ends before the volume's "
                f"{layout.nbytes:,} bytes of values do (a copy that stopped?)"
            ) from None
        values, held = stored, 0 if isinstance(stored, np.memmap) else stored.nbytes
        sample = np.asarray(stored[strided], dtype=np.float64) * slope + inter
    return _Volume(layout, values, slope, inter, _window(image, sample), held)


class VolumeCache:
    """Volumes a process has opened, the least recently read given up first once they hold
    more than ``limit`` bytes; a volume that cannot be read is remembered with its error,
    so that its hundreds of slices do not each try again.

    Example:
        >>> cache = VolumeCache(limit=2**20)
        >>> cache.plane("/nonexistent/ct.nii.gz", 0)
        Traceback (most recent call last):
        ...
        FileNotFoundError: No such file or no access: '/nonexistent/ct.nii.gz'
    """

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self.limit = limit
        self._held: HeldCache[_Volume] = HeldCache(limit, lambda volume: volume.nbytes)

    def _get(self, path: str | os.PathLike) -> _Volume:
        return self._held.get(file_key(path), lambda: _open_volume(path, self.limit))

    def plane(
        self,
        path: str | os.PathLike,
        index: int,
        window: tuple[float, float] | None = None,
    ) -> Image.Image:
        """Slice ``index`` of the volume at ``path`` as shown, a PIL image of mode "F" in
        [0, 1] (see the module's docstring): its values from ``window`` (low, high in the
        volume's units: ``--scan-window``) where given, else the volume's own, to [0, 1].

        Raises:
            IndexError: no such slice.
            VolumeError: the file is not one volume (4-D, colour), or not NIfTI.
            OSError, EOFError: the file cannot be read (missing, cut short).
        """
        volume = self._get(path)
        planes = volume.layout.planes
        if not 0 <= index < planes:
            raise IndexError(f"no slice {index}: the volume has {planes} (0 to {planes - 1})")
        stored = volume.layout.plane(volume.values, index)
        if isinstance(volume.values, np.ndarray):  # stored values, mapped or decompressed
            slope, inter = volume.slope, volume.inter
            if isinstance(slope, np.ndarray):  # a DICOM file's frames: each its own
                slope, inter = slope[index], inter[index]  # type: ignore[index]
            values = stored.astype(np.float32) * slope + inter
        else:  # read through the proxy: already scaled
            values = stored.astype(np.float32)
        low, high = window or volume.window
        shown = np.nan_to_num((values - low) / (high - low), nan=0.0, posinf=1.0, neginf=0.0)
        shown = shown.clip(0.0, 1.0)
        if volume.inverted:
            shown = 1.0 - shown
        return Image.fromarray(np.ascontiguousarray(shown, np.float32), "F")


#: The volumes this process has opened.
CACHE = VolumeCache()


def read_plane(
    path: str | os.PathLike,
    index: int | None = None,
    window: tuple[float, float] | None = None,
) -> Image.Image:
    """Slice ``index`` (by default the middle one) of the volume at ``path``, as
    :meth:`VolumeCache.plane` gives it (through ``window`` where given), through this
    process's cache."""
    if index is None:
        index = volume_layout(path).planes // 2
    return CACHE.plane(Path(path), index, window)
