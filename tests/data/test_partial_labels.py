"""Files labelled on some rows only (far more raw data than labels): every row trains and is
embedded, the labelled rows are evaluated and adapted on; broken JSON lines are skipped."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from tests.modalities.tabular.conftest import make_table
from typer.testing import CliRunner

import selfsup
from selfsup.cli import app
from selfsup.data.series import series_from_frame, windowed
from selfsup.data.splits import SubsetSource, held_out_rows, item_labels, labelled_part
from selfsup.modalities import open_source, train_test_sources
from selfsup.tools.adapt import adapt
from selfsup.tools.anomalies import score_for_run
from selfsup.tools.report import sample_embeddings
from selfsup.tools.selection import select_for_run


def write_jsonl(path, rows, broken_after=None):
    lines = [json.dumps(r) for r in rows]
    if broken_after is not None:
        lines.insert(broken_after, '{"body": "cut off mid-li')
    path.write_text("\n".join(lines) + "\n")


def test_jsonl_labelled_on_some_lines_with_a_broken_line(tmp_path):
    path = tmp_path / "reviews.jsonl"
    rows = [{"body": f"text {i}"} for i in range(6)]
    rows[1]["stars"], rows[4]["stars"], rows[5]["stars"] = 5, 1, 5
    write_jsonl(path, rows, broken_after=3)  # line 4 cut off
    src = open_source(path, text_column="body", label_column="stars")
    assert src.labels is None and src.classes is None  # pretraining reads every row
    assert src.partial_labels.rows.tolist() == [1, 5, 6] and src.partial_labels.classes == [
        "1",
        "5",
    ]
    assert list(src.ids)[3] == "line 4" and src.texts[3] is None
    assert item_labels(src) == [None, "5", None, None, None, "1", "5"]
    assert "1 line is not a JSON object (line 4: not valid JSON (Unterminated string" in (
        src.warning
    )
    assert "4 of 7 rows have no label in 'stars'" in src.warning
    batch = src.read_batch(range(7))
    assert batch.indices == [0, 1, 2, 4, 5, 6]
    assert [(s.item_id, s.reason) for s in batch.skipped] == [
        ("line 4", "not valid JSON (Unterminated string starting at column 10)")
    ]
    part = labelled_part(src)
    assert isinstance(part, SubsetSource) and part.name.endswith("[labelled]")
    assert [part.classes[c] for c in part.labels] == ["5", "1", "5"]
    assert [src.texts[i] for i in part.indices] == ["text 1", "text 4", "text 5"]
    unlabelled = open_source(path, text_column="body")
    assert labelled_part(unlabelled) is unlabelled  # evaluation then refuses it, as before


def test_a_label_field_no_line_has_is_an_error_unless_it_is_later_data(tmp_path):
    path = tmp_path / "reviews.jsonl"
    write_jsonl(path, [{"body": "a", "stars": 1}, {"body": "b", "stars": 2}])
    with pytest.raises(ValueError, match=r"no line has a label in field 'star' .*'body', 'stars'"):
        open_source(path, text_column="body", label_column="star")
    later = open_source(path, text_column="body", label_column="star", require_label=False)
    assert later.labels is None and later.partial_labels is None


def test_csv_text_and_table_labels_with_empty_cells(tmp_path):
    path = tmp_path / "reviews.csv"
    frame = pd.DataFrame(
        {"review": ["nice", "dull", "fun", "ok"], "y": [4, None, 2, None], "z": [None] * 4}
    )
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"no row has a label in column 'z'"):
        open_source(path, "text", text_column="review", label_column="z")
    with pytest.raises(ValueError, match=r"no row has a label in column 'z'"):
        open_source(frame.drop(columns="review"), "tabular", label_column="z")
    text = open_source(path, "text", text_column="review", label_column="y")
    assert text.labels is None and text.partial_labels.classes == ["2", "4"]  # not "4.0"
    assert item_labels(text) == ["4", None, "2", None]
    frame = make_table(n=60).assign(y=lambda f: f["y"].where(np.arange(60) % 3 == 0))
    table = open_source(frame, "tabular", label_column="y")
    assert table.labels is None and len(table.partial_labels.rows) == 20
    assert "40 of 60 rows have no label in 'y'" in table.warning
    fit, test = train_test_sources(table)  # the labelled rows, split 80/20
    assert len(fit) + len(test) == 20 and fit.name == "DataFrame[labelled][fit]"
    codes = [int(c) for c in np.concatenate([fit.labels, test.labels])]
    assert sorted(fit.classes[c] for c in codes) == sorted(frame["y"].dropna().astype(str).tolist())


def test_a_partially_labelled_table_trains_on_all_rows_evaluates_and_adapts_on_labels(
    tmp_path,
):
    frame = make_table(n=200).assign(y=lambda f: f["y"].where(np.arange(200) % 4 == 0))
    path = tmp_path / "records.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "run"
    args = ["pretrain", str(path), "--label-column", "y", "--epochs", "1", "--batch-size", "32",
            "--out", str(out), "--monitor-items", "0"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "200 tabular items, 50 of them labelled in 3 classes" in result.output
    run = selfsup.load(out)
    assert run.summary["items"] == 200
    evaluation = run.evaluate(str(path), save=False)
    assert evaluation.train_items + evaluation.test_items == 50
    model = adapt(run, str(path), head="prototype")
    assert model.metrics["labelled"] == 50 and sorted(model.classes) == ["x", "y", "z"]
    # Label propagation spreads the 10 shots over the other labelled rows and the 150
    # unlabelled rows of the same file, with no --unlabeled.
    spread = adapt(run, str(path), head="propagation", shots=10).metrics["propagation"]
    assert spread["unlabelled"] == 20 + 150
    embeddings = tmp_path / "e.parquet"
    result = CliRunner().invoke(app, ["embed", str(out), str(path), "--out", str(embeddings)])
    assert result.exit_code == 0, result.output
    labels = pq.read_table(embeddings).column("label").to_pylist()
    assert len(labels) == 200 and labels[0] == frame["y"][0] and labels[1] is None
    # What to label next: never a labelled row; uncertainty fits on the labelled rows.
    for strategy in ("typiclust", "uncertainty"):
        picks = select_for_run(run, str(path), budget=30, strategy=strategy)
        assert len(picks) == 30 and all(int(i) % 4 != 0 for i in picks["id"])
    # The report's map colours labelled rows by class and the others as "(no label)"; its
    # 40 items hold 20 labelled rows first (half), not the 10 of 40 evenly spaced rows.
    sample = sample_embeddings(run, str(path), 40, None)
    assert sample.colour_by == "label" and len(sample.rows) == 40
    assert sample.colours == [frame["y"][i] if i % 4 == 0 else "(no label)" for i in sample.rows]
    assert sum(colour != "(no label)" for colour in sample.colours) >= 20


def test_sensor_logs_labelled_on_some_periods(tmp_path):
    # Two units logged for 12 steps; the machine state was noted on unit a's first half only.
    frame = pd.DataFrame(
        {
            "unit": ["a"] * 12 + ["b"] * 12,
            "t": list(range(12)) * 2,
            "x": np.arange(24, dtype=float),
            "state": ["ok"] * 3 + ["fault"] * 3 + [None] * 18,
        }
    )
    windows = series_from_frame(
        frame, id_column="unit", time_column="t", label_column="state", window=3
    )
    assert list(windows.ids) == ["a@0", "a@3", "a@6", "a@9", "b@0", "b@3", "b@6", "b@9"]
    assert windows.labels is None and item_labels(windows)[:3] == ["ok", "fault", None]
    assert windows.warning == (
        "6 of 8 items have no label in 'state': all items are read to pretrain and embed, the "
        "2 labelled ones to evaluate and adapt"
    )
    once = frame.assign(state=["ok"] * 3 + [None] * 21)  # a series' label on some steps
    whole = series_from_frame(once, id_column="unit", time_column="t", label_column="state")
    assert item_labels(whole) == ["ok", None]
    wide = series_from_frame(
        pd.DataFrame({"t0": [1.0, 2.0, 3.0], "t1": [4.0, 5.0, 6.0], "y": [1, None, 0]}),
        label_column="y",
    )
    assert item_labels(wide) == ["1", None, "0"]
    cut = windowed(wide, 1)  # windows labelled as their series, the note counts windows
    assert item_labels(cut) == ["1", "1", None, None, "0", "0"]
    assert cut.warning.startswith("2 of 6 items have no label in 'y'")


def test_anomaly_scores_of_a_partially_labelled_table_are_judged_on_its_labelled_rows(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    fraud = rng.random(n) < 0.1
    spread = np.where(fraud, 8.0, 1.0)  # anomalies scattered far from the normal cloud
    frame = pd.DataFrame({f"v{k}": rng.normal(0, 1, n) * spread for k in range(4)})
    frame["fraud"] = np.where(fraud, "yes", "no").astype(object)
    frame.loc[np.arange(n) % 2 == 1, "fraud"] = None  # half the rows looked at
    run = selfsup.pretrain(frame, label_column="fraud", epochs=1, batch_size=64,
                           out=tmp_path / "run", monitor_items=0, show_progress=False,
                           backbone_options={"hidden": 16, "depth": 1})  # fmt: skip
    report = score_for_run(run, frame, anomaly_labels=["yes"])
    assert len(report.table) == n
    assert report.quality is not None and report.quality.items == n // 2
    assert report.quality.anomalies == int(fraud[::2].sum()) and report.quality.auroc > 0.9


def test_pretraining_reports_an_online_probe_on_the_labelled_rows(tmp_path):
    frame = make_table(n=400, missing=0.0)
    frame["y"] = frame["y"].where(np.arange(400) % 2 == 0)  # half the rows labelled
    run = selfsup.pretrain(frame, label_column="y", epochs=3, batch_size=32,
                           out=tmp_path / "run", monitor_items=64, show_progress=False,
                           backbone_options={"hidden": 16, "depth": 1})  # fmt: skip
    epochs = pd.read_csv(run.path / "epochs.csv")
    assert epochs["online_probe"].notna().all() and epochs["online_probe"].iloc[-1] > 0.5
    held_out = run.summary["held_out_items"]
    assert 0 < epochs["online_probe_items"].iloc[-1] < held_out  # its labelled items only


def test_datasets_show_counts_the_labelled_rows_of_a_file(tmp_path):
    path = tmp_path / "reviews.jsonl"
    rows = [{"body": f"text {i}"} for i in range(6)]
    rows[0]["stars"], rows[2]["stars"], rows[3]["stars"] = 5, 1, 5
    write_jsonl(path, rows)
    args = ["datasets", "show", str(path), "--text-column", "body", "--label-column", "stars"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output[result.output.index("{") :])
    assert shown["items"] == 6 and shown["classes"] == {"1": 1, "5": 2}
    assert shown["without_label"] == 3 and "3 of 6 rows have no label" in shown["warning"]


def test_a_few_labels_among_many_rows_are_voted_by_knn_at_each_measurement(tmp_path):
    frame = make_table(n=800, missing=0.0)
    labelled = np.arange(800) % 20 == 0  # 40 labelled rows: one in 20
    frame["y"] = frame["y"].where(labelled)
    run = selfsup.pretrain(frame, label_column="y", epochs=2, batch_size=32,
                           out=tmp_path / "run", monitor_items=64, show_progress=False,
                           select_by="labelled_knn",
                           backbone_options={"hidden": 16, "depth": 1})  # fmt: skip
    epochs = pd.read_csv(run.path / "epochs.csv")
    held_out = held_out_rows(800, 64)
    trained_on = int(labelled.sum() - labelled[held_out].sum())
    assert labelled[held_out].sum() < 10  # too few for the online probe's held-out accuracy
    assert "online_probe" not in epochs or epochs["online_probe"].isna().all()
    assert (epochs["labelled_knn_items"] == trained_on).all()
    assert epochs["labelled_knn"].between(0.5, 1.0).all()  # three clusters: well above 1/3
    log = (run.path / "train.log").read_text()
    start = run.summary["labelled_knn_start"]  # the starting weights': what to read against
    assert f"kNN before training: {start:.3f} on the {trained_on} labelled training" in log
    assert f"({start:.3f} before training) on the {trained_on} labelled training items" in log
    best = epochs.loc[epochs["labelled_knn"].idxmax(), "epoch"]
    selected = run.summary["selected"]
    assert selected["by"] == "labelled_knn" and selected["epoch"] == best
    assert selected["value"] == pytest.approx(epochs["labelled_knn"].max())
    assert epochs["online_probe_train"].notna().all()  # 1.6 labelled rows a batch of 32
    # One labelled row in 40 and batches of 16: a batch holds 0.4, and the online probe,
    # which would learn from a row every few steps, is left out for the kNN vote.
    frame["y"] = frame["y"].where(np.arange(800) % 40 == 0)
    rare = selfsup.pretrain(frame, label_column="y", epochs=1, batch_size=16,
                            out=tmp_path / "rare", monitor_items=64, show_progress=False,
                            backbone_options={"hidden": 16, "depth": 1})  # fmt: skip
    epochs = pd.read_csv(rare.path / "epochs.csv")
    assert "online_probe_train" not in epochs and epochs["labelled_knn"].notna().all()
