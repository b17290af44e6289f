"""Tables end to end: pretrain from Python and the CLI, reload with the saved encoding."""

import json

import numpy as np
import pytest
from tests.modalities.tabular.conftest import make_table
from typer.testing import CliRunner

import selfsup
from selfsup.cli import app


def test_dataframe_pretrain_evaluate_and_reload(tmp_path, monkeypatch):
    frame = make_table(n=200)
    run = selfsup.pretrain(
        frame,
        label_column="y",
        epochs=2,
        batch_size=32,
        out=tmp_path / "run",
        backbone_options={"hidden": 16, "depth": 2},
        show_progress=False,
    )
    assert run.config["method"] == "vime" and run.config["modality"] == "tabular"
    assert (run.path / "preprocess.json").exists()
    again = selfsup.load(run.path)
    np.testing.assert_allclose(again.embed(frame), run.embed(frame), atol=1e-5)
    import selfsup.evaluation.report as report

    fitted = []
    probe = report.linear_probe
    monkeypatch.setattr(report, "linear_probe", lambda *a, **k: fitted.append(1) or probe(*a, **k))
    result = run.evaluate(frame)
    assert [r.protocol for r in result.rows] == ["linear", "auroc", "knn"]
    assert len(fitted) == 2  # one probe per feature kind serves linear and auroc
    metrics = run.evaluate_label_free(frame.drop(columns=["y"]), items=100)
    assert 1 <= metrics.rankme <= 16
    assert all(0 <= r.selfsup <= 1 and 0 <= r.raw <= 1 for r in result.rows)
    (run.path / "preprocess.json").unlink()  # a run folder copied without its encoding
    with pytest.raises(FileNotFoundError, match=r"preprocess\.json is missing"):
        selfsup.load(run.path).embed(frame)  # not a table encoded anew, with other scales


def test_csv_from_the_cli_with_vime(tmp_path):
    path = tmp_path / "records.csv"
    make_table(n=120).assign(record=lambda f: [f"r{i}" for i in range(len(f))]).to_csv(
        path, index=False
    )
    out = tmp_path / "run"
    args = [
        "pretrain",
        str(path),
        "--method",
        "vime",
        "--label-column",
        "y",
        "--drop-columns",
        "record",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["evaluate", str(out), str(path)])
    assert result.exit_code == 0, result.output
    saved = json.loads(next(out.glob("evaluation-*.json")).read_text())
    assert [r["protocol"] for r in saved["rows"]] == ["linear", "auroc", "knn"]
    embeddings = tmp_path / "e.npy"
    result = CliRunner().invoke(app, ["embed", str(out), str(path), "--out", str(embeddings)])
    assert result.exit_code == 0, result.output
    assert np.load(embeddings).shape == (120, 256)


def test_a_label_column_read_as_a_feature_is_warned_and_never_evaluated(tmp_path):
    """Pretrained without --label-column, a column named y is an input: pretrain warns, and
    evaluating with y as the labels is refused (the encoder reads them: accuracy 1.0)."""
    path = tmp_path / "table.csv"
    make_table(n=120).to_csv(path, index=False)
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["pretrain", str(path), "--epochs", "1", "--batch-size", "32", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "warning: column 'y' looks like labels but is read as input;" in result.output
    with_labels = ["evaluate", str(out), str(path), "--label-column", "y"]
    result = CliRunner().invoke(app, with_labels)  # main() turns it into one line, exit 2
    assert isinstance(result.exception, ValueError)
    assert "'y' holds the labels here, but the run's encoder reads it as an input" in str(
        result.exception
    )


def test_category_codes_reach_the_encoder_exactly_under_bf16(tmp_path):
    """Lightning cast the inputs to bf16 before the objective saw them: code 597 of a 599-shop
    column reached the embedding as 596, and VIME's targets 598 and 599 became 600, outside
    its 600 classes (IndexError after 46 s on 3 million transactions)."""
    import pandas as pd

    from selfsup.backbones.mlp import TabularMLP

    n = 1_198
    frame = pd.DataFrame({"shop": [f"s{i % 599}" for i in range(n)], "x": np.arange(n) / n})
    seen: list[float] = []
    forward = TabularMLP.forward

    def spy(self, x):
        seen.extend(x[:, self.numeric :].flatten().tolist())
        return forward(self, x)

    TabularMLP.forward = spy
    try:
        for method in ("scarf", "vime"):
            selfsup.pretrain(
                frame,
                method=method,
                steps=3,
                batch_size=1_198,
                precision="bf16",
                out=tmp_path / method,
                backbone_options={"hidden": 16, "depth": 1},
                show_progress=False,
            )
    finally:
        TabularMLP.forward = forward
    assert {597.0, 598.0, 599.0} <= set(seen)  # bf16 has 596 and 600 alone there
