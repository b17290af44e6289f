"""Label-free metrics give their known values on constructed embeddings."""

import math

import numpy as np
import pytest
import torch

from selfsup.data.arrays import ArraySource
from selfsup.evaluation.labelfree import (
    alignment,
    alpha_req,
    label_free_metrics,
    measure_label_free,
    neighbour_agreement,
    normalized_std,
    rankme,
    uniformity,
)
from selfsup.methods import SimCLR
from selfsup.modalities.image import build_image_encoder, method_views


def _gaussian(n: int = 4000, d: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _rank_k(k: int, n: int = 4000, d: int = 32) -> torch.Tensor:
    basis, _ = torch.linalg.qr(_gaussian(d, d, seed=1))
    return _gaussian(n, k) @ basis[:, :k].T


def test_full_rank_gaussian() -> None:
    z = _gaussian()
    assert 0.9 * 32 <= rankme(z) <= 32
    assert normalized_std(z) == pytest.approx(1.0, abs=0.05)
    assert abs(alpha_req(z)) < 0.15  # a flat spectrum: no decay
    assert not label_free_metrics(z, z, z).collapsed


@pytest.mark.parametrize("k", [1, 4, 12])
def test_rank_k_embeddings_have_effective_rank_k(k: int) -> None:
    assert rankme(_rank_k(k)) == pytest.approx(k, rel=0.1)


def test_collapse_to_a_point() -> None:
    z = torch.ones(500, 16) * torch.randn(1, 16)
    assert rankme(z) == pytest.approx(1.0, abs=1e-3)
    assert normalized_std(z) == pytest.approx(0.0, abs=1e-6)
    assert alpha_req(z) == math.inf
    assert uniformity(z) == pytest.approx(0.0, abs=1e-9)
    metrics = label_free_metrics(z, z, z)
    assert metrics.collapsed and metrics.to_dict()["collapsed"] is True


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_req_recovers_a_power_law_spectrum(alpha: float) -> None:
    d = 64
    scale = torch.arange(1, d + 1, dtype=torch.float64) ** (-alpha / 2)  # variance i^-alpha
    z = _gaussian(50000, d) * scale
    assert alpha_req(z) == pytest.approx(alpha, abs=0.1)


def test_alignment_and_uniformity_match_their_definitions() -> None:
    a = [[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]]
    b = [[0.0, 1.0], [0.0, 5.0], [-3.0, 4.0]]

    def unit(v):
        norm = math.sqrt(sum(x * x for x in v))
        return [x / norm for x in v]

    def sq(u, v):
        return sum((x - y) ** 2 for x, y in zip(unit(u), unit(v), strict=True))

    expected_align = sum(sq(u, v) for u, v in zip(a, b, strict=True)) / 3
    pairs = [(i, j) for i in range(3) for j in range(i + 1, 3)]
    expected_unif = math.log(sum(math.exp(-2 * sq(a[i], a[j])) for i, j in pairs) / len(pairs))
    assert alignment(torch.tensor(a), torch.tensor(b)) == pytest.approx(expected_align)
    assert uniformity(torch.tensor(a)) == pytest.approx(expected_unif)


def test_neighbour_agreement_is_one_for_equal_views_and_low_for_unrelated_ones() -> None:
    z = _gaussian(400, 8)
    assert neighbour_agreement(z, 3 * z, k=5) == 1.0
    unrelated = neighbour_agreement(z, _gaussian(400, 8, seed=7), k=5)
    assert unrelated < 0.05  # chance is k / n ~ 0.0125
    with pytest.raises(ValueError, match="k must be"):
        neighbour_agreement(z, z, k=400)


def test_measure_label_free_is_repeatable_and_leaves_the_global_rng_alone() -> None:
    rng = np.random.default_rng(0)
    source = ArraySource(rng.integers(0, 255, (64, 12, 12), dtype=np.uint8))
    encoder = build_image_encoder("small-cnn", in_channels=1, image_size=12, width=4)
    views, _ = method_views(SimCLR, 12, 1)
    torch.manual_seed(3)
    expected_next = torch.rand(1)
    torch.manual_seed(3)
    first = measure_label_free(encoder, source, views, items=50, precision="fp32")
    assert torch.rand(1) == expected_next
    second = measure_label_free(encoder, source, views, items=50, precision="fp32")
    assert first == second and first.items == 50 and first.dim == encoder.feature_dim
