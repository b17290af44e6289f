"""Each loss equals a hand computation (plain Python loops over the paper's equation)."""

import math

import pytest
import torch

from selfsup.methods import barlow_twins_loss, byol_loss, nt_xent_loss, vicreg_loss

Z1 = [[1.0, 0.0], [0.6, 0.8], [0.0, -2.0]]
Z2 = [[0.8, 0.6], [0.0, 1.0], [1.0, -1.0]]


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_nt_xent_matches_equation_1_of_simclr() -> None:
    t = 0.5
    views = Z1 + Z2
    n = len(Z1)
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        denominator = sum(math.exp(_cos(views[i], views[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(_cos(views[i], views[j]) / t) / denominator)
    expected = total / (2 * n)
    got = nt_xent_loss(torch.tensor(Z1), torch.tensor(Z2), temperature=t)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_byol_loss_is_two_minus_two_cosine() -> None:
    expected = sum(2 - 2 * _cos(a, b) for a, b in zip(Z1, Z2, strict=True)) / len(Z1)
    assert byol_loss(torch.tensor(Z1), torch.tensor(Z2)).item() == pytest.approx(expected)
    # The target's scale does not matter, only its direction.
    assert byol_loss(torch.tensor(Z1), 5 * torch.tensor(Z2)).item() == pytest.approx(expected)


def _column(z: list[list[float]], j: int) -> list[float]:
    return [row[j] for row in z]


def _mean(v: list[float]) -> float:
    return sum(v) / len(v)


def _var(v: list[float]) -> float:  # unbiased, as torch.var
    m = _mean(v)
    return sum((x - m) ** 2 for x in v) / (len(v) - 1)


def test_vicreg_loss_matches_equations_1_to_6() -> None:
    n, d, eps = len(Z1), 2, 1e-4
    invariance = sum(
        (a - b) ** 2 for r1, r2 in zip(Z1, Z2, strict=True) for a, b in zip(r1, r2, strict=True)
    ) / (n * d)

    def variance(z: list[list[float]]) -> float:
        return sum(max(0.0, 1 - math.sqrt(_var(_column(z, j)) + eps)) for j in range(d)) / d

    def covariance(z: list[list[float]]) -> float:
        cols = [_column(z, j) for j in range(d)]
        means = [_mean(c) for c in cols]
        total = 0.0
        for a in range(d):
            for b in range(d):
                if a != b:
                    c = sum((cols[a][k] - means[a]) * (cols[b][k] - means[b]) for k in range(n))
                    total += (c / (n - 1)) ** 2
        return total / d

    expected = (
        25 * invariance + 25 * (variance(Z1) + variance(Z2)) + covariance(Z1) + covariance(Z2)
    )
    got = vicreg_loss(torch.tensor(Z1), torch.tensor(Z2))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_barlow_twins_loss_matches_equations_1_and_2() -> None:
    n, d, lam = len(Z1), 2, 0.1

    def standardize(z: list[list[float]]) -> list[list[float]]:
        cols = [_column(z, j) for j in range(d)]
        stats = [(_mean(c), math.sqrt(sum((x - _mean(c)) ** 2 for x in c) / n)) for c in cols]
        return [[(row[j] - stats[j][0]) / stats[j][1] for j in range(d)] for row in z]

    a, b = standardize(Z1), standardize(Z2)
    c = [[sum(a[k][i] * b[k][j] for k in range(n)) / n for j in range(d)] for i in range(d)]
    expected = sum((1 - c[i][i]) ** 2 for i in range(d)) + lam * sum(
        c[i][j] ** 2 for i in range(d) for j in range(d) if i != j
    )
    got = barlow_twins_loss(torch.tensor(Z1), torch.tensor(Z2), lambda_offdiag=lam)
    assert got.item() == pytest.approx(expected, rel=1e-4)


def test_losses_are_low_for_matching_views_and_high_for_unrelated_ones() -> None:
    torch.manual_seed(0)
    z = torch.randn(128, 16)
    other = torch.randn(128, 16)
    for loss in (nt_xent_loss, byol_loss, vicreg_loss, barlow_twins_loss):
        assert loss(z, z + 0.01 * torch.randn_like(z)) < loss(z, other), loss.__name__
