"""End to end through the command line: pretrain, embed, evaluate on digits in seconds."""

import json
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from selfsup.cli import _warning_line, app

runner = CliRunner()


def _invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    config = out.parent / "fast.yaml"
    config.write_text("backbone_options: {width: 8}\nlog_every: 5\n")
    started = time.perf_counter()
    _invoke("pretrain", "digits", "--method", "simclr", "--epochs", "3", "--batch-size", "128",
            "--out", str(out), "--config", str(config))  # fmt: skip
    return out, time.perf_counter() - started


def test_pretrain_writes_a_complete_run_folder_in_seconds(digits_run) -> None:
    out, seconds = digits_run
    assert seconds < 60
    for name in ("config.yaml", "encoder.safetensors", "encoder.json", "metrics.csv",
                 "epochs.csv", "train.json", "checkpoints/last.ckpt"):  # fmt: skip
        assert (out / name).exists(), name
    assert list((out / "tensorboard").iterdir())
    summary = json.loads((out / "train.json").read_text())
    # The digits train split has 1438 images; a tenth (143) is held out for monitoring.
    assert summary["held_out_items"] == 143
    assert summary["steps"] == 3 * ((1438 - 143) // 128)
    epochs = pd.read_csv(out / "epochs.csv")
    # The monitor measures after the first and the last epoch; the one between while its
    # time stays under MONITOR_SHARE of training's, which a loaded machine can tip.
    assert list(epochs["epoch"]) in ([1, 2, 3], [1, 3])
    assert {"rankme", "alpha_req", "online_probe", "online_probe_train"} <= set(epochs.columns)
    assert epochs["online_probe"].iloc[-1] > 0.3  # ten classes: chance is 0.1
    assert (out / "skipped.txt").read_text() == ""
    spec = json.loads((out / "encoder.json").read_text())
    assert "center" not in spec and "center_items" not in summary  # series only


def test_embed_writes_npy_and_parquet_in_input_order(digits_run, tmp_path) -> None:
    out, _ = digits_run
    _invoke(
        "embed", str(out), "digits:test", "--out", str(tmp_path / "e.npy"), "--batch-size", "100"
    )
    _invoke(
        "embed", str(out), "digits:test", "--out", str(tmp_path / "e.parquet"), "--batch-size", "64"
    )
    array = np.load(tmp_path / "e.npy")
    table = pd.read_parquet(tmp_path / "e.parquet")
    assert array.shape == (359, 64) and array.dtype == np.float32
    assert list(table.columns) == ["id", "label", "readable", "embedding"]
    assert table["id"].tolist() == [str(i) for i in range(359)]
    np.testing.assert_allclose(np.stack(table["embedding"]), array, rtol=1e-5, atol=1e-5)


def test_embed_does_not_replace_an_existing_file_unasked(digits_run, tmp_path) -> None:
    out, _ = digits_run
    target = tmp_path / "e.npy"
    np.save(target, np.zeros((2, 3), np.float32))  # another model's embeddings
    refused = runner.invoke(app, ["embed", str(out), "digits:test", "--out", str(target)])
    assert refused.exit_code != 0 and isinstance(refused.exception, FileExistsError)
    assert "give --overwrite" in str(refused.exception)
    assert np.load(target).shape == (2, 3)  # untouched
    _invoke("embed", str(out), "digits:test", "--out", str(target), "--overwrite")
    assert np.load(target).shape == (359, 64)


def test_embed_and_evaluate_ask_for_the_gpu_when_one_is_present(
    digits_run, tmp_path, monkeypatch
) -> None:
    """Where CUDA is present, ``embed`` and ``evaluate`` load the encoder onto it (``auto``);
    here the CPU stands in for it, the request is what is checked."""
    import torch

    import selfsup.core.precision as precision
    import selfsup.run

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert precision.embedding_device("auto") == torch.device("cuda")
    asked: list[str] = []

    def place(device: str = "auto") -> torch.device:
        asked.append(str(device))
        return torch.device("cpu")

    monkeypatch.setattr(selfsup.run, "embedding_device", place)
    out, _ = digits_run
    _invoke("embed", str(out), "digits:test", "--out", str(tmp_path / "e.npy"))
    _invoke("evaluate", str(out), "digits", "--protocol", "knn")
    _invoke("export", str(out), "--format", "safetensors", "--out", str(tmp_path / "x"))
    assert asked == ["auto", "auto", "cpu"]  # export checks parity against the CPU


def test_evaluate_label_free_reads_no_labels(digits_run, tmp_path) -> None:
    out, _ = digits_run
    unlabeled = tmp_path / "unlabeled.npy"
    np.save(unlabeled, np.random.default_rng(0).integers(0, 255, (300, 8, 8), dtype=np.uint8))
    result = _invoke("evaluate", str(out), str(unlabeled), "--label-free", "--items", "200")
    assert "RankMe" in result.output and "not collapsed" in result.output
    saved = json.loads((out / "label-free-unlabeled.npy.json").read_text())
    assert saved["items"] == 200 and 1 <= saved["rankme"] <= saved["dim"]


def test_evaluate_prints_the_table_and_saves_json(digits_run) -> None:
    out, _ = digits_run
    result = _invoke(
        "evaluate", str(out), "digits", "--protocol", "knn,linear,fewshot", "--shots", "5"
    )
    assert "raw input" in result.output and "fewshot-5" in result.output
    saved = json.loads((out / "evaluation-digits.json").read_text())
    assert [r["protocol"] for r in saved["rows"]] == ["knn", "linear", "fewshot-5"]
    assert all(0 < r["selfsup"] <= 1 and 0 < r["raw"] <= 1 for r in saved["rows"])


def test_a_data_option_of_another_modality_is_refused_not_ignored(digits_run, tmp_path) -> None:
    """`--window 5` on a table (or images) was silently ignored."""
    out, _ = digits_run
    result = runner.invoke(app, ["embed", str(out), "digits", "--window", "5", "--out",
                                 str(tmp_path / "e.npy")])  # fmt: skip
    assert result.exit_code != 0 and not (tmp_path / "e.npy").exists()
    message = str(result.exception)
    assert message.startswith("--window: not read by image data") and "--image-size" in message


def test_bad_input_gets_a_one_line_error_naming_it(tmp_path) -> None:
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    from selfsup.cli import main

    for data in (str(empty), "no-such-dataset"):
        with pytest.raises(SystemExit) as exit_info:
            import sys

            sys.argv = ["selfsup", "pretrain", data, "--epochs", "1"]
            main()
        assert exit_info.value.code == 2


def test_help_shows_an_example() -> None:
    for command in ("pretrain", "embed", "evaluate", "demo"):
        result = _invoke(command, "--help")
        assert "Example" in result.output


def test_tables_to_a_pipe_are_not_cut_to_80_columns() -> None:
    """An audit's eight groups were printed as 'accur…' and '(1248…' to a pipe."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    code = "from selfsup.console import console, PIPE_WIDTH; print(console.width == PIPE_WIDTH)"
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert found.stdout.strip() == "True"


def test_every_command_prints_the_datas_warning_as_one_line(tmp_path) -> None:
    """A warning about the data (here a window of a sensor log without any value, left out)
    is printed by embed as by pretrain: one line, as main() prints a DataWarning."""
    values = np.arange(40.0)
    values[25:30] = np.nan  # unit p2's second window
    log = pd.DataFrame({"unit": ["p1"] * 20 + ["p2"] * 20, "t": list(range(20)) * 2,
                        "v": values})  # fmt: skip
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    run = str(tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _warning_line
        _invoke("pretrain", str(path), "--modality", "series", "--id-column", "unit",
                "--time-column", "t", "--window", "5", "--steps", "1", "--batch-size", "4",
                "--out", run)  # fmt: skip
        result = _invoke("embed", run, str(path), "--out", str(tmp_path / "e.npy"))
    lines = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert lines == [f"warning: {path}: 1 window without any value left out"]
    assert np.load(tmp_path / "e.npy").shape[0] == 7


def test_a_collapse_is_said_once_by_training_not_again_as_a_python_warning(
    capsys, monkeypatch
) -> None:
    """Distilling a teacher whose embeddings barely vary: the collapse was printed as
    training's warning line, then again with the source file and line of the warning."""
    import selfsup.cli
    from selfsup.engine.monitor import CollapseWarning

    passed_on = []
    monkeypatch.setattr(selfsup.cli, "_python_warning", lambda *args: passed_on.append(args))
    _warning_line(CollapseWarning("the embeddings collapsed at epoch 1"), CollapseWarning,
                  "/src/selfsup/engine/train.py", 919)  # fmt: skip
    _warning_line(UserWarning("something else"), UserWarning, "/x.py", 3)
    printed = capsys.readouterr()
    assert "collapsed" not in printed.out + printed.err
    assert [str(args[0]) for args in passed_on] == ["something else"]


def test_embed_through_a_pretrained_model_suggests_a_student_when_it_will_take_long(
    digits_run, tmp_path, monkeypatch
) -> None:
    from tests.hf_models import TEXTS, save_tiny_bert

    import selfsup.cli.results as results
    import selfsup.core.progress as progress

    monkeypatch.setenv("SELFSUP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(progress, "HINT_AFTER", 0.0)
    monkeypatch.setattr(results, "DISTILL_HINT_SECONDS", 0.0)  # every embedding is long here
    bert = save_tiny_bert(tmp_path / "bert")
    pd.DataFrame({"body": TEXTS}).to_csv(tmp_path / "t.csv", index=False)
    said = _invoke("embed", f"hf:{bert}", str(tmp_path / "t.csv"), "--text-column", "body",
                   "--out", str(tmp_path / "t.npy")).output  # fmt: skip
    command = (
        f"selfsup pretrain {tmp_path / 't.csv'} --text-column body --method distill --teacher "
        f"hf:{bert} --time-budget 10 --out runs/student"
    )
    assert said.count("a smaller student distilled from this model") == 1, said
    assert command in " ".join(said.split()), said  # the line may wrap
    out, _ = digits_run  # a small model of selfsup's own: nothing to suggest
    said = _invoke("embed", str(out), "digits:test", "--out", str(tmp_path / "d.npy")).output
    assert "distilled" not in said
