"""MAE and I-JEPA pieces: patches, masks and losses against hand computations (plain loops)."""

import math

import pytest
import torch

from selfsup.methods.ijepa import cut_to_shortest, ijepa_loss, sample_block_masks
from selfsup.methods.mae import mae_loss, patchify, random_masking


def test_patchify_cuts_row_major_patches_that_rebuild_the_image() -> None:
    images = torch.randn(2, 3, 4, 6)
    p = 2
    patches = patchify(images, p)
    assert patches.shape == (2, 6, p * p * 3)
    rebuilt = torch.full_like(images, float("nan"))
    for b in range(2):
        for n in range(6):
            row, col = divmod(n, 6 // p)
            k = 0
            for i in range(p):
                for j in range(p):
                    for c in range(3):
                        rebuilt[b, c, row * p + i, col * p + j] = patches[b, n, k]
                        k += 1
    assert torch.equal(rebuilt, images)


PRED = [[[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.3, -0.2, 0.9]]]
TARGET = [[[0.1, 0.4, 0.2, 0.9], [3.0, 1.0, 2.0, 2.0], [0.5, 0.5, 0.5, 0.7]]]
MASK = [[1, 0, 1]]


def _hand_mae(norm_pix: bool) -> float:
    total, count = 0.0, 0
    for pred_b, target_b, mask_b in zip(PRED, TARGET, MASK, strict=True):
        for pred, target, masked in zip(pred_b, target_b, mask_b, strict=True):
            if not masked:
                continue
            if norm_pix:
                mean = sum(target) / len(target)
                var = sum((t - mean) ** 2 for t in target) / (len(target) - 1)
                target = [(t - mean) / math.sqrt(var + 1e-6) for t in target]
            total += sum((p - t) ** 2 for p, t in zip(pred, target, strict=True)) / len(pred)
            count += 1
    return total / count


@pytest.mark.parametrize("norm_pix", [True, False])
def test_mae_loss_is_the_mse_on_masked_patches_only(norm_pix: bool) -> None:
    pred, target = torch.tensor(PRED), torch.tensor(TARGET)
    got = mae_loss(pred, target, torch.tensor(MASK, dtype=torch.bool), norm_pix=norm_pix)
    assert got.item() == pytest.approx(_hand_mae(norm_pix), rel=1e-5)
    # The visible patch (the second) does not count, whatever is predicted there.
    pred[0, 1] += 100.0
    again = mae_loss(pred, target, torch.tensor(MASK), norm_pix=norm_pix)
    assert again.item() == pytest.approx(got.item(), rel=1e-6)


@pytest.mark.parametrize(("num_patches", "ratio"), [(9, 0.75), (49, 0.75), (16, 0.5), (49, 0.6)])
def test_random_masking_keeps_round_of_the_visible_fraction(num_patches: int, ratio: float) -> None:
    keep, mask = random_masking(64, num_patches, ratio, generator=torch.Generator().manual_seed(0))
    n_keep = round((1 - ratio) * num_patches)
    assert keep.shape == (64, n_keep)
    for row_keep, row_mask in zip(keep.tolist(), mask.tolist(), strict=True):
        assert len(set(row_keep)) == n_keep
        assert [i for i, m in enumerate(row_mask) if not m] == sorted(row_keep)
    assert len({tuple(sorted(row)) for row in keep.tolist()}) > 1  # a mask per sample


def test_random_masking_refuses_a_ratio_without_visible_or_masked_patches() -> None:
    with pytest.raises(ValueError, match="visible"):
        random_masking(2, 9, 0.99)
    with pytest.raises(ValueError, match="visible"):
        random_masking(2, 9, 0.0)


def _rectangle(indices: list[int], grid: int) -> tuple[int, int]:
    """(height, width) of the block the indices form; fails if they are not a full rectangle."""
    rows = [i // grid for i in indices]
    cols = [i % grid for i in indices]
    height, width = max(rows) - min(rows) + 1, max(cols) - min(cols) + 1
    expected = {
        r * grid + c
        for r in range(min(rows), max(rows) + 1)
        for c in range(min(cols), max(cols) + 1)
    }
    assert set(indices) == expected and len(indices) == len(expected)
    return height, width


@pytest.mark.parametrize("grid", [3, 4, 7, 14])
def test_block_masks_lie_in_the_grid_with_each_context_disjoint_from_its_targets(grid: int) -> None:
    generator = torch.Generator().manual_seed(grid)
    for _ in range(50):
        context, targets = sample_block_masks(grid, 8, generator)
        assert context.shape[0] == 8 and targets.shape[:2] == (8, 4)
        assert context.shape[1] > 0
        # One block size per batch, as the official collator.
        assert len({_rectangle(block, grid) for row in targets.tolist() for block in row}) == 1
        for row_context, row_targets in zip(context.tolist(), targets.tolist(), strict=True):
            flat = [i for block in row_targets for i in block]
            assert all(0 <= i < grid * grid for i in flat + row_context)
            assert row_context == sorted(set(row_context))
            assert not set(row_context) & set(flat)


def test_block_masks_are_placed_per_image() -> None:
    context, targets = sample_block_masks(7, 64, torch.Generator().manual_seed(0))
    assert len({tuple(row) for row in targets[:, 0].tolist()}) > 1
    assert len({tuple(row) for row in context.tolist()}) > 1


def test_contexts_are_cut_to_the_shortest_by_a_random_subset_of_each() -> None:
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(16, 30, generator=generator) < 0.5
    mask[3] = False
    mask[3, [2, 7, 9]] = True  # the shortest row: 3 entries
    subsets = set()
    for _ in range(20):
        kept = cut_to_shortest(mask, generator)
        assert kept.shape == (16, 3)
        assert kept[3].tolist() == [2, 7, 9]  # the shortest row is kept whole
        for row, row_mask in zip(kept.tolist(), mask.tolist(), strict=True):
            assert row == sorted(set(row)) and all(row_mask[i] for i in row)
        subsets.add(tuple(kept[0].tolist()))
    assert len(subsets) > 1  # a random subset, not always the first entries


def test_block_masks_follow_the_scales_on_a_large_grid() -> None:
    generator = torch.Generator().manual_seed(0)
    target_areas, context_sizes = [], []
    for _ in range(200):
        context, targets = sample_block_masks(14, 1, generator)
        target_areas.append(targets.shape[2] / 196)
        context_sizes.append(context.shape[1] / 196)
    # Rounding the sides to whole patches widens the 0.15-0.2 range a little.
    assert min(target_areas) >= 0.1 and max(target_areas) <= 0.25
    assert sum(context_sizes) / len(context_sizes) > 0.3


def test_block_masks_are_reproducible_and_refuse_a_too_small_grid() -> None:
    a = sample_block_masks(7, 4, torch.Generator().manual_seed(3))
    b = sample_block_masks(7, 4, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    with pytest.raises(ValueError, match="too small"):
        sample_block_masks(2, 1, num_targets=4)


def test_ijepa_loss_is_the_mean_squared_distance_of_equation_1() -> None:
    torch.manual_seed(0)
    b, m, t, d = 2, 3, 2, 4
    pred, target = torch.randn(b, m, t, d), torch.randn(b, m, t, d)
    entries = 0.0
    for i in range(b):
        for j in range(m):
            for k in range(t):
                for c in range(d):
                    entries += (pred[i, j, k, c].item() - target[i, j, k, c].item()) ** 2
    got = ijepa_loss(pred, target).item()
    assert got == pytest.approx(entries / (b * m * t * d), rel=1e-5)
    # Eq. (1) per image, 1/M sum_i sum_{j in B_i} ||.||^2, is the same up to |B_i| * D.
    equation_1 = entries / (b * m)
    assert got * t * d == pytest.approx(equation_1, rel=1e-5)
