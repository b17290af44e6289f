"""DICOM files (CT, MR, X-ray, ultrasound, mammography) as images, through pydicom.

A scan's pixels are not a photo's: a CT slice holds 12-bit values that become Hounsfield units
through the file's rescale slope and intercept, and a radiologist looks at them through a
window (centre and width: -600 and 1500 for lungs). An image read here goes through the
file's modality transform (``RescaleSlope``/``RescaleIntercept``), then its first window
(``WindowCenter``/``WindowWidth``) when it has one, else the 0.5th to 99.5th percentile of
its own values (or ``--scan-window``), to [0, 1]; an enhanced CT or MR keeps both in its
functional groups (the frame's own, else the shared ones), where they are read from;
``MONOCHROME1`` images (X-rays stored with white as 0) are inverted so that bone is bright in
every file. Colour images (RGB, YBR, palette colour) come as 8-bit
RGB. Of a multi-frame file (an enhanced CT volume, a cine loop) the middle frame is read
here; an image folder reads each frame of a gray one as a slice
(:func:`read_dicom_frames`, through :mod:`selfsup.data.volumes`).
Compressed transfer syntaxes decode as far as pydicom's installed plugins go (RLE always,
JPEG and JPEG 2000 through Pillow); a file none can decode is unreadable, with pydicom's
reason.

Example:
    >>> from pydicom.data import get_testdata_file
    >>> path = get_testdata_file("CT_small.dcm")
    >>> is_dicom(path), dicom_header(path)
    (True, (128, 128, True))
    >>> image = read_dicom(path)
    >>> image.mode, image.size, 0.0 <= min(image.getextrema()) <= max(image.getextrema()) <= 1.0
    ('F', (128, 128), True)
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from selfsup.data.folders import marker_suffix

#: File suffixes of DICOM files, compared case-insensitively (files with the "DICM" marker
#: are read as DICOM whatever their suffix).
DICOM_EXTENSIONS = (".dcm", ".dicom")
#: The percentiles that map a scan without a window of its own to [0, 1].
PERCENTILES = (0.5, 99.5)
_MARKER_AT = 128  # the 128-byte preamble, then "DICM"
#: Files without a suffix that hold the DICOM marker are DICOM too (a PACS export's IM000001).
DICOM_MARKER = marker_suffix(_MARKER_AT, b"DICM")


def is_dicom(file: str | os.PathLike | BinaryIO) -> bool:
    """Whether ``file`` (a path or a binary stream, left where it was) is DICOM: its name ends
    with a DICOM suffix, or it has no other suffix (``IM000001``, a UID) and its bytes
    128-131 are ``DICM``; a stream by its bytes. A file named as another format
    (``a.jpg``) is not opened here: reading a folder of photos costs no extra open.

    Example:
        >>> import io
        >>> is_dicom(io.BytesIO(b"\\x89PNG" + bytes(200))), is_dicom("photo.JPG")
        (False, False)
    """
    if isinstance(file, (str, os.PathLike)):
        name = os.path.basename(file).lower()
        if name.endswith(DICOM_EXTENSIONS):
            return True
        if "." in name and not name.rsplit(".", 1)[1].isdigit():
            return False
        with open(file, "rb") as stream:
            return _marked(stream)
    return _marked(file)


def _marked(stream: BinaryIO) -> bool:
    start = stream.tell()
    try:
        stream.seek(_MARKER_AT)
        return stream.read(4) == b"DICM"
    finally:
        stream.seek(start)


def _read(file: str | os.PathLike | BinaryIO, header_only: bool = False) -> Any:
    """The dataset in ``file``; a file without the DICOM preamble is still tried (old
    ACR-NEMA exports), and one that is not DICOM raises ValueError with pydicom's reason.
    pydicom's warnings on odd files (several lines each) are left out: a file that cannot
    be read is skipped with one reason."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_quietly(file, header_only)


def _read_quietly(file: str | os.PathLike | BinaryIO, header_only: bool) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(file, stop_before_pixels=header_only)
    except InvalidDicomError:
        pass  # no "DICM" marker: an old export without one, or not DICOM at all
    except Exception as err:  # pydicom raises many kinds on damaged files
        raise ValueError(f"not a readable DICOM file ({_one_line(err)})") from None
    if not isinstance(file, (str, os.PathLike)):
        file.seek(0)
    try:
        data = pydicom.dcmread(file, stop_before_pixels=header_only, force=True)
    except Exception:
        data = None
    if data is None or "Rows" not in data:
        raise ValueError("not a DICOM file (no 'DICM' marker at byte 128, and no image header)")
    return data


def dicom_header(file: str | os.PathLike | BinaryIO) -> tuple[int, int, bool]:
    """The width and height of the image in ``file`` and whether it is gray, from its header.

    Raises:
        ValueError: not DICOM, or a DICOM object without an image (a report, a plan).
    """
    data = _read(file, header_only=True)
    rows, columns = data.get("Rows"), data.get("Columns")
    if not rows or not columns:
        raise ValueError(f"a DICOM {_what(data)} without an image")
    gray = int(data.get("SamplesPerPixel", 1) or 1) == 1 and not _palette(data)
    return int(columns), int(rows), gray


#: The SOP class of a whole-slide microscopy image (a pathology slide as a DICOM file per
#: pyramid level, its frames the level's tiles).
WHOLE_SLIDE = "1.2.840.10008.5.1.4.1.1.77.1.6"


def dicom_frames(file: str | os.PathLike | BinaryIO) -> int:
    """The frames of a gray multi-frame DICOM file (an enhanced CT or MR volume, a gray cine
    loop), from its header; 1 for a single-frame file, for colour ones (of which the middle
    frame is read) and for a whole-slide image (whose frames are tiles, refused on read).

    Raises:
        ValueError: not DICOM.
    """
    return frame_count(_read(file, header_only=True))


def frame_count(data: Any) -> int:
    """:func:`dicom_frames` of a dataset already read."""
    if int(data.get("SamplesPerPixel", 1) or 1) != 1 or _palette(data):
        return 1
    if str(data.get("SOPClassUID", "")) == WHOLE_SLIDE:  # tiles, not planes: refused on read
        return 1
    return max(1, int(data.get("NumberOfFrames", 1) or 1))


@dataclass
class DicomFrames:
    """Every frame of a gray multi-frame DICOM file, as :func:`read_dicom_frames` gives them.

    Attributes:
        stored: the stored values, (frames, rows, columns).
        slope, intercept: each frame's modality rescale, to the file's units (Hounsfield
            units of a CT): top-level, else in its functional groups.
        window: the file's own window (its middle frame's), None where it has none.
        inverted: ``MONOCHROME1`` (white stored as 0): shown inverted.
    """

    stored: np.ndarray
    slope: np.ndarray
    intercept: np.ndarray
    window: tuple[float, float] | None
    inverted: bool


def read_dicom_frames(file: str | os.PathLike) -> DicomFrames:
    """All frames of the gray multi-frame DICOM file ``file``, decoded at once.

    Raises:
        ValueError: not DICOM, no image, colour, or pixel data that cannot be decoded.
    """
    from pydicom.pixels import pixel_array

    data = _read(file)
    if not any(tag in data for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ValueError(f"a DICOM {_what(data)} without an image")
    if int(data.get("SamplesPerPixel", 1) or 1) != 1 or _palette(data):
        raise ValueError("a colour DICOM file: its frames are not read one by one")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stored = pixel_array(data)
    except Exception as err:  # a missing decoder plugin, damaged pixel data
        raise ValueError(f"cannot decode its pixel data ({_one_line(err)})") from None
    stored = stored.reshape(-1, *stored.shape[-2:])
    frames = len(stored)
    slope, intercept = np.ones(frames), np.zeros(frames)
    if "RescaleSlope" in data or "RescaleIntercept" in data:
        slope[:] = float(data.get("RescaleSlope", 1) or 1)
        intercept[:] = float(data.get("RescaleIntercept", 0) or 0)
    elif "ModalityLUTSequence" not in data:
        for k in range(frames):
            slope[k], intercept[k] = _group_rescale(data, k)
    inverted = str(data.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"
    return DicomFrames(stored, slope, intercept, _own_window(data, frames // 2), inverted)


def dicom_patient(file: str | os.PathLike | BinaryIO) -> str | None:
    """The ``PatientID`` of the DICOM file ``file`` (from its header), None where it has none.

    Raises:
        ValueError: not DICOM.
    """
    value = _read(file, header_only=True).get("PatientID")
    return (str(value).strip() or None) if value is not None else None


def read_dicom(
    file: str | os.PathLike | BinaryIO, window: tuple[float, float] | None = None
) -> Image.Image:
    """The image in ``file``: gray as a PIL image of mode "F" in [0, 1] (modality transform,
    then ``window`` (low, high: ``--scan-window``) where given, else the file's window or
    its percentiles; ``MONOCHROME1`` inverted), colour as "RGB".

    Raises:
        ValueError: not DICOM, no image in it, a whole-slide image (tiles of a slide in its
            frames), pixel data that cannot be decoded (the reason says which plugin is
            missing), or values that are not finite.
    """
    from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

    data = _read(file)
    if not any(tag in data for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ValueError(f"a DICOM {_what(data)} without an image")
    frames = int(data.get("NumberOfFrames", 1) or 1)
    if str(data.get("SOPClassUID", "")) == WHOLE_SLIDE:  # its frames are tiles, not one image
        width, height = data.get("TotalPixelMatrixColumns"), data.get("TotalPixelMatrixRows")
        slide = f" of a {width}x{height} slide" if width and height else ""
        raise ValueError(
            f"a whole-slide microscopy DICOM ({frames:,} tiles{slide}) is not read: save "
            "the slide as a tiled pyramid TIFF (vips tiffsave FILE slide.tif --tile --pyramid "
            "--compression jpeg, with OpenSlide 4) and read it with --tile"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixels = pixel_array(data, index=frames // 2 if frames > 1 else None)
    except Exception as err:  # a missing decoder plugin, damaged pixel data
        raise ValueError(f"cannot decode its pixel data ({_one_line(err)})") from None
    if _palette(data):
        pixels = apply_color_lut(pixels, data)
    if pixels.ndim == 3:  # colour (pydicom gives YBR as RGB)
        return Image.fromarray(_as_uint8(pixels, data), "RGB")
    frame = frames // 2 if frames > 1 else 0
    values = np.asarray(apply_modality_lut(pixels, data), dtype=np.float64)
    if "RescaleSlope" not in data and "ModalityLUTSequence" not in data:
        slope, intercept = _group_rescale(data, frame)
        values = values * slope + intercept
    if not np.isfinite(values).all():
        raise ValueError("the image holds NaN or infinite pixels")
    low, high = window or _window(data, values, frame)
    scaled = np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)
    if str(data.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        scaled = 1.0 - scaled
    return Image.fromarray(scaled, "F")


def _frame_value(data: Any, frame: int, sequence: str, keyword: str) -> Any:
    """A value an enhanced (multi-frame) file keeps in its functional groups: ``keyword`` of
    the first item of ``sequence`` in ``frame``'s own group, else in the shared one; None
    where neither has it.

    Example:
        >>> from pydicom.dataset import Dataset
        >>> transform, shared = Dataset(), Dataset()
        >>> transform.RescaleIntercept = -1024
        >>> shared.PixelValueTransformationSequence = [transform]
        >>> data = Dataset()
        >>> data.SharedFunctionalGroupsSequence = [shared]
        >>> float(_frame_value(data, 3, "PixelValueTransformationSequence", "RescaleIntercept"))
        -1024.0
    """
    for groups, index in (
        ("PerFrameFunctionalGroupsSequence", frame),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        items = data.get(groups)
        if items is None or len(items) <= index:
            continue
        inner = items[index].get(sequence)
        if inner and keyword in inner[0]:
            return inner[0].get(keyword)
    return None


def _group_rescale(data: Any, frame: int) -> tuple[float, float]:
    """The rescale slope and intercept an enhanced CT or MR keeps for ``frame`` in its
    functional groups (1 and 0 where it keeps none)."""
    group = "PixelValueTransformationSequence"
    slope = _frame_value(data, frame, group, "RescaleSlope")
    intercept = _frame_value(data, frame, group, "RescaleIntercept")
    return float(1.0 if slope is None else slope), float(intercept or 0.0)


def _own_window(data: Any, frame: int = 0) -> tuple[float, float] | None:
    """The file's first window (an enhanced file's frame's, in its functional groups) as
    its lowest and highest value shown; None where it has none."""
    centre, width = data.get("WindowCenter"), data.get("WindowWidth")
    if centre is None or width is None:
        centre = _frame_value(data, frame, "FrameVOILUTSequence", "WindowCenter")
        width = _frame_value(data, frame, "FrameVOILUTSequence", "WindowWidth")
    first = [(v[0] if _many(v) else v) for v in (centre, width)]
    if first[0] is not None and first[1] is not None and float(first[1]) > 0:
        c, w = float(first[0]), float(first[1])
        return c - w / 2, c + w / 2
    return None


def _window(data: Any, values: np.ndarray, frame: int = 0) -> tuple[float, float]:
    """The lowest and highest value shown: the file's first window (an enhanced file's
    frame's, in its functional groups), else percentiles."""
    own = _own_window(data, frame)
    if own is not None:
        return own
    low, high = (float(v) for v in np.percentile(values, PERCENTILES))
    return (low, high) if high > low else (low, low + 1.0)


def _as_uint8(pixels: np.ndarray, data: Any) -> np.ndarray:
    """Colour pixels of any bit depth as 8 bits."""
    if pixels.dtype == np.uint8:
        return pixels
    bits = int(data.get("BitsStored", 16) or 16)
    if "RedPaletteColorLookupTableDescriptor" in data:  # palette entries are 16 bits
        bits = 16 if pixels.max() > 255 else 8
    top = float(2**bits - 1)
    return np.clip(pixels.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _palette(data: Any) -> bool:
    return str(data.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR"


def _many(value: Any) -> bool:
    """Whether a DICOM value holds several values (pydicom's MultiValue)."""
    return not isinstance(value, (str, bytes)) and hasattr(value, "__len__")


def _what(data: Any) -> str:
    """What a DICOM object is, for messages: its modality, else "object"."""
    modality = str(data.get("Modality", "") or "").strip()
    return f"{modality} object" if modality else "object"


def _one_line(err: BaseException) -> str:
    """An exception's message on one line (pydicom's decoder errors span several)."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
