"""Images held in a numpy array, and the ``.npy`` / ``.npz`` files that store them.

Example:
    >>> import numpy as np
    >>> src = ArraySource(np.full((10, 28, 28, 3), 255, dtype=np.uint8), labels=["cat"] * 10)
    >>> src.item_shape, src.classes, float(src.read(0).max())
    ((3, 28, 28), ['cat'], 1.0)
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfsup.data.base import (
    Batch,
    EmptySourceError,
    PartialLabels,
    RowIds,
    Source,
    checked_rows,
)

# The first bytes of each array file type (a .npz is a zip archive).
_MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK"}


def encode_labels(
    labels: Sequence | np.ndarray, classes: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Turn labels (ints or strings) into integer codes and class names.

    Without ``classes`` the class names are the sorted distinct label values as text, and the
    codes index them (labels ``[3, 1, 3]`` give codes ``[1, 0, 1]`` and classes ``["1", "3"]``).
    With ``classes``, integer labels are taken as codes into it and string labels are looked up
    by name. Fractional numbers (a machine's states coded ``0.5``, ``1.5``) are classes in
    numeric order, named as written.

    Args:
        labels: one label per item, a 1-D sequence of ints or strings.
        classes: optional class names indexed by code.

    Returns:
        The codes as an int64 array and the class names.

    Raises:
        ValueError: labels that are not 1-D, or that do not match ``classes``.

    Example:
        >>> codes, names = encode_labels(["dog", "cat", "dog"])
        >>> codes.tolist(), names
        ([1, 0, 1], ['cat', 'dog'])
        >>> encode_labels([1.5, 0.5, 10.5])[1]
        ['0.5', '1.5', '10.5']
    """
    values = np.asarray(labels)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {values.shape}")
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise ValueError("labels must be integers, strings or finite numbers")
    if values.dtype.kind == "f" and np.all(values % 1 == 0):
        values = values.astype(np.int64)  # integer labels saved as floats
    if values.dtype.kind not in "iufUSb":
        raise ValueError(f"labels must be integers or strings, got dtype {values.dtype}")
    if values.dtype.kind == "f" and classes is not None:  # a run's classes name them as text
        values = values.astype(str)
    if classes is None:
        uniques, codes = np.unique(values, return_inverse=True)
        return codes.astype(np.int64).reshape(-1), [str(u) for u in uniques]
    names = [str(c) for c in classes]
    if values.dtype.kind in "iub":
        codes = values.astype(np.int64)
        if codes.size and (codes.min() < 0 or codes.max() >= len(names)):
            raise ValueError(
                f"label codes must lie in 0..{len(names) - 1} for {len(names)} classes, "
                f"got {codes.min()}..{codes.max()}"
            )
        return codes, names
    lookup = {name: code for code, name in enumerate(names)}
    unknown = sorted({str(v) for v in values} - lookup.keys())
    if unknown:
        raise ValueError(f"labels {unknown[:5]} are not among the classes {names}")
    return np.array([lookup[str(v)] for v in values], dtype=np.int64), names


def present_labels(
    values: Sequence | np.ndarray,
    column: str,
    classes: Sequence[str] | None = None,
    as_text: bool = True,
) -> tuple[np.ndarray | None, list[str] | None, PartialLabels | None]:
    """The labels of a column in which some cells may be empty (None, NaN, pandas' NA).

    Returns ``(codes, classes, None)`` when every item has a label, ``(None, None, partial)``
    when only some do (see :class:`selfsup.data.base.PartialLabels`), and ``(None, None,
    None)`` when none does (a run's later data, without its labels). With ``as_text`` labels
    are read as text, so ``4`` and ``"4"`` are one class; else numbers stay numbers (classes
    in numeric order) and other values are text. Either way an integer column that pandas
    made float to hold its empty cells (``4.0``) reads as integers.

    Example:
        >>> present_labels(["pos", None, "neg", float("nan")], "y")[2].rows.tolist()
        [0, 2]
        >>> present_labels(["pos", "neg"], "y")[:2]
        (array([1, 0]), ['neg', 'pos'])
        >>> present_labels([10.0, None, 9.0], "y", as_text=False)[2].classes
        ['9', '10']
    """
    import pandas as pd

    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf" and not as_text:
        # A column of numbers (ten million rows' fraud flags): no object per cell.
        missing = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), bool)
        if missing.all():
            return None, None, None
        rows = np.flatnonzero(~missing)
        codes, names = encode_labels(values[rows] if missing.any() else values, classes)
        if len(rows) == len(missing):
            return codes, names, None
        return None, None, PartialLabels(rows, codes, names, column)
    missing = pd.isna(pd.Series(list(values), dtype=object)).to_numpy()
    if missing.all():
        return None, None, None
    rows = np.flatnonzero(~missing)
    kept = [values[i] for i in rows]
    if as_text:
        present = np.array([_label_text(v) for v in kept])
    else:
        present = np.asarray(kept)
        if present.dtype == object or present.dtype.kind == "b":
            present = present.astype(str)
    codes, names = encode_labels(present, classes)
    if len(rows) == len(missing):
        return codes, names, None
    return None, None, PartialLabels(rows, codes, names, column)


def _label_text(value: Any) -> str:
    """A label cell as text: ``4.0`` (an integer column that pandas made float to hold its
    empty cells) reads as ``4``."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def image_layout(shape: tuple[int, ...]) -> str:
    """Decide the layout of an image array from its shape: ``"nhw"``, ``"nhwc"`` or ``"nchw"``.

    The rule: 3 axes are gray images (n, h, w). With 4 axes, the first that applies:

    1. the last axis holds 1 or 3 entries: channels-last (n, h, w, c);
    2. axis 1 holds 1 or 3 entries: channels-first (n, c, h, w);
    3. the last axis holds 4 entries (RGBA): channels-last;
    4. axis 1 holds 4 entries: channels-first.

    So (n, 28, 28, 1) and (n, 32, 32, 3) are channels-last, (n, 3, 32, 32) and (n, 3, 28, 4)
    channels-first, (n, 32, 32, 4) is RGBA channels-last, and when both axes hold 1 or 3, as in
    (n, 3, 32, 3), channels-last wins.

    Raises:
        ValueError: any other number of axes, or no axis that can hold channels.

    Example:
        >>> image_layout((5, 3, 32, 32)), image_layout((5, 32, 32, 3)), image_layout((5, 8, 8))
        ('nchw', 'nhwc', 'nhw')
    """
    if len(shape) == 3:
        return "nhw"
    if len(shape) != 4:
        raise ValueError(
            f"image arrays must have 3 axes (n, h, w) or 4 axes (n, h, w, c) / (n, c, h, w), "
            f"got shape {shape}"
        )
    for counts in ((1, 3), (4,)):
        if shape[-1] in counts:
            return "nhwc"
        if shape[1] in counts:
            return "nchw"
    raise ValueError(
        f"cannot tell the channel axis of shape {shape}: expected 1, 3 or 4 channels "
        f"on the last axis (n, h, w, c) or on axis 1 (n, c, h, w)"
    )


class ArraySource(Source):
    """Images given as one numpy array, with optional labels.

    Layouts (n, h, w), (n, h, w, c) and (n, c, h, w) are accepted; :func:`image_layout` says
    how the channel axis is found. A fourth (alpha) channel is dropped, as image folders drop
    it, so items have 1 or 3 channels.

    Values: ``uint8`` arrays are divided by 255; ``bool`` arrays give 0 and 1; other numeric
    arrays (floats, wider ints) are used as they are when every value lies within [0, 1], and
    otherwise min-max scaled to [0, 1] with the global minimum and maximum of the whole array,
    computed once here (a constant array maps to 0). NaN or infinite values are an error.

    The array is kept as given (uint8 stays uint8, a memory-mapped array stays on disk) and
    converted to float32 one batch at a time, so ``read_batch`` costs one fancy-indexing copy.

    Args:
        array: the images.
        labels: optional labels per image, ints or strings (see :func:`encode_labels`).
        name: a short name for messages and reports.
        classes: optional class names indexed by label code.

    Raises:
        ValueError: a bad shape, dtype or values, or labels of the wrong length.
        EmptySourceError: an array with no images or with empty images.

    Example:
        >>> x = np.arange(2 * 3 * 4 * 4, dtype=np.float64).reshape(2, 3, 4, 4)
        >>> src = ArraySource(x, labels=[0, 1], classes=["a", "b"])
        >>> src.item_shape, src.read(1).max().item(), src.labels.tolist()
        ((3, 4, 4), 1.0, [0, 1])
    """

    def __init__(
        self,
        array: np.ndarray,
        labels: Sequence | np.ndarray | None = None,
        *,
        name: str = "array",
        classes: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(array, np.ndarray):
            array = np.asarray(array)
        if array.dtype.kind not in "biuf":
            raise ValueError(f"image arrays must be numeric, got dtype {array.dtype}")
        self._layout = image_layout(array.shape)
        if self._layout == "nhwc" and array.shape[-1] == 4:
            array = array[..., :3]
        elif self._layout == "nchw" and array.shape[1] == 4:
            array = array[:, :3]
        if array.size == 0:
            raise EmptySourceError(f"{name}: the array holds no image (shape {array.shape})")
        self._array = array
        self.name = name
        self._offset, self._span = _value_range(array)
        n = array.shape[0]
        if labels is None:
            if classes is not None:
                raise ValueError("classes were given without labels")
        else:
            codes, self.classes = encode_labels(labels, classes)
            if len(codes) != n:
                raise ValueError(f"{len(codes)} labels for {n} images")
            self.labels = codes

    @property
    def item_shape(self) -> tuple[int, int, int]:
        """The shape (C, H, W) of every item."""
        shape = self._array.shape
        if self._layout == "nhw":
            return (1, shape[1], shape[2])
        if self._layout == "nhwc":
            return (shape[3], shape[1], shape[2])
        return (shape[1], shape[2], shape[3])

    def __len__(self) -> int:
        return self._array.shape[0]

    @property
    def ids(self) -> Sequence[str]:
        """The row numbers as text."""
        return RowIds(len(self))

    def read(self, index: int) -> torch.Tensor:
        """Image ``index`` as a float32 tensor (C, H, W) in [0, 1]."""
        return self.read_batch([index]).items[0]

    def read_batch(self, indices: Sequence[int]) -> Batch:
        """Images at ``indices`` as one float32 tensor (n, C, H, W); nothing is ever skipped."""
        rows, chunk = self._rows(indices)
        # Converted in numpy, single-threaded: torch's thread pool costs more than it saves on
        # a batch this small, and much more when a training job keeps the other cores busy.
        items = np.empty((len(rows), *self.item_shape), dtype=np.float32)
        np.copyto(items, chunk, casting="unsafe")
        if self._offset != 0.0:
            items -= self._offset
            items /= self._span
            np.clip(items, 0.0, 1.0, out=items)  # rounding may land a hair outside [0, 1]
        elif self._span != 1.0:
            items /= self._span
        return Batch(torch.from_numpy(items), rows.tolist(), [])

    def read_training_batch(self, indices: Sequence[int]) -> Batch:
        """As :meth:`read_batch`, but 8-bit images stay uint8 (n, C, H, W): a quarter of the
        bytes to copy and send to a GPU, made floats there (``unit_items``). Images stored
        (n, H, W, C) come in channels-last memory, as stored: no transposing copy here, which
        is most of the time reading a batch of large color images takes."""
        if self._array.dtype != np.uint8:
            return self.read_batch(indices)
        rows, chunk = self._rows(indices)
        return Batch(torch.from_numpy(chunk), rows.tolist(), [])

    def _rows(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The checked rows and their images: a copy of the rows as stored, seen as
        (n, C, H, W) without copying again ((n, H, W, C) storage stays channels-last)."""
        rows = checked_rows(indices, len(self), self.name)
        chunk = np.asarray(self._array[rows])
        if self._layout == "nhw":
            return rows, chunk[:, None]
        if self._layout == "nhwc":
            return rows, chunk.transpose(0, 3, 1, 2)
        return rows, chunk


def _value_range(array: np.ndarray) -> tuple[float, float]:
    """The (offset, span) that map the array's values into [0, 1] as ``(x - offset) / span``."""
    if array.dtype == np.uint8:
        return 0.0, 255.0
    if array.dtype.kind == "b":
        return 0.0, 1.0
    low, high = float(array.min()), float(array.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("the image array holds NaN or infinite values")
    if low >= 0.0 and high <= 1.0:
        return 0.0, 1.0
    return low, (high - low if high > low else 1.0)


def load_array_file(path: str | os.PathLike) -> ArraySource:
    """Open images stored in a ``.npy`` or ``.npz`` file.

    A ``.npy`` file holds the images (memory-mapped, not read into memory). A ``.npz`` file
    holds the images as ``X`` with optional labels ``y``, or else a single array of images.
    Array layouts and values follow :class:`ArraySource`.

    Args:
        path: the file.

    Returns:
        An :class:`ArraySource` named after the file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: an unreadable file, another suffix, a ``.npz`` with several arrays but no
            ``X``, a bad image array, or labels whose length differs from the images'. Every
            message names the file.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "imgs.npz"
        >>> np.savez(f, X=np.zeros((3, 8, 8), np.uint8), y=np.array(["a", "b", "a"]))
        >>> load_array_file(f).classes
        ['a', 'b']
    """
    images, labels = read_array_file(path)
    try:
        return ArraySource(images, labels, name=str(path))
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise type(err)(f"{path}: {err}") from err


def read_array_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """The array of a ``.npy`` file (memory-mapped) or the ``X`` (or single) array and ``y``
    labels (or None) of a ``.npz`` file, never unpickling anything.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: another suffix, a file that is not of its suffix's type, a truncated file,
            or an array of Python objects; every message names the file.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "x.npy"
        >>> np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        >>> try:
        ...     read_array_file(f)
        ... except ValueError as err:
        ...     print(str(err).split(": ", 1)[1])
        holds Python objects, which selfsup never unpickles; save a numeric array instead
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such array file: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"{path}: expected a .npy or .npz file, got {suffix or 'no suffix'}")
    with path.open("rb") as f:
        magic = f.read(6)
    # Without this check numpy reports any foreign file as "pickled data".
    if not magic.startswith(_MAGIC[suffix]):
        raise ValueError(f"{path}: not a {suffix} file (it does not start with {_MAGIC[suffix]!r})")
    try:
        if suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False), None
        return _read_npz(path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"{path}: {_array_problem(err)}") from err


def _array_problem(err: Exception) -> str:
    """What numpy's error says, in words that do not suggest unpickling."""
    text = str(err)
    if "object" in text.lower() and ("pickle" in text or "Python objects" in text):
        return "holds Python objects, which selfsup never unpickles; save a numeric array instead"
    if "mmap length is greater than file size" in text or "Failed to read all data" in text:
        return "the file is shorter than its header says (truncated, or still being written)"
    if isinstance(err, zipfile.BadZipFile):
        return f"not a readable .npz archive ({text}; truncated?)"
    return text


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The images (``X`` or the single array) and labels (``y`` or None) of a ``.npz`` file."""
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.keys())
        if "X" in keys:
            return archive["X"], (archive["y"] if "y" in keys else None)
        if len(keys) == 1:
            return archive[keys[0]], None
    raise ValueError(
        f"{path}: a .npz file must hold the images as 'X' (and labels as 'y') or a single "
        f"array, found {keys or 'no arrays'}"
    )
