"""SCARF and VIME: hand-computed losses, corruption, gradients, and a short training run."""

import math

import numpy as np
import pytest
import torch
from tests.modalities.tabular.conftest import make_table

import selfsup
from selfsup.evaluation.knn import knn_accuracy
from selfsup.methods import SCARF, VIME
from selfsup.methods.scarf import scarf_loss
from selfsup.methods.vime import vime_loss
from selfsup.modalities.tabular import build_tabular_encoder
from selfsup.views import marginal_corruption


def test_scarf_loss_matches_a_hand_computation():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    p = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    cos = lambda u, v: float(u @ v / (u.norm() * v.norm()))  # noqa: E731
    tau = 0.5
    expected = 0.0
    for i in range(2):
        scores = [cos(a[i], p[k]) / tau for k in range(2)]
        expected += -scores[i] + math.log(sum(math.exp(s) for s in scores))
    assert scarf_loss(a, p, tau).item() == pytest.approx(expected / 2, rel=1e-6)


def test_vime_loss_matches_a_hand_computation():
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0]])
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    bce = -(math.log(sig(2.0)) + math.log(1 - sig(-1.0)) + math.log(sig(0.0))) / 3
    numeric_pred, numeric_true = torch.tensor([[0.5, 1.0]]), torch.tensor([[1.5, 1.0]])
    cat_logits = [torch.tensor([[0.0, math.log(3.0)]])]  # softmax (1/4, 3/4)
    cat_true = torch.tensor([[1.0]])
    reconstruction = (1.0 + 0.0 + -math.log(0.75)) / 3
    got = vime_loss(logits, mask, numeric_pred, numeric_true, cat_logits, cat_true, alpha=2.0)
    assert got.item() == pytest.approx(bce + 2.0 * reconstruction, rel=1e-6)


def test_marginal_corruption_takes_values_from_the_same_column():
    torch.manual_seed(0)
    x = torch.arange(40.0).view(10, 4) * torch.tensor([1.0, 100.0, 1e4, 1e6])
    corrupted, mask = marginal_corruption(x, 0.5)
    assert (mask.sum(dim=1) == 2).all()
    for j in range(4):
        assert torch.isin(corrupted[:, j], x[:, j]).all()
    assert torch.equal(corrupted[~mask], x[~mask])


@pytest.mark.parametrize("method_class", [SCARF, VIME])
def test_gradients_reach_the_backbone(method_class):
    encoder = build_tabular_encoder(numeric=3, cardinalities=[4], hidden=16, depth=2)
    method = method_class(encoder)
    x = torch.cat([torch.randn(8, 3), torch.randint(0, 4, (8, 1)).float()], dim=1)
    views = [x, marginal_corruption(x, 0.6)[0]] if method_class is SCARF else [x]
    method(views).backward()
    assert encoder.backbone.embeddings[0].weight.grad.abs().sum() > 0
    assert encoder.backbone.mlp[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("method", ["scarf", "vime"])
def test_short_training_separates_the_classes(method, tmp_path):
    frame = make_table(n=300, missing=0.0)
    run = selfsup.pretrain(
        frame.drop(columns=["y"]),
        method=method,
        epochs=15,
        batch_size=64,
        out=tmp_path / method,
        backbone_options={"hidden": 32, "depth": 2},
        show_progress=False,
        monitor_items=0,
    )
    emb = run.embed(frame.drop(columns=["y"]))
    labels = np.unique(frame["y"], return_inverse=True)[1]
    accuracy = knn_accuracy(emb[:200], labels[:200], emb[200:], labels[200:], k=10)
    assert accuracy > 0.7  # chance is 1/3
