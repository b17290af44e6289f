"""Property tests (hypothesis) of the readers: whatever a well-formed file holds comes back
unchanged, and a bad value anywhere is named where it is (file, line or row, column)."""

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfsup.core.text_files import text_lines
from selfsup.data import table_files
from selfsup.data.arrays import ArraySource
from selfsup.data.series import read_ts_file
from selfsup.data.table_files import numeric_cells, read_table

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(min_value=-1e30, max_value=1e30, allow_nan=False, allow_infinity=False).map(
    lambda v: float(np.float32(v))
)
lines = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85\ufeff"
    ),
    max_size=30,
)


def scratch(name: str) -> Path:
    return Path(tempfile.mkdtemp()) / name


@SETTINGS
@given(st.lists(st.lists(finite, min_size=3, max_size=3), min_size=1, max_size=30))
def test_a_csv_of_finite_numbers_reads_back(rows: list[list[float]]) -> None:
    path = scratch("t.csv")
    pd.DataFrame(rows, columns=["a", "b", "c"]).to_csv(path, index=False, float_format="%.9g")
    values = numeric_cells(read_table(path), ["a", "b", "c"], str(path))
    np.testing.assert_allclose(values, np.array(rows, dtype=np.float64), rtol=1e-7)


@SETTINGS
@given(
    st.integers(1, 25),
    st.data(),
    st.sampled_from(["inf", "-inf", "1e39", "-3.5e300"]),
)
def test_a_value_out_of_float32_range_is_named_by_row_and_column(n, data, bad) -> None:
    row = data.draw(st.integers(0, n - 1))
    column = data.draw(st.sampled_from(["a", "b"]))
    frame = pd.DataFrame({"a": np.arange(n, dtype=float), "b": np.ones(n)}).astype(object)
    frame.loc[row, column] = bad
    path = scratch("t.csv")
    frame.to_csv(path, index=False)
    with pytest.raises(
        ValueError, match=rf"t\.csv: row {row}, column '{column}': .* is (infinite|beyond float32)"
    ):
        numeric_cells(read_table(path), ["a", "b"], str(path))


@SETTINGS
@given(st.lists(lines, min_size=1, max_size=20))
def test_utf8_lines_read_back(texts: list[str]) -> None:
    path = scratch("a.txt")
    path.write_bytes("\n".join(texts).encode("utf-8"))
    assert [line for _, line in text_lines(path)] == "\n".join(texts).splitlines()


@SETTINGS
@given(st.integers(2, 60), st.data(), st.integers(8, 64))
def test_the_first_latin1_line_of_a_csv_is_named_at_any_block_size(n, data, block) -> None:
    bad = data.draw(st.integers(2, n + 1))  # line 1 is the header
    body = [f"{i},caf{'é' if i + 2 == bad else 'e'}" for i in range(n)]
    path = scratch("t.csv")
    path.write_bytes(("id,name\n" + "\n".join(body) + "\n").encode("latin-1"))
    previous, table_files._BLOCK = table_files._BLOCK, block  # a bad byte across block ends
    try:
        with pytest.raises(ValueError, match=rf"t\.csv: line {bad} is not UTF-8 text \(byte 0xe9"):
            read_table(path)
    finally:
        table_files._BLOCK = previous


@SETTINGS
@given(st.lists(st.lists(finite, min_size=1, max_size=12), min_size=1, max_size=10), st.data())
def test_ts_series_read_back_with_their_labels(series: list[list[float]], data) -> None:
    labels = [data.draw(st.sampled_from(["up", "down"])) for _ in series]
    rows = [
        ",".join(f"{v:.9g}" for v in values) + f":{label}"
        for values, label in zip(series, labels, strict=True)
    ]
    path = scratch("s.ts")
    path.write_text(
        "@problemName p\n@univariate true\n@classLabel true up down\n@data\n"
        + "\n".join(rows)
        + "\n"
    )
    read, read_labels, _ = read_ts_file(path)
    assert list(read_labels) == labels
    for got, values in zip(read, series, strict=True):
        np.testing.assert_allclose(got[0], np.array(values, dtype=np.float32), rtol=1e-6)


@SETTINGS
@given(
    st.integers(1, 6),
    st.integers(2, 9),
    st.integers(2, 9),
    st.sampled_from([np.uint8, np.uint16, np.float32]),
    st.data(),
)
def test_image_arrays_read_in_zero_one(n, h, w, dtype, data) -> None:
    if np.dtype(dtype).kind == "f":
        scale = data.draw(st.sampled_from([1.0, 255.0, 4000.0]))
        array = np.random.default_rng(n).random((n, h, w)).astype(dtype) * scale
    else:
        array = np.random.default_rng(n).integers(0, np.iinfo(dtype).max, (n, h, w)).astype(dtype)
    source = ArraySource(array)
    assert len(source) == n and source.item_shape == (1, h, w)
    for i in range(n):
        item = source.read(i)
        assert item.shape == (1, h, w)
        assert float(item.min()) >= 0.0 and float(item.max()) <= 1.0 + 1e-6
