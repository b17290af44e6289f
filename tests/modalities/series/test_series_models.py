"""Series backbones, views, the TS2Vec objective (hand-computed loss) and the SVM protocol."""

import math

import numpy as np
import pytest
import torch

from selfsup.backbones import build_series_backbone
from selfsup.evaluation.svm import svm_accuracy
from selfsup.methods import TS2Vec, build_method
from selfsup.methods.ts2vec import (
    hierarchical_contrastive_loss,
    instance_contrastive_loss,
    take_per_row,
    temporal_contrastive_loss,
)
from selfsup.modalities.series import SERIES, build_series_encoder
from selfsup.views import SeriesViews, series_recipe


def _nll(scores: list[float], positive: int) -> float:
    return -scores[positive] + math.log(sum(math.exp(s) for s in scores))


def _hand_contrastive(groups: list[list[torch.Tensor]]) -> float:
    """Mean over the rows of each group (view 1 rows, then view 2 rows) of the InfoNCE of a
    row against every other row of its group, its counterpart in the other view the match."""
    total, count = 0.0, 0
    for rows in groups:
        half = len(rows) // 2
        for i in range(len(rows)):
            others = [j for j in range(len(rows)) if j != i]
            scores = [float(rows[i] @ rows[j]) for j in others]
            total += _nll(scores, others.index(i + half if i < half else i - half))
            count += 1
    return total / count


def test_instance_and_temporal_losses_match_a_hand_computation():
    torch.manual_seed(0)
    z1, z2 = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    b, t = 3, 2
    # Instance-wise: at step s, view 1 of series i against all 2B - 1 other rows.
    per_step = [[z1[i, s] for i in range(b)] + [z2[i, s] for i in range(b)] for s in range(t)]
    expected = _hand_contrastive(per_step)
    assert instance_contrastive_loss(z1, z2).item() == pytest.approx(expected, rel=1e-5)
    # Temporal: in series i, view 1 of step s against the 2T - 1 other steps of both views.
    per_series = [[z1[i, s] for s in range(t)] + [z2[i, s] for s in range(t)] for i in range(b)]
    expected = _hand_contrastive(per_series)
    assert temporal_contrastive_loss(z1, z2).item() == pytest.approx(expected, rel=1e-5)


def test_the_hand_written_gradient_of_the_paired_loss_is_autograds():
    from selfsup.methods.ts2vec import _paired_nll

    torch.manual_seed(2)
    z = torch.randn(3, 6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_paired_nll, (z,))
    # the same gradient as autograd through a plain log-softmax over the other rows
    n = 3
    sim = z @ z.transpose(1, 2)
    off = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    pairs = torch.cat([torch.arange(n) + n, torch.arange(n)])
    plain = -off.log_softmax(-1)[:, torch.arange(2 * n), pairs].mean()
    (expected,) = torch.autograd.grad(plain, z)
    (got,) = torch.autograd.grad(_paired_nll(z), z)
    assert torch.allclose(got, expected, atol=1e-12)
    # under bf16 autocast the similarities stay fp32 (dot products of unnormalized features)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = _paired_nll(z.detach().float())
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(plain.item(), rel=1e-5)


def test_hierarchical_loss_averages_the_scales():
    torch.manual_seed(1)
    z1, z2 = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    pool = lambda z: torch.nn.functional.max_pool1d(z.transpose(1, 2), 2).transpose(1, 2)  # noqa: E731
    p1, p2 = pool(z1), pool(z2)
    q1, q2 = pool(p1), pool(p2)
    expected = (
        0.5 * instance_contrastive_loss(z1, z2)
        + 0.5 * temporal_contrastive_loss(z1, z2)
        + 0.5 * instance_contrastive_loss(p1, p2)
        + 0.5 * temporal_contrastive_loss(p1, p2)
        + 0.5 * instance_contrastive_loss(q1, q2)
    ) / 3
    got = hierarchical_contrastive_loss(z1, z2, alpha=0.5)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_take_per_row_and_overlap_alignment():
    x = torch.arange(20.0).view(2, 1, 10)
    assert take_per_row(x, torch.tensor([3, 0]), 4).tolist() == [
        [[3.0, 4.0, 5.0, 6.0]],
        [[10.0, 11.0, 12.0, 13.0]],
    ]


def test_ts2vec_gradients_reach_the_backbone():
    encoder = build_series_encoder("ts2vec", in_channels=2, hidden=8, out_dim=16, depth=2)
    method = TS2Vec(encoder)
    torch.manual_seed(0)
    method([torch.randn(4, 2, 32)]).backward()
    grads = [p.grad for p in encoder.backbone.parameters()]
    assert all(g is not None for g in grads)
    assert encoder.backbone.input_fc.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["ts2vec", "patch-transformer"])
def test_series_backbones_take_any_length_and_nan(name):
    options = (
        {"hidden": 8, "out_dim": 16, "depth": 2}
        if name == "ts2vec"
        else {"patch_len": 4, "dim": 16, "depth": 1, "heads": 2}
    )
    net = build_series_backbone(name, in_channels=3, **options).eval()
    x = torch.randn(2, 3, 37)
    x[1, :, 20:] = float("nan")  # a shorter series, padded
    x[0, 1, 5] = float("nan")  # one missing value
    out = net(x)
    assert out.shape == (2, 16) and torch.isfinite(out).all()
    assert net.forward_timestamps(x).shape == (2, 37, 16)


def test_patch_transformer_ignores_absent_patches():
    net = build_series_backbone(
        "patch-transformer", 1, patch_len=4, dim=16, depth=2, heads=2
    ).eval()
    x = torch.randn(1, 1, 16)
    padded = torch.cat([x, torch.full((1, 1, 8), float("nan"))], dim=2)
    torch.testing.assert_close(net(x), net(padded), atol=1e-5, rtol=1e-5)


def test_series_views_crop_scale_jitter_and_mask():
    torch.manual_seed(0)
    x = torch.randn(8, 2, 40)
    plain = SeriesViews(
        series_recipe("series").with_options(
            crop_scale=(1.0, 1.0), jitter=0.0, scaling=0.0, mask_p=0.0
        ),
        2,
    )
    assert all(torch.equal(v, x) for v in plain(x))
    masked = SeriesViews(series_recipe("series").with_options(mask_p=1.0, mask_span=0.5), 1)
    assert torch.isnan(masked(x)[0]).any()
    views, recipe = SERIES.method_views(TS2Vec, {})
    assert recipe.identity and views(x)[0] is x
    with pytest.raises(ValueError, match="unknown series view options"):
        series_recipe("series").with_options(blur_p=0.5)


def test_generic_objectives_run_on_series():
    torch.manual_seed(0)
    for name in ("simclr", "vicreg", "byol"):
        encoder = build_series_encoder("ts2vec", in_channels=1, hidden=8, out_dim=16, depth=2)
        method = build_method(name, encoder)
        views, _ = SERIES.method_views(method, {})
        loss = method(views(torch.randn(6, 1, 30)))
        assert torch.isfinite(loss)


def test_svm_protocol_on_separable_and_random_labels():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 30)
    x = rng.normal(size=(90, 4)) + 4 * np.eye(4)[y]
    assert svm_accuracy(x, y, x, y) == 1.0
    noise = rng.normal(size=(90, 4))
    assert svm_accuracy(noise[:60], y[:60], noise[60:], rng.permutation(y[60:])) < 0.7


def test_ts2vec_exports_the_uniform_average_of_its_iterates():
    torch.manual_seed(0)
    encoder = build_series_encoder("ts2vec", in_channels=1, hidden=4, out_dim=8, depth=1)
    method = TS2Vec(encoder)
    optimizer = torch.optim.SGD(method.parameters(), lr=0.1)
    iterates = []
    for _ in range(3):
        optimizer.zero_grad()
        method([torch.randn(4, 1, 16)]).backward()
        optimizer.step()
        method.on_step_end(0.0)
        iterates.append(encoder.backbone.input_fc.weight.detach().clone())
    averaged = method.export_encoder().backbone.input_fc.weight
    torch.testing.assert_close(averaged, torch.stack(iterates).mean(0))
    assert TS2Vec(encoder, average=False).export_encoder() is encoder
