"""What a run folder holds while training: the encoder follows every checkpoint, and a run
that did not finish says so when it is used."""

import lightning
import numpy as np
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from selfsup.cli import app
from selfsup.config import PretrainConfig
from selfsup.data.arrays import ArraySource
from selfsup.engine.train import fit
from selfsup.methods import build_method
from selfsup.modalities.image import build_image_encoder, method_views
from selfsup.run import pretrain


def test_the_encoder_file_follows_each_epochs_checkpoint(tmp_path) -> None:
    source = ArraySource(np.random.default_rng(0).integers(0, 255, (64, 8, 8), dtype=np.uint8))
    method = build_method("simclr", build_image_encoder("small-cnn", 1, 8, width=4))
    cfg = PretrainConfig(data="-", epochs=1, batch_size=32, precision="fp32")
    fabric = lightning.Fabric(accelerator="cpu", devices=1)
    views, _ = method_views(method, 8, 1)
    fit(method, source, views, cfg, tmp_path, fabric, show_progress=False)
    saved = load_file(str(tmp_path / "encoder.safetensors"))
    for name, tensor in method.encoder.state_dict().items():
        torch.testing.assert_close(saved[name], tensor.contiguous())


def test_using_an_unfinished_run_warns(tmp_path) -> None:
    run = pretrain("digits", epochs=1, backbone_options={"width": 4}, out=str(tmp_path / "run"),
                   monitor_items=0, show_progress=False)  # fmt: skip
    assert run.finished
    (run.path / "train.json").unlink()  # as a run killed before its end leaves it
    result = CliRunner().invoke(
        app, ["embed", str(run.path), "digits:test", "--out", str(tmp_path / "e.npy")]
    )
    assert result.exit_code == 0, result.output
    assert "did not finish training" in result.output
