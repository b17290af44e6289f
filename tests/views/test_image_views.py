"""Batched image views: shapes, value range, randomness per item, recipes."""

import pytest
import torch

from selfsup.views import ImageViews, image_recipe


@pytest.mark.parametrize("channels", [1, 3])
def test_views_have_the_requested_shape_and_stay_in_range(channels: int) -> None:
    torch.manual_seed(0)
    views = ImageViews(image_recipe("byol"), image_size=16, channels=channels)
    first, second = views(torch.rand(6, channels, 24, 24))
    for v in (first, second):
        assert v.shape == (6, channels, 16, 16)
        assert v.min() >= 0.0 and v.max() <= 1.0
    assert not torch.equal(first, second)


def test_each_item_gets_its_own_random_augmentation() -> None:
    torch.manual_seed(0)
    views = ImageViews(image_recipe("simclr"), image_size=16, channels=1, num_views=1)
    same = torch.rand(1, 1, 16, 16).expand(8, -1, -1, -1).contiguous()
    (out,) = views(same)
    assert len({tuple(o.flatten().tolist()) for o in out}) == 8


def test_recipe_options_apply_to_both_views() -> None:
    recipe = image_recipe("byol").with_options(crop_scale=[1.0, 1.0], blur_p=0.0, solarize_p=0.0)
    assert recipe.crop_scale == (1.0, 1.0) and recipe.second.crop_scale == (1.0, 1.0)
    assert recipe.second.solarize_p == 0.0
    # Full-area crops without flips, jitter, blur or solarization leave the image unchanged.
    plain = recipe.with_options(flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)
    images = torch.rand(4, 3, 12, 12)
    for v in ImageViews(plain, image_size=12, channels=3)(images):
        assert torch.allclose(v, images, atol=1e-5)


def test_unknown_recipe_is_named() -> None:
    with pytest.raises(ValueError, match="fancy"):
        image_recipe("fancy")
