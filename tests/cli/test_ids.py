"""Ids end to end: a CSV with an id column keeps its ids through embed, adapt/predict,
anomalies and select, and JSONL and text files follow the same row-id convention."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from selfsup.cli import app
from selfsup.data.text import load_text_file

runner = CliRunner()


def _invoke(*args: str) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ids")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 240)
    frame = pd.DataFrame(rng.normal(size=(240, 6)) + labels[:, None], columns=list("abcdef"))
    frame.insert(0, "customer", [f"cust-{i * 7 + 3:05d}" for i in range(240)])
    frame["label"] = labels
    frame.to_csv(folder / "rows.csv", index=False)
    run = folder / "run"
    _invoke("pretrain", folder / "rows.csv", "--id-column", "customer", "--label-column",
            "label", "--epochs", "2", "--out", run)  # fmt: skip
    return folder, run, frame


def test_ids_go_through_every_output(table_run) -> None:
    folder, run, frame = table_run
    data = folder / "rows.csv"
    wanted = frame["customer"].tolist()

    _invoke("embed", run, data, "--out", folder / "e.parquet")
    embedded = pd.read_parquet(folder / "e.parquet")
    assert embedded["id"].tolist() == wanted and embedded["readable"].all()
    _invoke("embed", run, data, "--out", folder / "e.npy")
    assert (folder / "e.ids.txt").read_text().splitlines() == wanted
    _invoke("embed", run, data, "--out", folder / "e.npz")
    packed = np.load(folder / "e.npz")  # no pickle: ids are a text array
    assert packed["ids"].tolist() == wanted and packed["embeddings"].shape[0] == 240

    _invoke("adapt", run, data, "--shots", "10", "--out", folder / "model")
    _invoke("predict", folder / "model", data, "--out", folder / "predictions.csv")
    predicted = pd.read_csv(folder / "predictions.csv")
    assert predicted["id"].tolist() == wanted

    _invoke("anomalies", run, data, "--out", folder / "scores.csv")
    assert pd.read_csv(folder / "scores.csv")["id"].tolist() == wanted

    _invoke("select", run, data, "--budget", "5", "--out", folder / "ranked.csv")
    chosen = pd.read_csv(folder / "ranked.csv")["id"].tolist()
    assert len(chosen) == 5 and set(chosen) <= set(wanted)
    # The id column is not a feature: the saved encoding does not know it.
    assert "customer" not in json.dumps(json.loads((run / "preprocess.json").read_text()))


def test_repeated_or_missing_ids_are_named(tmp_path) -> None:
    frame = pd.DataFrame({"key": ["a", "b", "a"], "x": [1.0, 2.0, 3.0]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    result = runner.invoke(app, ["pretrain", str(tmp_path / "t.csv"), "--id-column", "key"])
    assert isinstance(result.exception, ValueError)  # main() prints it as one line
    assert "t.csv: row 2 repeats the id 'a' of row 0" in str(result.exception)


def test_text_ids_follow_one_convention(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("first\n\nthird\n")
    assert list(load_text_file(tmp_path / "a.txt").ids) == ["0", "2"]  # line numbers from 0
    lines = [{"id": "r-9", "text": "one"}, {"id": "r-4", "text": "two"}]
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert list(load_text_file(tmp_path / "b.jsonl").ids) == ["r-9", "r-4"]  # "id" by default
    other = [{"key": 5, "text": "one"}, {"key": 6, "text": "two"}]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in other))
    assert list(load_text_file(tmp_path / "c.jsonl", id_column="key").ids) == ["5", "6"]
    assert list(load_text_file(tmp_path / "c.jsonl").ids) == ["0", "1"]
