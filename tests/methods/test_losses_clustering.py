"""SwAV's Sinkhorn-Knopp codes and swapped prediction and DINO's loss, by hand computations."""

import math

import pytest
import torch

from selfsup.methods import build_method, dino_loss, sinkhorn_knopp, swapped_prediction_loss
from selfsup.modalities.image import build_image_encoder

SCORES = [[0.9, -0.2, 0.1], [0.3, 0.8, -0.5], [-0.7, 0.2, 0.6], [0.5, 0.4, 0.0]]


def _sinkhorn_loops(scores: list[list[float]], eps: float, iterations: int) -> list[list[float]]:
    """SwAV's Algorithm: Q = exp(scores / eps)^T, then alternately make every prototype's row
    sum to 1/K and every sample's column to 1/B; return B * Q^T."""
    b, k = len(scores), len(scores[0])
    q = [[math.exp(scores[i][j] / eps) for i in range(b)] for j in range(k)]  # K x B
    total = sum(map(sum, q))
    q = [[v / total for v in row] for row in q]
    for _ in range(iterations):
        q = [[v / sum(row) / k for v in row] for row in q]
        columns = [sum(q[j][i] for j in range(k)) for i in range(b)]
        q = [[q[j][i] / columns[i] / b for i in range(b)] for j in range(k)]
    return [[b * q[j][i] for j in range(k)] for i in range(b)]


def _log_softmax(row: list[float], t: float) -> list[float]:
    log_z = math.log(sum(math.exp(v / t) for v in row))
    return [v / t - log_z for v in row]


def _mean_cross_entropy(
    targets: list[list[list[float]]], logits: list[list[list[float]]], t: float
) -> float:
    """Mean over pairs (s, v != s) and items of -sum_k target_s[k] log softmax(logits_v / t)[k]."""
    pairs = []
    for s, target in enumerate(targets):
        for v, view in enumerate(logits):
            if v == s:
                continue
            per_item = [
                -sum(q * lp for q, lp in zip(tq, _log_softmax(row, t), strict=True))
                for tq, row in zip(target, view, strict=True)
            ]
            pairs.append(sum(per_item) / len(per_item))
    return sum(pairs) / len(pairs)


def test_sinkhorn_knopp_equals_the_papers_algorithm_written_with_loops() -> None:
    expected = _sinkhorn_loops(SCORES, eps=0.5, iterations=3)
    got = sinkhorn_knopp(torch.tensor(SCORES), epsilon=0.5, iterations=3)
    torch.testing.assert_close(got, torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_sinkhorn_knopp_codes_are_distributions_sharing_prototypes_equally() -> None:
    torch.manual_seed(0)
    b, k = 6, 3
    scores = torch.rand(b, k) * 2 - 1
    codes = sinkhorn_knopp(scores, epsilon=0.05, iterations=3)
    assert codes.shape == (b, k) and (codes >= 0).all()
    # The last rescaling is the samples': each item's code is a distribution over prototypes.
    torch.testing.assert_close(codes.sum(dim=1), torch.ones(b))
    # Q = codes / B lies in the paper's transportation polytope once converged: rows
    # (items) sum to 1/B and columns (prototypes) to 1/K, an equal share of the batch each.
    q = sinkhorn_knopp(scores, epsilon=0.05, iterations=200) / b
    torch.testing.assert_close(q.sum(dim=1), torch.full((b,), 1 / b))
    torch.testing.assert_close(q.sum(dim=0), torch.full((k,), 1 / k), rtol=1e-4, atol=1e-6)
    # Three iterations share the batch out more equally than the plain softmax of the scores.
    plain = torch.softmax(scores / 0.05, dim=1)
    assert (codes.sum(dim=0) - b / k).abs().max() < (plain.sum(dim=0) - b / k).abs().max()


def test_sinkhorn_knopp_spreads_a_batch_that_prefers_one_prototype() -> None:
    # Every item prefers prototype 0, yet the codes share the batch out: a small epsilon gives
    # each prototype the items that prefer it least badly, one each here.
    scores = torch.tensor([[0.9, 0.8, 0.1], [0.9, 0.1, 0.8], [0.9, 0.1, 0.1]])
    codes = sinkhorn_knopp(scores, epsilon=0.02, iterations=100)
    torch.testing.assert_close(codes, torch.eye(3)[[1, 2, 0]], atol=1e-2, rtol=0)
    # Adding a constant to every score changes nothing.
    torch.testing.assert_close(sinkhorn_knopp(scores + 5.0, 0.02, 100), codes)


def test_swapped_prediction_loss_equals_a_hand_computation() -> None:
    # Two global views and one local view of two items; codes of the two global views.
    scores = [
        [[0.9, -0.2, 0.1], [0.3, 0.8, -0.5]],
        [[0.5, 0.4, 0.0], [-0.7, 0.2, 0.6]],
        [[0.1, 0.1, 0.7], [0.2, -0.9, 0.3]],
    ]
    codes = [[[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]], [[0.5, 0.5, 0.0], [0.2, 0.2, 0.6]]]
    t = 0.1
    # Global view 0 is predicted from views 1 and 2, global view 1 from views 0 and 2.
    expected = _mean_cross_entropy(codes, scores, t)
    got = swapped_prediction_loss(
        [torch.tensor(s) for s in scores], [torch.tensor(c) for c in codes], t
    )
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_dino_loss_equals_a_hand_computation_of_equation_3() -> None:
    teacher_logits = [[[0.9, -0.2, 0.1], [0.3, 0.8, -0.5]], [[0.5, 0.4, 0.0], [-0.7, 0.2, 0.6]]]
    student_logits = [
        [[0.2, 0.3, -0.1], [0.6, -0.4, 0.0]],
        [[0.1, 0.1, 0.7], [0.2, -0.9, 0.3]],
        [[-0.3, 0.5, 0.2], [0.0, 0.4, -0.6]],
    ]
    center, teacher_t, student_t = [0.1, 0.0, -0.1], 0.04, 0.1
    # P_t = softmax((g_t - c) / tau_t), the teacher's centered and sharpened output.
    teacher_probs = [
        [
            [
                math.exp(v)
                for v in _log_softmax([x - c for x, c in zip(row, center, strict=True)], teacher_t)
            ]
            for row in view
        ]
        for view in teacher_logits
    ]
    expected = _mean_cross_entropy(teacher_probs, student_logits, student_t)
    probs = [
        torch.softmax((torch.tensor(v) - torch.tensor(center)) / teacher_t, dim=1)
        for v in teacher_logits
    ]
    got = dino_loss([torch.tensor(v) for v in student_logits], probs, student_t)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_clustering_losses_are_low_when_views_agree() -> None:
    torch.manual_seed(0)
    logits = torch.randn(16, 8)
    agree = [logits, logits + 0.01 * torch.randn_like(logits)]
    unrelated = [logits, torch.randn(16, 8)]
    targets = [torch.softmax(v / 0.04, dim=1) for v in agree]
    assert dino_loss(agree, targets) < dino_loss(unrelated, targets)
    codes = [sinkhorn_knopp(v) for v in agree]
    assert swapped_prediction_loss(agree, codes) < swapped_prediction_loss(unrelated, codes)


def _two_process_codes_and_center(rank: int, init_file: str, out_file: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    torch.manual_seed(0)
    scores, logits = torch.rand(8, 3) * 2 - 1, torch.randn(8, 5)
    mine = slice(4 * rank, 4 * rank + 4)
    codes = sinkhorn_knopp(scores[mine], epsilon=0.05, iterations=3)
    method = build_method("dino", build_image_encoder("small-cnn", 1, 8, width=2), out_dim=5)
    method.update_center(logits[mine])
    gathered = [torch.zeros_like(codes) for _ in range(2)]
    torch.distributed.all_gather(gathered, codes)
    if rank == 0:
        torch.save({"codes": torch.cat(gathered), "center": method.center}, out_file)
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_codes_and_center_of_two_processes_are_those_of_their_whole_batch(tmp_path) -> None:
    # Under DDP each process holds half the batch; the all-reduced Sinkhorn sums and center
    # mean make the result that of one process holding all of it.
    out = tmp_path / "out.pt"
    torch.multiprocessing.spawn(
        _two_process_codes_and_center, args=(str(tmp_path / "init"), str(out)), nprocs=2
    )
    result = torch.load(out)
    torch.manual_seed(0)
    scores, logits = torch.rand(8, 3) * 2 - 1, torch.randn(8, 5)
    torch.testing.assert_close(result["codes"], sinkhorn_knopp(scores, 0.05, 3))
    torch.testing.assert_close(result["center"], 0.1 * logits.mean(dim=0, keepdim=True))
