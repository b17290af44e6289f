import time

import numpy as np
import pytest
import torch

from selfsup.data.arrays import ArraySource, encode_labels, image_layout, load_array_file
from selfsup.data.base import EmptySourceError


def _images_nchw(n: int = 2, c: int = 3, h: int = 4, w: int = 5) -> np.ndarray:
    """Distinct uint8 values everywhere, with h != w so a swapped axis shows."""
    return (np.arange(n * c * h * w) % 251).astype(np.uint8).reshape(n, c, h, w)


@pytest.mark.parametrize(
    ("shape", "layout"),
    [
        ((7, 28, 28), "nhw"),
        ((7, 28, 28, 1), "nhwc"),
        ((7, 32, 32, 3), "nhwc"),
        ((7, 16, 16, 4), "nhwc"),
        ((7, 1, 28, 28), "nchw"),
        ((7, 3, 32, 32), "nchw"),
        ((7, 3, 32, 3), "nhwc"),  # both could be channels: channels-last wins
        ((7, 3, 28, 4), "nchw"),  # RGB channels-first beats RGBA channels-last
        ((7, 4, 16, 16), "nchw"),
    ],
)
def test_image_layout_rule(shape, layout):
    assert image_layout(shape) == layout


@pytest.mark.parametrize("shape", [(7, 5, 6, 7), (7, 28), (7, 1, 2, 3, 4)])
def test_image_layout_rejects_unclear_shapes(shape):
    with pytest.raises(ValueError, match="shape"):
        image_layout(shape)


def test_channels_first_and_last_give_the_same_items():
    nchw = _images_nchw()
    expected = torch.from_numpy(nchw).float() / 255
    for array in (nchw, nchw.transpose(0, 2, 3, 1).copy()):
        src = ArraySource(array)
        assert src.item_shape == (3, 4, 5)
        for i in range(2):
            assert torch.equal(src.read(i), expected[i])
        assert torch.equal(src.read_batch([1, 0]).items, expected[[1, 0]])


def test_gray_layouts_get_one_channel():
    gray = _images_nchw(c=1)[:, 0]
    expected = torch.from_numpy(gray).float()[:, None] / 255
    for array in (gray, gray[..., None], gray[:, None]):
        src = ArraySource(array)
        assert src.item_shape == (1, 4, 5)
        assert torch.equal(src.read_batch([0, 1]).items, expected)


def test_alpha_channel_is_dropped():
    rgba = _images_nchw(c=4).transpose(0, 2, 3, 1)
    item = ArraySource(rgba).read(1)
    assert item.shape == (3, 4, 5)
    assert torch.equal(item, torch.from_numpy(rgba[1, :, :, :3]).permute(2, 0, 1).float() / 255)


def test_float_within_unit_range_is_used_as_is():
    x = np.random.default_rng(0).random((3, 6, 6))
    src = ArraySource(x)
    assert torch.equal(src.read(2)[0], torch.from_numpy(x[2]).float())


def test_float_outside_unit_range_is_min_max_scaled_globally():
    x = np.linspace(-2.0, 6.0, 2 * 5 * 5).reshape(2, 5, 5)
    items = ArraySource(x).read_batch([0, 1]).items
    assert items.dtype == torch.float32
    assert items.min().item() == 0.0 and items.max().item() == 1.0
    # The scaling is global: image 0 holds the low half of the values, image 1 the high half.
    assert torch.allclose(items[:, 0], torch.from_numpy((x + 2) / 8).float(), atol=1e-6)
    assert items[0].max() < 0.5 < items[1].min()


def test_constant_float_outside_unit_range_maps_to_zero():
    assert ArraySource(np.full((2, 3, 3), 7.5)).read(0).abs().sum() == 0


def test_non_finite_values_are_rejected():
    x = np.zeros((2, 3, 3))
    x[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ArraySource(x)


def test_empty_array_is_an_empty_source():
    with pytest.raises(EmptySourceError, match="no image"):
        ArraySource(np.zeros((0, 8, 8), np.uint8))


def test_read_batch_keeps_order_and_bounds():
    src = ArraySource(_images_nchw(n=4))
    batch = src.read_batch([3, 0, 3])
    assert batch.indices == [3, 0, 3] and batch.skipped == []
    assert torch.equal(batch.items[0], src.read(3)) and torch.equal(batch.items[1], src.read(0))
    assert src.read_batch([]).items.shape == (0, 3, 4, 5)
    with pytest.raises(IndexError, match="4"):
        src.read_batch([0, 4])
    with pytest.raises(IndexError):
        src.read(-1)


def test_read_batch_is_fast():
    src = ArraySource(np.random.default_rng(0).integers(0, 256, (10000, 28, 28), np.uint8))
    rows = np.random.default_rng(1).integers(0, 10000, 256)
    timings = []
    for _ in range(21):
        start = time.perf_counter()
        src.read_batch(rows)
        timings.append(time.perf_counter() - start)
    assert np.median(timings) < 0.01  # about 0.1 ms on an idle core


def test_ids_are_row_numbers():
    src = ArraySource(np.zeros((12, 2, 2), np.uint8))
    assert len(src.ids) == 12 and src.ids[0] == "0" and src.ids[-1] == "11"
    assert src.ids[9:] == ["9", "10", "11"]


def test_string_labels_become_codes_and_sorted_classes():
    src = ArraySource(np.zeros((4, 2, 2), np.uint8), labels=["dog", "cat", "dog", "emu"])
    assert src.classes == ["cat", "dog", "emu"]
    assert src.labels.tolist() == [1, 0, 1, 2]
    assert src.describe() == "array: 4 image items, 3 classes"


def test_int_labels_with_and_without_class_names():
    codes, names = encode_labels(np.array([5, 1, 5]))
    assert codes.tolist() == [1, 0, 1] and names == ["1", "5"]
    codes, names = encode_labels([2, 0], classes=["a", "b", "c"])
    assert codes.tolist() == [2, 0] and names == ["a", "b", "c"]
    codes, _ = encode_labels(np.array([1.0, 0.0]))  # integer labels saved as floats
    assert codes.dtype == np.int64
    with pytest.raises(ValueError, match=r"0\.\.2"):
        encode_labels([3], classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="not among"):
        encode_labels(["zebra"], classes=["a"])


def test_label_count_must_match():
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        ArraySource(np.zeros((3, 2, 2), np.uint8), labels=[0, 1])


def test_npz_with_images_and_labels(tmp_path):
    x = _images_nchw(n=3).transpose(0, 2, 3, 1)
    np.savez(tmp_path / "data.npz", X=x, y=np.array(["b", "a", "b"]))
    src = load_array_file(tmp_path / "data.npz")
    assert src.name == str(tmp_path / "data.npz")
    assert src.classes == ["a", "b"] and src.labels.tolist() == [1, 0, 1]
    assert torch.equal(src.read(2), torch.from_numpy(x[2]).permute(2, 0, 1).float() / 255)


def test_npz_with_a_single_array_and_npy(tmp_path):
    x = _images_nchw(n=3, c=1)[:, 0]
    np.savez_compressed(tmp_path / "one.npz", images=x)
    np.save(tmp_path / "imgs.npy", x)
    for name in ("one.npz", "imgs.npy"):
        src = load_array_file(tmp_path / name)
        assert src.labels is None and len(src) == 3
        assert torch.equal(src.read(1)[0], torch.from_numpy(x[1]).float() / 255)


def _write_bad_files(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((4, 5)))
    np.savez(tmp_path / "no_x.npz", a=np.zeros((2, 4, 4)), b=np.zeros(2))
    np.savez(tmp_path / "mismatch.npz", X=np.zeros((3, 4, 4)), y=np.zeros(2))
    (tmp_path / "noise.npy").write_bytes(np.random.default_rng(0).bytes(200))
    (tmp_path / "noise.npz").write_bytes(np.random.default_rng(1).bytes(200))
    np.save(tmp_path / "whole.npy", np.zeros((50, 8, 8), np.uint8))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "whole.npy").read_bytes()[:1000])


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("flat.npy", "3 axes"),
        ("no_x.npz", "'X'"),
        ("mismatch.npz", "2 labels for 3 images"),
        ("noise.npy", "not a .npy file"),
        ("noise.npz", "not a .npz file"),
        ("cut.npy", None),  # numpy says what is wrong; the file name is checked below
    ],
)
def test_bad_array_files_name_the_file(tmp_path, name, match):
    _write_bad_files(tmp_path)
    with pytest.raises(ValueError, match=match) as info:
        load_array_file(tmp_path / name)
    assert str(tmp_path / name) in str(info.value)


def test_missing_array_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"gone\.npy"):
        load_array_file(tmp_path / "gone.npy")


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw"])
def test_training_batches_of_8_bit_images_are_the_same_floats_sent_as_uint8(layout):
    from selfsup.data.base import unit_items
    from selfsup.data.splits import SubsetSource

    images = np.random.default_rng(0).integers(0, 256, (6, 3, 4, 5), dtype=np.uint8)
    array = {
        "nhw": images[:, 0],
        "nhwc": np.ascontiguousarray(images.transpose(0, 2, 3, 1)),
        "nchw": images,
    }[layout]
    source = ArraySource(array)
    training = source.read_training_batch([4, 1, 2])
    assert training.items.dtype == torch.uint8  # a quarter of the bytes to pin and send
    # As stored: channels-last memory for (n, H, W, C) arrays, no transposing copy.
    memory = torch.channels_last if layout == "nhwc" else torch.contiguous_format
    assert training.items.is_contiguous(memory_format=memory)
    assert training.indices == [4, 1, 2]
    assert torch.equal(unit_items(training.items), source.read_batch([4, 1, 2]).items)
    subset = SubsetSource(source, [5, 4, 3], "part")  # the held-out split's training part
    sent = subset.read_training_batch([2, 0])
    assert sent.items.dtype == torch.uint8 and sent.indices == [2, 0]
    assert torch.equal(unit_items(sent.items), source.read_batch([3, 5]).items)


def test_training_batches_of_other_arrays_are_read_as_floats():
    from selfsup.data.base import unit_items

    floats = np.random.default_rng(1).random((4, 6, 6)).astype(np.float32) * 7 - 2
    source = ArraySource(floats)
    items = source.read_training_batch([0, 3]).items
    assert items.dtype == torch.float32
    assert unit_items(items) is items
    assert torch.equal(items, source.read_batch([0, 3]).items)


@pytest.mark.parametrize(
    "column",
    [
        np.array([1, 0, 1, 1]),  # a fraud flag
        np.array([1.0, np.nan, 0.0, 1.0]),  # the same with an empty cell (pandas' float)
        np.array([0.5, 1.5, np.nan, 0.5]),  # states coded as fractions
        np.array([np.nan, np.nan]),  # a run's later rows, without labels
    ],
)
def test_a_column_of_numbers_is_read_as_its_cells_are(column):
    """A table's label column comes as an array (ten million rows: no object per cell)
    and reads as the same labels as its cells one by one."""
    from selfsup.data.arrays import present_labels

    fast = present_labels(column, "y", as_text=False)
    cells = present_labels(column.tolist(), "y", as_text=False)
    assert (fast[0] is None) == (cells[0] is None) and fast[1] == cells[1]
    if fast[0] is not None:
        np.testing.assert_array_equal(fast[0], cells[0])
    if fast[2] is not None:
        np.testing.assert_array_equal(fast[2].rows, cells[2].rows)
        np.testing.assert_array_equal(fast[2].codes, cells[2].codes)
        assert fast[2].classes == cells[2].classes
