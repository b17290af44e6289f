"""Tables: type inference, missing values, categorical codes, saved encodings, bad cells."""

import numpy as np
import pandas as pd
import pytest
from tests.modalities.tabular.conftest import make_table

from selfsup.data import EmptySourceError, TablePreprocessor, TabularSource
from selfsup.modalities import infer_modality, open_source


def test_dataframe_with_nans_and_a_categorical_column():
    frame = make_table(n=50)
    src = open_source(frame, label_column="y")
    pre = src.preprocessor
    assert src.modality == "tabular"
    assert pre.numeric == ["a", "b", "noise"] and pre.categorical == ["color"]
    assert pre.indicators == ["a"] and pre.cardinalities == [4]
    assert src.feature_names == ["a", "b", "noise", "a (missing)", "color"]
    x = src.read_batch(range(50)).items.numpy()
    assert np.isfinite(x).all()
    observed = frame["a"].notna().to_numpy()
    assert abs(x[observed, 0].mean()) < 1e-5 and abs(x[observed, 0].std() - 1) < 1e-3
    np.testing.assert_array_equal(x[:, 3], (~observed).astype(np.float32))
    assert set(np.unique(x[:, 4])) <= {0.0, 1.0, 2.0, 3.0}
    assert (x[frame["color"].isna().to_numpy(), 4] == 0).all()
    assert src.classes == ["x", "y", "z"]


def test_saved_encoding_is_reused_and_unseen_categories_get_code_zero(tmp_path):
    train = pd.DataFrame({"n": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    pre = TabularSource(train).preprocessor
    pre.save(tmp_path)
    again = TablePreprocessor.load(tmp_path)
    new = pd.DataFrame({"n": [2.0], "c": ["never seen"]})
    encoded = TabularSource(new, preprocessor=again).read(0).tolist()
    assert encoded == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"columns \['c'\] are missing"):
        TabularSource(pd.DataFrame({"n": [1.0]}), preprocessor=again)


def test_type_overrides_and_bad_cells_name_row_and_column():
    frame = pd.DataFrame({"zip": [1001, 1002, 1001], "v": ["1.5", "2", "oops"]})
    src = TabularSource(frame.iloc[:2], categorical_columns=["zip"], numeric_columns=["v"])
    assert src.preprocessor.categorical == ["zip"] and src.preprocessor.numeric == ["v"]
    with pytest.raises(ValueError, match=r"row 2, column 'v': 'oops' is not a number"):
        TabularSource(frame, numeric_columns=["v"])
    with pytest.raises(ValueError, match="no column 'nope'"):
        TabularSource(frame, label_column="nope")
    with pytest.raises(EmptySourceError, match="no row"):
        TabularSource(frame.iloc[:0])


def test_csv_and_parquet_files_and_named_tables(tmp_path):
    frame = make_table(n=30, missing=0.3)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    a = open_source(tmp_path / "t.csv", label_column="y", drop_columns=["noise"])
    b = open_source(tmp_path / "t.parquet", label_column="y", drop_columns=["noise"])
    assert a.feature_names == b.feature_names == ["a", "b", "a (missing)", "color"]
    np.testing.assert_allclose(a.values.numpy(), b.values.numpy(), atol=1e-6)
    train, test = open_source("breast-cancer"), open_source("breast-cancer:test")
    assert (len(train), len(test)) == (456, 113) and train.item_shape == (30,)
    assert train.preprocessor.means == test.preprocessor.means


def test_times_become_days_and_cycles_and_bad_times_name_the_row(tmp_path):
    frame = pd.DataFrame(
        {
            "t": ["2025-01-01T06:00:00", "2025-01-02T18:00:00", None, "2025-07-01 00:00"],
            "x": [1.0, 2.0, 3.0, 4.0],
        }
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    src = open_source(tmp_path / "t.csv")
    pre = src.preprocessor
    assert pre.datetimes == ["t"] and pre.categorical == [] and pre.inputs == ["x", "t"]
    assert pre.indicators == ["t (days since 1970)"]
    x = src.values.numpy()
    assert x.shape == (4, 1 + 7 + 1) and np.isfinite(x).all()
    raw = pre.numeric_values(frame)
    np.testing.assert_allclose(raw[0, 1], 20089.25)  # 2025-01-01 is day 20089; 6 am a quarter
    np.testing.assert_allclose(raw[[0, 1], 2], [1.0, -1.0], atol=1e-9)  # day sin: 6 am, 6 pm
    np.testing.assert_array_equal(x[:, -1], [0, 0, 1, 0])  # the missing time's indicator
    # A datetime type (Parquet) reads the same as ISO text; later data through the saved encoding.
    typed = frame.assign(t=pd.to_datetime(frame["t"], format="ISO8601"))
    typed.to_parquet(tmp_path / "t.parquet")
    pre.save(tmp_path)
    again = open_source(tmp_path / "t.parquet", preprocessor=TablePreprocessor.load(tmp_path))
    np.testing.assert_allclose(again.values.numpy(), x, atol=1e-5)
    with pytest.raises(ValueError, match=r"row 1, column 't': 'soon' is not a date"):
        TabularSource(frame.assign(t=["2025-01-01", "soon", None, None]), preprocessor=pre)
    dates = TabularSource(pd.DataFrame({"d": ["03/11/2025", "04/11/2025"], "x": [1, 2]}))
    assert dates.preprocessor.categorical == ["d"]  # only ISO 8601 reads as a time


def test_columns_with_a_value_per_row_are_not_read_unless_asked():
    n = 400
    frame = pd.DataFrame(
        {
            "ref": [f"tx-{i}" for i in range(n)],
            "shop": np.array(["a", "b", "c"])[np.arange(n) % 3],
            "x": np.arange(n, dtype=float),
        }
    )
    src = TabularSource(frame)
    assert src.preprocessor.categorical == ["shop"] and src.preprocessor.ignored == ["ref"]
    assert src.feature_names == ["x", "shop"]
    assert (
        src.warning is not None
        and "(ids or free text): 'ref' (400 values in 400 rows)" in src.warning
        and "--modality text" not in src.warning  # tx-17 is an id, not text
    )
    # Support tickets read as a table: the warning says how to read their text as text.
    tickets = frame.assign(body=[f"my card {i} was charged twice" for i in range(n)])
    assert "'body' holds free text: --modality text --text-column body reads it as text" in (
        TabularSource(tickets).warning
    )
    kept = TabularSource(frame, categorical_columns=["ref"])
    assert kept.preprocessor.categorical == ["ref", "shop"] and kept.warning is None
    with pytest.raises(ValueError, match=r"no feature column left: \['ref'\]"):
        TabularSource(frame[["ref"]])


def test_categories_by_frequency_and_a_bounded_raw_baseline():
    """40,000 merchants once made a 40,000-wide one-hot per batch (and np.eye(40,001)): the
    raw baseline of a 100,000-row table was killed at 24 GB."""
    from selfsup.data.tabular import ONE_HOT_MOST
    from selfsup.modalities import modality_of

    rng = np.random.default_rng(0)
    n = 3000
    shop = np.where(
        rng.random(n) < 0.5, "big", np.char.add("s", rng.integers(0, 1000, n).astype(str))
    )
    frame = pd.DataFrame({"shop": shop, "x": rng.normal(size=n)})
    src = TabularSource(frame, categorical_columns=["shop"])
    assert src.preprocessor.categories["shop"][0] == "big"  # the most frequent is code 1
    raw = modality_of(src).raw_features(src)
    assert raw.shape == (n, 1 + ONE_HOT_MOST)
    big = shop == "big"
    assert (raw[big, 2] == 1).all() and (raw[~big, 2] == 0).all()
    np.testing.assert_array_equal(raw[:, 1:].sum(axis=1), 1.0)  # one column each, rare ones shared


def test_a_folder_of_monthly_exports_is_one_table_its_rows_named_by_file(tmp_path):
    """A fraud team's transactions, one CSV or Parquet export a month: one table of their
    rows; a photo folder with its labels table stays photos."""
    from PIL import Image

    root = tmp_path / "tx"
    root.mkdir()
    pd.DataFrame({"amount": [5.0, 7.5], "shop": ["a", "b"], "fraud": [0, 1]}).to_csv(
        root / "2025-01.csv", index=False
    )
    pd.DataFrame({"shop": ["c"], "fraud": [0], "amount": [9.0]}).to_parquet(
        root / "2025-02.parquet"
    )
    assert infer_modality(str(root)) == "tabular"
    src = open_source(root, label_column="fraud")
    assert list(src.ids) == ["2025-01.csv:0", "2025-01.csv:1", "2025-02.parquet:0"]
    assert src.labels.tolist() == [0, 1, 0] and src.index_note == "2 files"
    (root / "2025-03.csv").write_text("amount,shop\n1,a\n")
    with pytest.raises(ValueError, match=r"2025-03\.csv: its columns differ .*: lacks fraud"):
        open_source(root, label_column="fraud")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "labels.csv").write_text("file_name,label,date\na.png,cat,2025-01-01\n")
    Image.new("RGB", (8, 8)).save(photos / "a.png")
    assert infer_modality(str(photos)) == "image"


def test_rare_categories_share_one_code_and_card_numbers_are_not_read(tmp_path):
    """Three million transactions of 250,000 cards: every card got its own embedding (12 rows
    each to learn it from, 8 MB of a 10 MB encoder), and 56,000 merchants as many. A category
    held by fewer than 20 rows now shares an "other" code with the values met later; a column
    most of whose rows hold such values is not read, and says why."""
    rng = np.random.default_rng(0)
    n = 30_000
    rare = rng.random(n) < 0.3
    merchant = np.where(
        rare,
        np.char.add("m", (np.cumsum(rare) % 5_000).astype(str)),  # 5,000 of ~2 rows
        np.char.add("big", rng.integers(0, 10, n).astype(str)),  # 10 merchants of ~2,100 rows
    )
    frame = pd.DataFrame(
        {
            "card": np.char.add("c", rng.permutation(np.arange(n) % 6_000).astype(str)),  # 5 rows
            "merchant": merchant,
            "x": rng.normal(size=n),
        }
    )
    frame.loc[:9, "merchant"] = None
    src = TabularSource(frame)
    pre = src.preprocessor
    assert pre.ignored == ["card"] and pre.categorical == ["merchant"]
    assert "'card' (6,000 values in 30,000 rows, 100% of them in values of fewer than 20 rows)" in (
        src.warning
    )
    assert sorted(pre.categories["merchant"]) == [f"big{i}" for i in range(10)]
    assert pre.other == ["merchant"] and pre.cardinalities == [12]  # missing, other, 10
    assert src.inputs_note == (
        "columns: 1 numeric (x); 1 categorical (merchant: 10 of 5,010 values coded, the rarer "
        "sharing one); not read: card"
    )
    codes = src.values[:, -1].numpy()
    big = frame["merchant"].str.startswith("big", na=False).to_numpy()
    assert (codes[:10] == 0).all() and (codes[big] >= 2).all()
    assert (codes[~big & frame["merchant"].notna().to_numpy()] == 1).all()
    pre.save(tmp_path)
    later = pd.DataFrame({"card": ["c1", "new"], "merchant": ["never seen", "big3"], "x": [0, 1]})
    again = TabularSource(later, preprocessor=TablePreprocessor.load(tmp_path))
    assert again.values[:, -1].tolist() == [1.0, 2.0 + pre.categories["merchant"].index("big3")]
    assert again.inputs_note is None  # a run's encoding: said when it was fitted
    # Asked for, card numbers are read, each its own code.
    kept = TabularSource(frame, categorical_columns=["card"]).preprocessor
    assert kept.cardinalities[0] == 6_001 and "card" not in kept.other


def test_an_encoding_saved_before_other_codes_reads_as_it_did(tmp_path):
    """preprocess.json files of earlier runs have no "other" codes: unseen values stay 0."""
    import json

    (tmp_path / "preprocess.json").write_text(
        json.dumps({"numeric": [], "categorical": ["c"], "categories": {"c": ["a", "b"]}})
    )
    pre = TablePreprocessor.load(tmp_path)
    assert pre.cardinalities == [3]
    frame = pd.DataFrame({"c": ["b", "zz", None]})
    assert pre.transform(frame).ravel().tolist() == [2.0, 0.0, 0.0]


def test_a_split_by_time_scores_the_latest_rows_with_what_came_before():
    """A fraud team judges a model on last month's transactions, not on rows drawn from every
    month: ``--split-by time`` fits on the earlier rows of the first time column and scores
    the latest fifth; rows without a time are fitted on, unlabelled rows left out."""
    from selfsup.modalities import train_test_sources

    n = 200
    stamps = pd.date_range("2025-01-01", periods=n, freq="6h").strftime("%Y-%m-%dT%H:%M:%S")
    fraud = (np.arange(n) % 4 == 0).astype(float)
    frame = pd.DataFrame({"t": list(stamps), "amount": np.arange(n, dtype=float), "fraud": fraud})
    frame.loc[3, "t"] = None
    frame.loc[5, "fraud"] = None
    fit, test = train_test_sources(TabularSource(frame, "fraud", name="tx"), split_by="time")
    # 199 labelled rows, 198 with a time: the last 39 of those (a fifth) are scored
    assert test.name == "tx[labelled][test, t from 2025-02-10T06:00:00]" and len(test) == 39
    assert fit.name == "tx[labelled][fit, t before 2025-02-10T06:00:00]" and len(fit) == 160
    fit_days, test_days = fit.times()[1], test.times()[1]
    assert np.nanmax(fit_days) < test_days.min() and np.isnan(fit_days).sum() == 1
    assert "5" not in [*fit.ids, *test.ids] and "3" in fit.ids  # 5 has no label, 3 no time
    untimed = TabularSource(frame[["amount", "fraud"]], "fraud", name="tx")
    with pytest.raises(ValueError, match=r"tx\[labelled\] has no date and time column to split"):
        train_test_sources(untimed, split_by="time")


def test_timed_exports_are_a_table_and_a_typo_in_a_number_names_its_file_and_row(tmp_path):
    """A fraud team's monthly exports have a timestamp: they were read as sensor logs and
    refused with "column 'card_id': 'C236226' is not a number". One amount typed ``12,50``
    made the whole column text, read as categories without a word."""
    root = tmp_path / "exports"
    root.mkdir()
    n = 300
    month = pd.DataFrame(
        {
            "timestamp": pd.date_range("2025-01-01", periods=n, freq="h").strftime("%FT%T"),
            "card_id": [f"C{i % 7}" for i in range(n)],
            "merchant": [f"M{i % 3}" for i in range(n)],
            "country": ["FR", "DE", "IT"] * (n // 3),
            "amount": np.arange(n) + 0.5,
            "fraud": np.arange(n) % 2,
        }
    )
    month.to_parquet(root / "2025-01.parquet")
    assert infer_modality(str(root)) == "tabular"
    month.iloc[:2].assign(amount=["7", "12,50"]).to_csv(root / "2025-02.csv", index=False)
    with pytest.raises(ValueError, match=r"row 2025-02.csv:1, column 'amount': '12,50' is not"):
        open_source(root, label_column="fraud")
    readings = tmp_path / "logs"
    readings.mkdir()
    pd.DataFrame(
        {"timestamp": month["timestamp"][:2], "unit": ["p1"] * 2, "temp": [1.0, 2.0], "bar": [3, 4]}
    ).to_csv(readings / "p1.csv", index=False)
    assert infer_modality(str(readings)) == "series"  # readings: sensor logs


def test_integer_codes_and_ids_read_as_quantities_are_named_with_the_option_that_reads_them():
    """A fraud team's merchant category codes (5411 groceries, 7995 betting) are integers:
    read as quantities, 7995 is 'more' than 5411 and no linear model can single out the
    risky codes. The warning names them (and integer ids), not counts, amounts or years."""
    n = 400
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "mcc": rng.choice([5411, 5812, 5541, 7995, 4829], n),
            "user_id": 10_000 + rng.permutation(n),
            "tx_last_24h": rng.poisson(2.0, n),
            "year": rng.choice([2019, 2021, 2024], n),
            "amount": rng.gamma(2.0, 30.0, n).round(2),
            "row": np.arange(n, dtype=float),
        }
    )
    warning = TabularSource(frame).warning
    assert warning is not None
    assert (
        "though their integers look like codes: 'mcc' (5 values: 4829, 5411, 5541, ...); "
        "--categorical-columns mcc reads them as categories" in warning
    )
    assert "look like ids: 'user_id' (400 values in 400 rows); --drop-columns user_id" in warning
    for quantity in ("tx_last_24h", "year", "amount", "'row'"):
        assert quantity not in warning
    declared = TabularSource(frame, categorical_columns=["mcc"], drop_columns=["user_id"])
    assert declared.warning is None and "mcc" in declared.preprocessor.categorical
    assert TabularSource(frame[["mcc", "amount"]], numeric_columns=["mcc"]).warning is None


def test_empty_text_in_parquet_is_missing_as_an_empty_csv_cell_is(tmp_path):
    """A Parquet export writes "" where the CSV export of the same rows leaves a cell empty
    (no device on a card-present payment; no label yet): both read the same, so a run trained
    on one format encodes the other's rows as it did its own."""
    frame = pd.DataFrame(
        {
            "device": ["ios", "", "web", ""] * 30,
            "amount": np.arange(120) / 7,
            "fraud": (["0", "1", "", "0"] * 30),
        }
    )
    frame.to_csv(tmp_path / "tx.csv", index=False)
    frame.to_parquet(tmp_path / "tx.parquet")
    csv = open_source(tmp_path / "tx.csv", label_column="fraud")
    pq = open_source(tmp_path / "tx.parquet", label_column="fraud")
    assert csv.preprocessor.categories == pq.preprocessor.categories == {"device": ["ios", "web"]}
    np.testing.assert_array_equal(csv.values.numpy(), pq.values.numpy())
    assert csv.partial_labels.classes == pq.partial_labels.classes
    assert csv.partial_labels is not None and pq.partial_labels is not None
    np.testing.assert_array_equal(csv.partial_labels.rows, pq.partial_labels.rows)
    assert len(csv.partial_labels.rows) == 90


def test_a_csv_read_by_arrow_encodes_as_pandas_c_parser_reads_it(tmp_path):
    """Tables are read by Arrow's CSV reader (ten million transactions in 8 s instead of 33),
    which types ISO times and dates as datetimes: each row encodes as the C parser's text
    did, times with and without an offset, dates, flags, codes with leading zeros, empty
    cells; a file Arrow refuses is read by the C parser, which names what is wrong."""
    rng = np.random.default_rng(0)
    n = 300
    seconds = np.sort(rng.integers(0, 90 * 86400, n)).astype("m8[s]")
    times = (np.datetime64("2025-01-01T00:00:00") + seconds).astype(str)
    frame = pd.DataFrame(
        {
            "at": times,
            "at_utc": [f"{t}Z" if i % 2 else f"{t}+02:00" for i, t in enumerate(times)],
            "day": [t[:10] for t in times],
            "flag": rng.choice(["true", "false"], n),
            "count": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 9, n)),
            "branch": rng.choice(["007", "012", "100"], n),
            "device": rng.choice(["ios", "", "web"], n),
            "amount": rng.gamma(2.0, 20.0, n).round(2),
            "y": rng.choice(["a", "b"], n),
        }
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    from selfsup.data.table_files import read_table

    typed = read_table(tmp_path / "t.csv", typed_times=True)
    assert [str(typed[c].dtype) for c in ("at", "at_utc", "day")] == [
        "datetime64[s]",
        "datetime64[s, UTC]",
        "datetime64[s]",
    ]
    by_arrow = open_source(tmp_path / "t.csv", label_column="y")
    assert by_arrow.preprocessor.datetimes == ["at", "at_utc", "day"]
    by_c = TabularSource(pd.read_csv(tmp_path / "t.csv"), "y")
    assert by_arrow.preprocessor.summary() == by_c.preprocessor.summary()
    np.testing.assert_allclose(by_arrow.values.numpy(), by_c.values.numpy(), atol=1e-6)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(ValueError, match=r"bad.csv: cannot read the table .*line 3"):
        open_source(tmp_path / "bad.csv")


def test_a_table_file_too_large_for_memory_is_refused_before_its_rows_are_read(
    tmp_path, monkeypatch, capsys
):
    """A fraud team's year of transactions in one CSV: planned from its first rows, refused
    at once with the memory it would take, not killed by the kernel a minute in."""
    import sys

    import selfsup.core.memory
    import selfsup.data.table_files as table_files
    from selfsup.cli import main

    path = tmp_path / "tx.csv"
    rows = 5000
    pd.DataFrame(
        {"amount": np.arange(rows) * 1.25, "shop": ["a", "b"] * (rows // 2), "fraud": [0] * rows}
    ).to_csv(path, index=False)
    monkeypatch.setattr(table_files, "PLANNED_FILE_BYTES", 1000)  # a large file, that is
    read: list[int | None] = []
    real_read = table_files.read_table
    monkeypatch.setattr(
        table_files, "read_table", lambda *a, **k: read.append(k.get("rows")) or real_read(*a, **k)
    )
    monkeypatch.setattr(selfsup.core.memory, "available_memory", lambda device: 51_200)
    monkeypatch.setattr(sys, "argv", ["selfsup", "datasets", "show", str(path)])
    with pytest.raises(SystemExit) as stopped:
        main()
    said = " ".join("".join(capsys.readouterr()).split())
    assert stopped.value.code == 2 and "Traceback" not in said
    assert f"{path}: its " in said and "of memory to read, and 50 kB is available" in said
    assert read == [table_files.PLAN_ROWS]  # its first rows only
    monkeypatch.setattr(selfsup.core.memory, "available_memory", lambda device: 10**9)
    monkeypatch.setattr(sys, "argv", ["selfsup", "datasets", "show", str(path)])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0 and '"items": 5000' in capsys.readouterr().out


def test_categories_are_the_most_frequent_with_ties_in_text_order_past_the_cap(monkeypatch):
    """The coded categories, found without sorting every distinct value in Python (ten
    million ids), are those of the full sort: the most frequent first, ties in text order,
    at most MOST_CATEGORIES, each with min_rows rows at least."""
    import selfsup.data.tabular as tabular

    rng = np.random.default_rng(0)
    cells = pd.Series(rng.choice([f"m{i}" for i in range(300)], 5000, p=None).tolist()
                      + [None] * 7)  # fmt: skip
    counts = cells.dropna().value_counts()
    for cap, min_rows in ((10, 1), (25, 17), (1000, 1), (5, 40)):
        monkeypatch.setattr(tabular, "MOST_CATEGORIES", cap)
        found = tabular._Column.fit(cells, min_rows)
        full = sorted(((v, n) for v, n in counts.items() if n >= min_rows),
                      key=lambda p: (-p[1], p[0]))[:cap]  # fmt: skip
        assert found.coded == [v for v, _ in full] and found.values == len(counts)
        assert found.covered == pytest.approx(sum(n for _, n in full) / 5000)


def test_many_ids_are_held_in_one_arrow_array_and_read_as_strings(tmp_path, monkeypatch):
    """Ten million transaction ids as Python strings take 0.65 GB; held as one Arrow array,
    0.13 GB, and every use of them reads the same strings."""
    import selfsup.data.base as base
    import selfsup.data.tabular as tabular
    from selfsup.data.base import TextIds

    path = tmp_path / "tx.csv"
    pd.DataFrame({"tx": [f"T{i}" for i in range(60)], "amount": np.arange(60) * 1.5,
                  "shop": ["a", "b", "c"] * 20}).to_csv(path, index=False)  # fmt: skip
    small = open_source(path, id_column="tx")
    monkeypatch.setattr(base, "COMPACT_IDS", 50)
    monkeypatch.setattr(tabular, "COMPACT_IDS", 50)
    large = open_source(path, id_column="tx")
    assert isinstance(large.ids, TextIds) and isinstance(small.ids, list)
    assert list(large.ids) == small.ids and large.ids[7] == "T7" and large.ids[-1] == "T59"
    assert large.ids.index("T42") == 42 and "T60" not in large.ids
    assert np.asarray(large.ids).tolist() == small.ids
    with pytest.raises(ValueError, match="row 2 repeats the id 'T0' of row 0"):
        pd.DataFrame({"tx": ["T0", "T1"] * 30, "amount": 1.0}).to_csv(path, index=False)
        open_source(path, id_column="tx")
