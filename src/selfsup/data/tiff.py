"""TIFF files of science (microscopy, remote sensing) as images, through tifffile.

A microscope or a satellite writes TIFFs a photo library never does: 12- and 16-bit samples,
float32 reflectances, five fluorescence channels as five pages, thirteen spectral bands as
thirteen samples per pixel, z-stacks, OME and ImageJ hyperstacks, tiled pyramids. PIL opens
few of these and reads most of the rest wrong without a word (the first of five channels as a
gray image). Every TIFF is read here instead, by what its file says:

- **Channels** are the file's samples per pixel (``S``: RGB, or 13 bands) or its channel
  axis (``C`` of an OME or ImageJ file); pages without such metadata (axis ``Q``, five pages
  written one after another) are channels too. An alpha sample of an RGB image is dropped.
- **Stacks** (a depth ``Z``, a time ``T`` or any other axis of an OME or ImageJ file) give
  their middle plane, as a DICOM cine loop gives its middle frame; only that plane's pages
  are read.
- **Values** go to [0, 1]: unsigned integers by their bit depth (``BitsPerSample``: 12-bit
  data stored as 12 bits by 4095, 16-bit by 65535; a camera's 12-bit values in 16-bit
  samples by 4095 when the folder's reader says so, see
  :func:`selfsup.data.image_folder.significant_bits`), floats in [0, 1] as they are, signed
  integers and other floats from their own minimum to maximum. ``MinIsWhite`` images are
  inverted. A GeoTIFF's pixels without data (its ``GDAL_NODATA`` value, ``-9999`` or
  ``nan``: the edges of a satellite tile, the sea of an elevation model) are 0 and left out
  of the range; NaN in a file that does not declare it stays an unreadable file.
- **Size**: of a pyramid (levels, sub-IFDs), the smallest level still at least the size asked
  for is read. An image of more than twice PIL's decompression-bomb limit of samples is
  refused, as PIL refuses such a photo.
- **Regions**: a square region of the image (a tile of a satellite scene or a slide, see
  ``--tile``) is read from the strips or tiles of the file it lies in, and nothing else: a
  256-pixel tile of a 10980x10980 scene reads a few of its 512-pixel tiles, not its 480
  million samples.

Compressions are decoded by ``imagecodecs`` (LZW, Deflate and Zstandard of GDAL's
GeoTIFFs, JPEG tiles of a slide scanner, JPEG 2000); a compression it lacks and palette,
YCbCr (other than JPEG's) or CMYK images are left to PIL (:class:`TiffForPillow`), which
reads those as gray or RGB.

Example:
    >>> import io, tifffile
    >>> stream = io.BytesIO()
    >>> tifffile.imwrite(stream, np.full((5, 40, 60), 4095, np.uint16))  # five 12-bit channels
    >>> _ = stream.seek(0)
    >>> tiff_header(stream)
    (60, 40, 5)
    >>> pixels = read_tiff(stream, 20)
    >>> pixels.shape, pixels.dtype, round(float(pixels.max()) * 65535)
    ((20, 20, 5), dtype('float32'), 4095)
    >>> read_tiff(stream, 8, region=(10, 20, 16)).shape  # 16 pixels from row 10, column 20
    (8, 8, 5)
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image

#: File suffixes of TIFF files, compared case-insensitively: Aperio's slides (``.svs``) are
#: TIFFs of a pyramid, a thumbnail, a label and a macro photo (their first series is read).
TIFF_EXTENSIONS = (".tif", ".tiff", ".svs")
# TIFF's photometric interpretations read here; the others go to PIL.
_MIN_IS_WHITE, _MIN_IS_BLACK, _RGB, _YCBCR = 0, 1, 2, 6
_JPEG = 7  # a compression whose decoder gives RGB of YCbCr (a slide scanner's tiles)
_ALPHA = (1, 2)  # ExtraSamples: associated and unassociated alpha
# Axes of a tifffile series holding channels: samples per pixel, channels, and pages without
# metadata (tifffile's "Q"). Y and X are the image; every other axis is a stack.
_CHANNEL_AXES = "SCQ"
#: The side of the centre square whose values give a TIFF's significant bits: a 10980-pixel
#: satellite scene is read there only (32 MB of four 16-bit bands, not 964 MB).
MAXIMUM_SIDE = 2048
#: The pixels a tile spans at least on the pyramid level that tells whether it holds data.
OVERVIEW_PIXELS = 4
#: A slide's tissue on its overview: pixels whose saturation ((max - min) / max of R, G and
#: B) is at least this (stained tissue: 0.2 to 0.6; bright glass, 0.01 to 0.04) and which are
#: not near black (a scanner's border).
TISSUE_SATURATION = 0.07
TISSUE_BRIGHTNESS = 40
#: The share of a slide's tile that must be tissue on the overview for the tile to be kept.
TISSUE_SHARE = 0.1
#: A square region of an image in pixels of its full size: its top row, its left column and
#: its side (a tile, see :class:`selfsup.data.image_folder.ImageFolderSource`).
Region = tuple[int, int, int]
# A region of a page: its top row, left column, height and width at the level read.
_Window = tuple[int, int, int, int]


class TiffForPillow(Exception):  # noqa: N818 (not an error: a hand-over)
    """A TIFF this module leaves to PIL: a compression without its codec, or a palette,
    YCbCr or CMYK image."""


def is_tiff(file: str | os.PathLike | BinaryIO) -> bool:
    """Whether ``file`` is a TIFF: a path by its suffix, a stream by its first bytes (left
    where it was).

    Example:
        >>> import io
        >>> is_tiff("scan.TIF"), is_tiff(io.BytesIO(b"II*\\x00" + bytes(8))), is_tiff("a.png")
        (True, True, False)
    """
    if isinstance(file, (str, os.PathLike)):
        return os.fspath(file).lower().endswith(TIFF_EXTENSIONS)
    start = file.tell()
    try:
        head = file.read(4)
    finally:
        file.seek(start)
    # Little- and big-endian classic TIFF (42) and BigTIFF (43).
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def tiff_header(file: str | os.PathLike | BinaryIO) -> tuple[int, int, int]:
    """The width, height and number of channels of the TIFF in ``file``, from its tags.

    Raises:
        TiffForPillow: a TIFF left to PIL.
        ValueError: not a TIFF tifffile can parse.
    """
    with _opened(file) as tiff:
        series = tiff.series[0]
        _check_photometric(series.keyframe)
        layout = _layout(series)
        return layout["width"], layout["height"], layout["channels"]


def read_tiff(
    file: str | os.PathLike | BinaryIO,
    size: int,
    bits: int | None = None,
    region: Region | None = None,
) -> np.ndarray:
    """The TIFF in ``file`` as a float32 (size, size, channels) array in [0, 1]: its centre
    square, or ``region`` of it, resized to ``size`` (bilinear, antialiased as PIL resizes).

    Args:
        file: a path or a binary stream.
        size: the side of the square read.
        bits: the significant bits of unsigned samples stored in more (12-bit values in a
            16-bit file, see :func:`selfsup.data.image_folder.significant_bits`): they are
            divided by ``2**bits - 1`` instead of their ``BitsPerSample``'s, larger ones
            clipped at 1.
        region: a square of the image at full size (top, left, side) read instead of its
            centre square; only the file's strips or tiles under it are read.

    Raises:
        TiffForPillow: a TIFF left to PIL.
        ValueError: more samples than the decompression-bomb limit, NaN or infinite values,
            or a file tifffile cannot parse or decode.
    """
    pixels, keyframe = _read_plane(file, size, region)
    depth = keyframe.bitspersample if bits is None else min(keyframe.bitspersample, bits)
    square = pixels if region is not None else _centre_square(pixels)
    pixels = _to_unit(square, depth, _nodata(keyframe))
    if keyframe.photometric == _MIN_IS_WHITE:
        pixels = 1.0 - pixels
    return _resize_square(pixels, size)


def tiff_stored_maximum(file: str | os.PathLike | BinaryIO, size: int = 256) -> int | None:
    """The largest value a TIFF of unsigned samples wider than 8 bits stores (read at a
    pyramid's level of at least ``size``, where it has levels; of an image of more than
    ``MAXIMUM_SIDE`` squared pixels, in its centre square of that side); None for 8-bit,
    signed and float TIFFs.

    Raises:
        TiffForPillow: a TIFF left to PIL.
        ValueError: a file tifffile cannot parse or decode.

    Example:
        >>> import io, tifffile
        >>> stream = io.BytesIO()
        >>> tifffile.imwrite(stream, np.array([[7, 4000]], np.uint16))
        >>> _ = stream.seek(0)
        >>> tiff_stored_maximum(stream)
        4000
    """
    with _opened(file) as tiff:
        height, width = _yx(_level(tiff.series[0], size))
    region = None
    if height * width > MAXIMUM_SIDE**2:  # a satellite scene without a pyramid: its centre
        side = min(height, width, MAXIMUM_SIDE)
        region = ((height - side) // 2, (width - side) // 2, side)
    pixels, keyframe = _read_plane(file, size if region is None else side, region)
    if pixels.dtype.kind != "u" or pixels.dtype.itemsize == 1 or keyframe.bitspersample <= 8:
        return None
    return int(pixels.max()) if pixels.size else None


@dataclass
class DataOverview:
    """Where an image holds data, seen on a small level of its pyramid: ``mask`` (Y, X), its
    ``scale`` (rows, columns) against the full image, the ``share`` of a tile's area that
    must be data for the tile to be kept (0: any of it), and ``absent``, what the tiles left
    out show, for people."""

    mask: np.ndarray
    scale: tuple[float, float]
    share: float
    absent: str

    def holds(self, corner: tuple[int, int], tile: int) -> bool:
        """Whether the tile at ``corner`` (top, left) of ``tile`` pixels holds data.

        Example:
            >>> mask = np.zeros((8, 8), bool)
            >>> mask[6, 6] = True
            >>> overview = DataOverview(mask, (0.25, 0.25), 0.0, "")  # a quarter's side
            >>> overview.holds((0, 0), 16), overview.holds((16, 16), 16)
            (False, True)
            >>> DataOverview(mask, (0.25, 0.25), 0.5, "").holds((16, 16), 16)  # 1 of 16
            False
        """
        scale_y, scale_x = self.scale
        top, left = corner
        rows = slice(
            int(top * scale_y), max(int(top * scale_y) + 1, math.ceil((top + tile) * scale_y))
        )
        cols = slice(
            int(left * scale_x), max(int(left * scale_x) + 1, math.ceil((left + tile) * scale_x))
        )
        part = self.mask[rows, cols]
        return bool(part.any()) if self.share <= 0 else float(part.mean()) >= self.share


def tiff_data_overview(file: str | os.PathLike | BinaryIO, tile: int) -> DataOverview | None:
    """Where a TIFF with a pyramid holds data, seen at its smallest level on which a tile
    of ``tile`` pixels still spans ``OVERVIEW_PIXELS`` pixels: of a GeoTIFF with a no-data
    value, where any channel is not the file's ``GDAL_NODATA`` value; of a slide (Aperio's
    ``.svs``, 8-bit RGB), its tissue (:func:`tissue_mask`), a tile kept where at least
    ``TISSUE_SHARE`` of it is. None for other TIFFs and one without a level that small
    (reading it whole to know would cost what tiles save).

    Example:
        >>> import io, tifffile
        >>> scene = np.ones((512, 512), np.uint16)
        >>> scene[:256] = 0  # the top half has no data
        >>> stream = io.BytesIO()
        >>> with tifffile.TiffWriter(stream) as writer:  # levels of 1/2 and 1/4, as a COG's
        ...     nodata = [(42113, "s", 0, "0", False)]
        ...     writer.write(scene, tile=(64, 64), subifds=2, extratags=nodata)
        ...     for step in (2, 4):
        ...         level = scene[::step, ::step]
        ...         writer.write(level, tile=(32, 32), subfiletype=1, extratags=nodata)
        >>> _ = stream.seek(0)
        >>> overview = tiff_data_overview(stream, 128)
        >>> overview.mask.shape, overview.scale, bool(overview.mask[:64].any())
        ((128, 128), (0.25, 0.25), False)
    """
    with _opened(file) as tiff:
        series = tiff.series[0]
        nodata = _nodata(series.keyframe)
        slide = bool(tiff.is_svs) and series.keyframe.photometric in (_RGB, _YCBCR)
        if (nodata is None and not slide) or len(series.levels) < 2:
            return None
        full = _yx(series)
        level = _level(series, math.ceil(OVERVIEW_PIXELS * min(full) / tile))
        if level is series:
            return None
        layout = _layout(level)
        if layout["height"] * layout["width"] * layout["channels"] > 2 * Image.MAX_IMAGE_PIXELS:
            return None
        pixels = _plane(level, layout)
        height, width = _yx(level)
        scale = (height / full[0], width / full[1])
        if slide:
            if layout["channels"] != 3 or pixels.dtype != np.uint8:
                return None
            return DataOverview(tissue_mask(pixels), scale, TISSUE_SHARE, "of glass (no tissue)")
        empty = np.isnan(pixels) if np.isnan(nodata) else pixels == nodata  # type: ignore[arg-type]
        return DataOverview(~empty.all(axis=0), scale, 0.0, "without data (GDAL_NODATA)")


def tissue_mask(pixels: np.ndarray) -> np.ndarray:
    """Where a slide's (3, Y, X) uint8 RGB pixels show stained tissue: saturated
    (``TISSUE_SATURATION``) and not near black (``TISSUE_BRIGHTNESS``), as a slide's glass,
    bright and gray, is not.

    Example:
        >>> glass, tissue = [242, 240, 244], [220, 150, 190]  # H&E's pink
        >>> tissue_mask(np.array([glass, tissue, [5, 0, 9]], np.uint8).T[:, None]).tolist()
        [[False, True, False]]
    """
    high = pixels.max(axis=0).astype(np.float32)
    low = pixels.min(axis=0).astype(np.float32)
    saturation = (high - low) / np.maximum(high, 1.0)
    return (saturation >= TISSUE_SATURATION) & (high >= TISSUE_BRIGHTNESS)


def _read_plane(
    file: str | os.PathLike | BinaryIO, size: int, region: Region | None = None
) -> tuple[np.ndarray, Any]:
    """The (channels, Y, X) samples of the plane :func:`read_tiff` reads (of the pyramid
    level for ``size``; of ``region`` only where given), as stored, and the keyframe
    describing them."""
    with _opened(file) as tiff:
        series = tiff.series[0]
        _check_photometric(series.keyframe)
        full = _yx(series)
        if region is not None:  # the level where the region is still at least size
            size = math.ceil(size * min(full) / max(1, region[2]))
        series = _level(series, size)
        layout = _layout(series)
        window = None if region is None else _window(region, full, _yx(series))
        height, width = (layout["height"], layout["width"]) if window is None else window[2:]
        samples = height * width * layout["channels"]
        if samples > 2 * Image.MAX_IMAGE_PIXELS:
            raise ValueError(
                f"{height}x{width} pixels of {layout['channels']} "
                f"channels is above the decompression-bomb limit of "
                f"{2 * Image.MAX_IMAGE_PIXELS:,} samples"
            )
        try:
            pixels = _plane(series, layout, window)
        except ValueError as err:
            if "imagecodecs" in str(err):
                raise TiffForPillow(str(err)) from err
            raise
        return pixels, series.keyframe


def _window(region: Region, full: tuple[int, int], level: tuple[int, int]) -> _Window:
    """A region of the full image (top, left, side) in pixels of a level of its pyramid
    (top, left, height, width), kept inside the level.

    Example:
        >>> _window((100, 200, 50), (1000, 2000), (500, 1000))
        (50, 100, 25, 25)
    """
    top, left, side = region
    scale_y, scale_x = level[0] / full[0], level[1] / full[1]
    row, column = min(int(top * scale_y), level[0] - 1), min(int(left * scale_x), level[1] - 1)
    height = max(1, min(round(side * scale_y), level[0] - row))
    width = max(1, min(round(side * scale_x), level[1] - column))
    return row, column, height, width


@contextlib.contextmanager
def _opened(file: str | os.PathLike | BinaryIO) -> Iterator[Any]:
    """tifffile's view of ``file``; a stream is left where it was (tifffile reads a stream
    from where it stands, and moves it)."""
    import tifffile

    start = None if isinstance(file, (str, os.PathLike)) else file.tell()
    # tifffile logs what it finds wrong in a file (a page offset past its end) and then
    # raises; the reason reaches the user once, with the file's name, not as its log lines.
    log = logging.getLogger("tifffile")
    was_disabled, log.disabled = log.disabled, True
    try:
        with tifffile.TiffFile(file) as tiff:
            if not tiff.series:  # tifffile found no page: its series list is empty
                raise ValueError(
                    "the TIFF holds no image: its first page is missing (a file cut short?)"
                )
            yield tiff
    finally:
        log.disabled = was_disabled
        if start is not None:
            file.seek(start)  # type: ignore[union-attr]


def _check_photometric(keyframe: Any) -> None:
    if keyframe.photometric == _YCBCR and keyframe.compression == _JPEG:
        return  # JPEG's decoder gives RGB
    if keyframe.photometric not in (_MIN_IS_WHITE, _MIN_IS_BLACK, _RGB):
        raise TiffForPillow(f"photometric interpretation {keyframe.photometric}")


def _level(series: Any, size: int) -> Any:
    """Of a pyramid's levels (largest first), the smallest whose shorter side is >= size."""
    chosen = series
    for level in series.levels[1:]:
        height, width = _yx(level)
        if min(height, width) < size:
            break
        chosen = level
    return chosen


def _yx(series: Any) -> tuple[int, int]:
    sizes = dict(zip(series.axes, series.shape, strict=True))
    return sizes["Y"], sizes["X"]


def _layout(series: Any) -> dict[str, Any]:
    """Where a series keeps its image, channels and stack axes, and which of its entries
    are read: every channel, the middle of every stack axis.

    Raises:
        ValueError: a series without Y and X axes, or holding channels on two axes.
    """
    axes, shape = series.axes, series.shape
    if "Y" not in axes or "X" not in axes:
        raise ValueError(f"no image in the file's axes {axes} of shape {shape}")
    channel_axes = [a for a, n in zip(axes, shape, strict=True) if a in _CHANNEL_AXES and n > 1]
    if len(channel_axes) > 1:
        raise ValueError(
            f"channels on two axes ({', '.join(channel_axes)} of {axes}, shape {shape}); "
            "save one channel axis per file"
        )
    sizes = dict(zip(axes, shape, strict=True))
    channels = sizes[channel_axes[0]] if channel_axes else 1
    alpha = _has_alpha(series.keyframe) and channels in (2, 4)
    return {
        "height": sizes["Y"],
        "width": sizes["X"],
        "channel_axis": channel_axes[0] if channel_axes else None,
        "channels": channels - alpha,
        "alpha": alpha,
    }


def _has_alpha(keyframe: Any) -> bool:
    return any(int(extra) in _ALPHA for extra in keyframe.extrasamples)


def _plane(series: Any, layout: dict[str, Any], window: _Window | None = None) -> np.ndarray:
    """The (channels, Y, X) array the layout names (of ``window`` only, where given). Of a
    series stored as one page per entry of its leading axes (five channels, a z-stack), only
    the pages of every channel at the middle of every other axis are read."""
    axes, shape, page_axes = series.axes, series.shape, series.keyframe.axes
    lead = len(axes) - len(page_axes)

    def page(index: int) -> np.ndarray:
        read = series.pages[index]
        if window is not None:
            return _page_window(read, window)
        _check_length(read)
        return read.asarray()

    if lead > 0 and axes.endswith(page_axes):
        ranges = [
            range(n) if a == layout["channel_axis"] else [n // 2]
            for a, n in zip(axes[:lead], shape[:lead], strict=True)
        ]
        # Pages follow the leading axes in C order (tifffile's series, OME's and ImageJ's).
        flat = [int(np.ravel_multi_index(k, shape[:lead])) for k in itertools.product(*ranges)]
        array = np.stack([page(i) for i in flat])
        if layout["channel_axis"] in axes[:lead]:
            array_axes = layout["channel_axis"] + page_axes
        else:
            array, array_axes = array[0], page_axes
    elif window is not None and lead == 0 and len(series.pages) == 1:
        array, array_axes = page(0), page_axes
    else:
        for read in series.pages:
            _check_length(read)
        array, array_axes = series.asarray(), axes
        if window is not None:
            array = _cropped(array, array_axes, window)
    for axis in [a for a in array_axes if a not in "YX" and a != layout["channel_axis"]]:
        where = array_axes.index(axis)  # a stack axis inside the pages: its middle
        array = np.take(array, array.shape[where] // 2, axis=where)
        array_axes = array_axes.replace(axis, "")
    if layout["channel_axis"] is None:
        array, array_axes = array[..., None], array_axes + "C"
    channel = next(i for i, a in enumerate(array_axes) if a not in "YX")
    # Channels first: pages stack that way, and the resize runs on contiguous planes.
    array = np.transpose(array, (channel, array_axes.index("Y"), array_axes.index("X")))
    return array[: layout["channels"]] if layout["alpha"] else array


def _check_length(page: Any) -> None:
    """Raise where the file ends before a page's data does (a copy that stopped: tifffile
    decodes what is there, zeros for the rest where it is not compressed, or a codec's
    error that does not say why).

    Raises:
        ValueError: the file is cut short.
    """
    if page is None or not len(page.dataoffsets):
        return
    end = max(o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=True))
    size = page.parent.filehandle.size
    if end > size:
        raise ValueError(
            f"the file is cut short: it ends at {size:,} bytes and its image's data at {end:,}"
        )


def _page_window(page: Any, window: _Window) -> np.ndarray:
    """``window`` of one page, as ``page.asarray()`` would give it cropped: only the strips
    or tiles under the window are read and decoded. Pages of a depth (SGI volumes) are read
    whole and cropped."""
    key = page.keyframe
    top, left, height, width = window
    separate, _, full_height, full_width, contig = key.shaped
    if key.imagedepth > 1 or page.axes not in ("YX", "YXS", "SYX"):
        return _cropped(page.asarray(), page.axes, window)
    if key.is_tiled:
        across = math.ceil(full_width / key.tilewidth)
        down = math.ceil(full_height / key.tilelength)
        rows = range(top // key.tilelength, (top + height - 1) // key.tilelength + 1)
        columns = range(left // key.tilewidth, (left + width - 1) // key.tilewidth + 1)
        per_plane = across * down
        wanted = [r * across + c for r in rows for c in columns]
    else:
        strip = min(key.rowsperstrip or full_height, full_height)
        per_plane = math.ceil(full_height / strip)
        wanted = list(range(top // strip, (top + height - 1) // strip + 1))
    out = np.full((separate, height, width, contig), key.nodata, dtype=key.dtype)
    handle, offsets, counts = page.parent.filehandle, page.dataoffsets, page.databytecounts
    decode = key.decode  # made on first use, which may read the file: before seeking
    for index in (p * per_plane + w for p in range(separate) for w in wanted):
        if not offsets[index] or not counts[index]:  # a segment never written: no data
            continue
        handle.seek(offsets[index])
        data = handle.read(counts[index])
        if len(data) < counts[index]:  # a copy that stopped: read as zeros without a word
            raise ValueError(
                f"the file is cut short: it ends at {handle.size:,} bytes, and the image's "
                f"data under this region runs to {offsets[index] + counts[index]:,}"
            )
        segment, (plane, _, row, column, _), _ = decode(data, index, jpegtables=key.jpegtables)
        segment = segment[0]  # (rows, columns, samples) of its first (only) depth
        rows_in = slice(max(row, top), min(row + segment.shape[0], top + height))
        cols_in = slice(max(column, left), min(column + segment.shape[1], left + width))
        out[
            plane,
            rows_in.start - top : rows_in.stop - top,
            cols_in.start - left : cols_in.stop - left,
        ] = segment[
            rows_in.start - row : rows_in.stop - row, cols_in.start - column : cols_in.stop - column
        ]
    if page.axes == "SYX":
        return out[..., 0]
    return out[0] if page.axes == "YXS" else out[0, ..., 0]


def _cropped(array: np.ndarray, axes: str, window: _Window) -> np.ndarray:
    """``window`` of an array whose axes ``axes`` name Y and X (a view).

    Example:
        >>> _cropped(np.zeros((3, 10, 20)), "SYX", (2, 4, 5, 6)).shape
        (3, 5, 6)
    """
    top, left, height, width = window
    index = [slice(None)] * array.ndim
    index[axes.index("Y")] = slice(top, top + height)
    index[axes.index("X")] = slice(left, left + width)
    return array[tuple(index)]


def _to_unit(pixels: np.ndarray, bits: int, nodata: float | None = None) -> np.ndarray:
    """Values to [0, 1]: unsigned integers by their bit depth, others by the range of their
    valid values; pixels holding ``nodata`` (a GeoTIFF's ``GDAL_NODATA``, NaN included)
    become 0 and take no part in the range.

    Example:
        >>> _to_unit(np.array([-9999.0, 500.0, 600.0]), 32, nodata=-9999.0).tolist()
        [0.0, 0.0, 1.0]
    """
    from selfsup.data.image_folder import value_range

    missing = None
    if nodata is not None:
        missing = np.isnan(pixels) if np.isnan(nodata) else pixels == nodata
    if pixels.dtype == np.bool_:
        unit = pixels.astype(np.float32)
    elif pixels.dtype.kind == "u":
        bits = min(int(bits), pixels.dtype.itemsize * 8)
        unit = pixels.astype(np.float32) / float(2**bits - 1)
        np.minimum(unit, 1.0, out=unit)  # values above the significant bits said
    else:
        unit = pixels.astype(np.float32)
        valid = unit if missing is None else unit[~missing]
        low, span = value_range(valid, "F") if valid.size else (0.0, 1.0)
        unit = ((np.where(missing, low, unit) if missing is not None else unit) - low) / span
        unit = unit.clip(0.0, 1.0)
    if missing is not None:
        unit[missing] = 0.0
    return unit


def _nodata(keyframe: Any) -> float | None:
    """A GeoTIFF's value for pixels without data (``GDAL_NODATA``: ``-9999``, ``nan``);
    None where the file has no such tag."""
    tag = keyframe.tags.get("GDAL_NODATA")
    if tag is None:
        return None
    try:
        return float(str(tag.value).strip())
    except ValueError:
        return None


def _centre_square(pixels: np.ndarray) -> np.ndarray:
    """The centre square of a (C, H, W) array (a view)."""
    height, width = pixels.shape[1:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return pixels[:, top : top + side, left : left + side]


def _resize_square(square: np.ndarray, size: int) -> np.ndarray:
    """A float (C, side, side) array resized to a (size, size, C) one (bilinear, antialiased
    as PIL resizes), on contiguous planes: channels-last strides make the resize several
    times slower.

    Example:
        >>> _resize_square(np.ones((2, 64, 64), np.float32), 8).shape
        (8, 8, 2)
    """
    tensor = torch.from_numpy(np.ascontiguousarray(square, dtype=np.float32))[None]
    if square.shape[1] != size:
        tensor = torch.nn.functional.interpolate(
            tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        ).clamp_(0.0, 1.0)
    return tensor[0].permute(1, 2, 0).contiguous().numpy()
