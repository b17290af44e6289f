"""Optimizers and the learning-rate schedule."""

import itertools

import pytest
import torch

from selfsup.engine.optim import LARS, build_optimizer, warmup_cosine


def test_warmup_then_cosine() -> None:
    lrs = [warmup_cosine(s, total_steps=110, warmup_steps=10, base_lr=1.0) for s in range(110)]
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.5)
    assert lrs[-1] < 0.001
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))


def test_lars_scales_the_step_by_the_trust_ratio() -> None:
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))  # norm 5
    opt = LARS([w], lr=1.0, momentum=0.0, weight_decay=0.0, eta=0.1)
    w.grad = torch.tensor([0.0, 10.0])  # norm 10 -> trust = 0.1 * 5 / 10 = 0.05
    opt.step()
    assert torch.allclose(w.detach(), torch.tensor([3.0, 3.5]))


def test_biases_and_norms_get_no_weight_decay() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    for name in ("adamw", "sgd", "lars"):
        opt = build_optimizer(name, model, lr=0.1, weight_decay=0.5)
        decayed = [p for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]]
        assert len(decayed) == 1 and decayed[0] is model[0].weight
    with pytest.raises(ValueError, match="adam2"):
        build_optimizer("adam2", model, lr=0.1, weight_decay=0.0)


def test_a_constant_schedule_holds_the_peak_after_warmup() -> None:
    lrs = [
        warmup_cosine(s, total_steps=50, warmup_steps=5, base_lr=0.5, constant=True)
        for s in range(50)
    ]
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[5:] == [0.5] * 45


def test_training_with_a_constant_schedule_logs_a_flat_learning_rate(
    tmp_path, clusters_npz
) -> None:
    import pandas as pd

    from selfsup.run import pretrain

    run = pretrain(
        clusters_npz, method="vicreg", epochs=4, batch_size=32, schedule="constant",
        warmup_epochs=0.0, lr=0.01, backbone_options={"width": 4}, log_every=2,
        method_options={"projection_dim": 16, "hidden_dim": 16}, out=tmp_path / "run",
        show_progress=False, monitor_items=0,
    )  # fmt: skip
    logged = pd.read_csv(run.path / "metrics.csv")["lr"]
    assert len(logged) > 3 and (logged == 0.01).all()
