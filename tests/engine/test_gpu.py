"""Training, monitoring and evaluation on a CUDA GPU (skipped on machines without one).

The CPU suite cannot catch a tensor left on the wrong device; these tests run the whole path
on a GPU: views and loss on the device, the online probe and label-free monitor, then
embedding and evaluation from the saved encoder. MAE never runs its encoder on whole items
while training, so it has no online probe (as tests/engine/test_online_probe.py checks).
"""

import numpy as np
import pytest
import torch

import selfsup

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("simclr", {}),
        ("dino", {"method_options": {"hidden_dim": 64, "bottleneck_dim": 32, "out_dim": 128}}),
        (
            "mae",
            {"backbone": "vit-tiny", "backbone_options": {"patch_size": 4, "depth": 2}},
        ),
    ],
)
def test_pretrain_monitor_and_evaluate_on_the_gpu(
    method: str, options: dict, clusters_npz, tmp_path
) -> None:
    data = clusters_npz
    n = len(np.load(data)["y"])
    run = selfsup.pretrain(
        str(data),
        method=method,
        accelerator="gpu",
        epochs=2,
        batch_size=64,
        monitor_items=64,
        out=str(tmp_path / "run"),
        show_progress=False,
        **{"backbone_options": {"width": 8}, **options},
    )
    assert run.summary["precision"] in ("bf16-mixed", "16-mixed")
    epochs = (tmp_path / "run" / "epochs.csv").read_text()
    assert "rankme" in epochs
    assert ("online_probe" in epochs) == (method != "mae")
    result = run.evaluate(str(data), protocols=("knn", "linear"))
    assert all(0.0 <= row.selfsup <= 1.0 for row in result.rows)
    assert run.embed(str(data)).shape == (n, run.encoder.feature_dim)
