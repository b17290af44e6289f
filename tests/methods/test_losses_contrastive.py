"""MoCo v3, SimSiam and NNCLR losses equal hand computations of their papers' equations."""

import math

import pytest
import torch

from selfsup.methods import mocov3_loss, nnclr_loss, simsiam_loss

A = [[1.0, 0.0], [0.6, 0.8], [0.0, -2.0]]
B = [[0.8, 0.6], [0.0, 1.0], [1.0, -1.0]]


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def _info_nce(anchors: list[list[float]], others: list[list[float]], t: float) -> float:
    """Mean over i of -log(exp(cos(a_i, o_i) / t) / sum_k exp(cos(a_i, o_k) / t))."""
    total = 0.0
    for i, a in enumerate(anchors):
        denominator = sum(math.exp(_cos(a, o) / t) for o in others)
        total += -math.log(math.exp(_cos(a, others[i]) / t) / denominator)
    return total / len(anchors)


def test_mocov3_loss_is_2t_times_the_infonce_of_equation_1() -> None:
    t = 0.2
    expected = 2 * t * _info_nce(A, B, t)  # ctr(q, k) of Algorithm 1
    assert mocov3_loss(torch.tensor(A), torch.tensor(B), t).item() == pytest.approx(
        expected, rel=1e-6
    )


def test_simsiam_loss_is_negative_cosine_with_stop_gradient() -> None:
    expected = sum(-_cos(p, z) for p, z in zip(A, B, strict=True)) / len(A)
    p = torch.tensor(A, requires_grad=True)
    z = torch.tensor(B, requires_grad=True)
    loss = simsiam_loss(p, z)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert p.grad is not None and z.grad is None  # stopgrad(z), Eq. (3)


def test_nnclr_loss_matches_its_infonce_with_neighbours_as_anchors() -> None:
    t = 0.1
    expected = _info_nce(A, B, t)  # A plays NN(z_i, Q), B the other view's predictions
    got = nnclr_loss(torch.tensor(A), torch.tensor(B), temperature=t)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_losses_are_low_for_matching_views_and_high_for_unrelated_ones() -> None:
    torch.manual_seed(0)
    z = torch.randn(128, 16)
    other = torch.randn(128, 16)
    for loss in (mocov3_loss, simsiam_loss, nnclr_loss):
        assert loss(z, z + 0.01 * torch.randn_like(z)) < loss(z, other), loss.__name__
