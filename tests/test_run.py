"""The Python API: pretrain with a custom module, reload from the folder, config errors."""

import numpy as np
import pytest
import torch
from torch import nn

import selfsup
from selfsup.config import ConfigError, load_config


class TinyNet(nn.Module):
    feature_dim = 16

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


def test_custom_module_trains_and_reloads_with_the_same_embeddings(tmp_path, clusters_npz) -> None:
    run = selfsup.pretrain(
        clusters_npz, backbone=TinyNet(), method="barlowtwins", epochs=1, batch_size=64,
        out=tmp_path / "run", show_progress=False, method_options={"projection_dim": 32,
        "hidden_dim": 32},
    )  # fmt: skip
    before = run.embed(clusters_npz)
    with pytest.raises(ValueError, match="custom backbone"):
        selfsup.load(run.path)
    again = selfsup.load(run.path, backbone=TinyNet())
    np.testing.assert_allclose(again.embed(clusters_npz), before, rtol=1e-4, atol=1e-4)


def test_load_rebuilds_a_registered_backbone_from_the_folder_alone(tmp_path, clusters_npz) -> None:
    run = selfsup.pretrain(
        clusters_npz, method="simclr", epochs=1, batch_size=64, out=tmp_path / "run",
        show_progress=False, backbone_options={"width": 4}, precision="fp32",
    )  # fmt: skip
    again = selfsup.load(run.path)
    assert again.config["method"] == "simclr"
    # Equal weights; oneDNN may pick other kernels for the trained (channels-last) copy.
    np.testing.assert_allclose(again.embed(clusters_npz), run.embed(clusters_npz), atol=1e-6)


def test_config_errors_name_the_file_and_the_field(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: digits\nbatch_size: 0\nunknown_option: 1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*batch_size.*unknown_option"):
        load_config(bad)
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    assert load_config(None, data="digits", epochs=3).epochs == 3


def test_a_folder_holding_a_run_is_refused_unless_overwrite(tmp_path) -> None:
    import pytest

    from selfsup.config import ConfigError
    from selfsup.run import pretrain

    out = tmp_path / "run"
    options = {"epochs": 1, "backbone_options": {"width": 4}, "show_progress": False}
    pretrain("digits", out=str(out), **options)
    (out / "evaluation-old.json").write_text("{}")  # what the old run had written later
    before = (out / "encoder.safetensors").read_bytes()
    with pytest.raises(ConfigError, match=r"holds a run already.*--overwrite"):
        pretrain("digits", out=str(out), method="vicreg", **options)
    assert (out / "encoder.safetensors").read_bytes() == before
    run = pretrain("digits", out=str(out), method="vicreg", overwrite=True, **options)
    assert run.config["method"] == "vicreg" and run.config["overwrite"] is False
    assert not (out / "evaluation-old.json").exists()


def test_a_tampered_run_config_is_named_in_one_line(tmp_path, clusters_npz) -> None:
    from selfsup.run import load, pretrain

    run = pretrain(clusters_npz, epochs=1, batch_size=32, out=tmp_path / "run",
                   backbone_options={"width": 8}, show_progress=False, monitor_items=0)  # fmt: skip
    config = run.path / "config.yaml"
    good = config.read_text()
    cases = {
        "modality: ../../x\n": "modality: unknown modality",
        "batch_size: -3\n": "batch_size",
        "lr: !!python/object/apply:os.system ['echo hacked']\n": "not a run's config",
        "surprise: 1\n": "surprise: Extra inputs are not permitted",
    }
    for line, message in cases.items():
        config.write_text(good + line)
        with pytest.raises(ValueError, match=message):
            load(run.path)
    config.write_text(good)
    assert load(run.path).config == run.config


def test_an_encoder_spec_that_does_not_fit_its_weights_is_refused_before_allocating(
    tmp_path, clusters_npz
) -> None:
    import json

    from selfsup.run import load, pretrain

    run = pretrain(clusters_npz, epochs=1, batch_size=32, out=tmp_path / "run",
                   backbone_options={"width": 8}, show_progress=False, monitor_items=0)  # fmt: skip
    spec_path = run.path / "encoder.json"
    spec = json.loads(spec_path.read_text())
    spec["options"]["width"] = 200_000  # about 2.9 TB of weights if it were built
    spec_path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="the spec does not belong to these weights"):
        load(run.path)


def test_a_relative_data_path_is_kept_absolute_so_resume_works_from_elsewhere(
    tmp_path, clusters_npz, monkeypatch
) -> None:
    monkeypatch.chdir(clusters_npz.parent)
    run = selfsup.pretrain(clusters_npz.name, steps=2, batch_size=32, out=tmp_path / "run",
                   backbone_options={"width": 8}, monitor_items=0, show_progress=False)  # fmt: skip
    assert run.config["data"] == str(clusters_npz.resolve())
    monkeypatch.chdir(tmp_path)  # elsewhere: the relative name means nothing here
    resumed = selfsup.pretrain(resume=tmp_path / "run", steps=4, show_progress=False)
    assert resumed.summary["steps"] == 4
