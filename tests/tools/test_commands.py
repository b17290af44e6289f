"""The tools end to end: adapt, predict, select, anomalies, from the command line and as
Python calls."""

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from selfsup.cli import app

runner = CliRunner()


def _invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_adapt_then_predict_writes_probabilities(clusters_run, clusters_data, tmp_path) -> None:
    train, test = clusters_data
    model = tmp_path / "model"
    result = _invoke("adapt", clusters_run.path, train, "--out", model, "--shots", "5",
                     "--head", "prototype")  # fmt: skip
    assert "prototype head on 20 labels of 4 classes" in result.output
    saved = json.loads((model / "model.json").read_text())
    assert saved["head"] == "prototype" and saved["shots"] == 5 and saved["classes"] == list("0123")
    assert (model / "head.safetensors").exists() and not (model / "encoder.safetensors").exists()
    result = _invoke("predict", model, test, "--out", tmp_path / "p.csv")
    assert "accuracy:" in result.output
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == 64 and np.allclose(table[[f"p_{c}" for c in range(4)]].sum(axis=1), 1)
    result = _invoke("adapt", clusters_run.path, test, "--out", tmp_path / "spread",
                     "--head", "propagation", "--unlabeled", train)  # fmt: skip
    assert "propagation head on 64 labels" in result.output
    assert json.loads((tmp_path / "spread" / "model.json").read_text())["head"] == "propagation"
    # an adapted model's folder is not replaced unasked
    again = runner.invoke(app, ["adapt", str(clusters_run.path), str(train), "--out", str(model)])
    assert again.exit_code != 0 and "holds an adapted model already" in str(again.exception)
    assert json.loads((model / "model.json").read_text())["head"] == "prototype"
    _invoke("adapt", clusters_run.path, train, "--out", model, "--overwrite")
    assert json.loads((model / "model.json").read_text())["head"] == "linear"


def test_select_and_anomalies_write_their_tables(clusters_run, clusters_data, tmp_path) -> None:
    train, test = clusters_data
    _invoke("select", clusters_run.path, train, "--budget", "6", "--strategy", "kcenter",
            "--out", tmp_path / "ranked.csv")  # fmt: skip
    ranked = pd.read_csv(tmp_path / "ranked.csv")
    assert list(ranked.columns) == ["rank", "id", "score"] and len(ranked) == 6
    result = _invoke("anomalies", clusters_run.path, test, "--normal", train,
                     "--scorer", "mahalanobis", "--anomaly-label", "2",
                     "--out", tmp_path / "s.csv")  # fmt: skip
    assert "AUROC" in result.output
    # Output to a pipe: lines are not broken at 80 columns, in the middle of the path.
    assert f"written to {tmp_path / 's.csv'};" in result.output
    scores = pd.read_csv(tmp_path / "s.csv")
    assert list(scores.columns) == ["id", "score", "flagged"] and len(scores) == 64


def test_tables_written_before_are_not_replaced_unasked(
    clusters_run, clusters_data, tmp_path
) -> None:
    train, test = clusters_data
    for command in (["select", clusters_run.path, train, "--budget", "6"],
                    ["anomalies", clusters_run.path, test]):  # fmt: skip
        out = tmp_path / f"{command[0]}.csv"
        out.write_text("sent to the annotators\n")
        refused = runner.invoke(app, [str(a) for a in [*command, "--out", out]])
        assert refused.exit_code != 0 and isinstance(refused.exception, FileExistsError)
        assert out.read_text() == "sent to the annotators\n"
        _invoke(*command, "--out", out, "--overwrite")
        assert len(pd.read_csv(out)) > 1


def test_python_tools_show_the_progress_of_long_work_only(
    clusters_run, clusters_data, monkeypatch, capsys
) -> None:
    """From Python, as from the command line, embedding that takes a while is not silent
    (``show_progress="auto"``), and quick calls print nothing."""
    import selfsup.core.progress as progress
    from selfsup.tools.adapt import adapt
    from selfsup.tools.anomalies import score_for_run
    from selfsup.tools.selection import select_for_run

    train, test = clusters_data
    calls = {
        "select": lambda: select_for_run(clusters_run, train, 4, "kcenter"),
        "anomalies": lambda: score_for_run(clusters_run, test),
        "adapt": lambda: adapt(clusters_run, train, shots=5),
    }
    for name, call in calls.items():
        monkeypatch.setattr(progress, "AUTO_AFTER", 60.0)
        call()
        assert capsys.readouterr().out == "", name
        monkeypatch.setattr(progress, "AUTO_AFTER", 0.0)  # any work counts as long
        model = call()
        assert "embedding" in capsys.readouterr().out, name
    model.predict_proba(test)
    assert "embedding" in capsys.readouterr().out
