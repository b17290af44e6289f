"""The command line derived from the config: every field an option, data options everywhere,
one-line errors with --traceback for the whole story."""

import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from selfsup.cli import app
from selfsup.cli.options import DATA_FIELDS, parse_mapping, to_config_values
from selfsup.config import PretrainConfig

runner = CliRunner()


def _help(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_config_field_is_a_pretrain_option_with_its_default_shown() -> None:
    text = _help("pretrain")
    for name in PretrainConfig.model_fields:
        if name == "data":
            continue
        assert "--" + name.replace("_", "-") in text, name
    assert "[default: (adamw)]" in text and "[default: (1)]" in text  # optimizer, devices
    assert "from the data" in text


@pytest.mark.parametrize("command", ["embed", "evaluate", "adapt", "predict", "select",
                                     "anomalies", "audit", "explain", "report"])  # fmt: skip
def test_every_command_that_reads_data_takes_the_data_options(command) -> None:
    text = _help(command)
    for name in DATA_FIELDS:
        assert "--" + name.replace("_", "-") in text, (command, name)


def test_values_are_parsed_as_the_config_wants_them() -> None:
    values = to_config_values(
        {"backbone_options": "width=8,pool=mean", "drop_columns": "id, name", "epochs": None,
         "views": "{crop_scale: [0.2, 1.0]}"}
    )  # fmt: skip
    assert values == {
        "backbone_options": {"width": 8, "pool": "mean"},
        "drop_columns": ["id", "name"],
        "views": {"crop_scale": [0.2, 1.0]},
    }
    with pytest.raises(Exception, match="expected key=value"):
        parse_mapping("width")


def test_options_given_on_the_command_line_reach_the_run(tmp_path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("epochs: 1\nmonitor_items: 0\n")
    out = tmp_path / "run"
    result = runner.invoke(app, ["pretrain", "digits", "--config", str(config), "--out", str(out),
                                 "--backbone-options", "width=4", "--weight-decay", "0.01",
                                 "--no-online-probe", "--warmup-epochs", "0.5"])  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = (out / "config.yaml").read_text()
    for line in ("weight_decay: 0.01", "online_probe: false", "warmup_epochs: 0.5", "width: 4",
                 "epochs: 1"):  # fmt: skip
        assert line in saved, line


def test_embed_takes_the_text_column_of_new_data(tmp_path) -> None:
    from tests.modalities.text.conftest import make_texts

    texts, labels = make_texts(120)
    pd.DataFrame({"body": texts, "y": labels}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"review": texts[:10]}).to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "run"
    result = runner.invoke(app, ["pretrain", str(tmp_path / "train.csv"), "--text-column", "body",
                                 "--epochs", "1", "--out", str(out), "--monitor-items", "0",
                                 "--backbone-options", "dim=16,depth=1,heads=2",
                                 "--vocab-size", "300"])  # fmt: skip
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["embed", str(out), str(tmp_path / "new.csv"), "--text-column",
                                 "review", "--out", str(tmp_path / "e.parquet")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(tmp_path / "e.parquet")) == 10


def test_expected_errors_are_one_line_and_traceback_shows_the_rest(tmp_path) -> None:
    command = [sys.executable, "-m", "selfsup", "pretrain", str(tmp_path / "missing.csv")]
    plain = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 2
    # Before it, pretrain only says it is loading its libraries.
    lines = [line for line in plain.stdout.splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith("selfsup pretrain: loading")]
    assert len(errors) == 1 and errors[0].startswith("error:"), plain.stdout
    assert "missing.csv" in errors[0] and "Traceback" not in plain.stdout + plain.stderr
    full = subprocess.run([*command, "--traceback"], capture_output=True, text=True, timeout=120)
    assert full.returncode != 0 and "Traceback (most recent call last)" in full.stderr


def test_a_run_of_few_steps_says_so_before_it_starts(tmp_path) -> None:
    result = runner.invoke(app, ["pretrain", "digits", "--epochs", "1", "--batch-size", "128",
                                 "--backbone-options", "width=4", "--monitor-items", "0",
                                 "--out", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 0, result.output
    # 1438 items in batches of 128: 11 steps.
    assert "only 11 optimizer steps planned" in result.output
