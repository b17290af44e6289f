"""Batched image views: shapes, value range, randomness per item, recipes, multi-crop."""

import pytest
import torch

from selfsup.methods import SimCLR, SwAV, build_method
from selfsup.modalities.image import build_image_encoder, method_views
from selfsup.views import ImageViews, image_recipe
from selfsup.views.image import local_view_size


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


def test_local_views_follow_the_global_ones_smaller() -> None:
    torch.manual_seed(0)
    recipe = image_recipe("byol").with_options(local_views=3)
    views = ImageViews(recipe, image_size=28, channels=3)
    out = views(torch.rand(5, 3, 28, 28))
    assert [tuple(v.shape) for v in out] == [(5, 3, 28, 28)] * 2 + [(5, 3, 12, 12)] * 3
    assert all(v.min() >= 0.0 and v.max() <= 1.0 for v in out)


def test_no_local_views_leaves_the_global_views_as_they_were() -> None:
    images = torch.rand(4, 1, 16, 16)
    outputs = []
    for local_views in (None, 0, 2):
        torch.manual_seed(0)
        recipe = image_recipe("simclr").with_options(local_views=local_views)
        outputs.append(ImageViews(recipe, image_size=16, channels=1)(images))
    assert [len(o) for o in outputs] == [2, 2, 4]
    for o in outputs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(outputs[0], o[:2], strict=True))


def test_local_views_crop_with_their_own_scale() -> None:
    # Without flips, jitter or blur, a crop of the whole image is deterministic: every local
    # view is the same picture when the local crop scale is (1, 1), and the global views
    # keep their own (full) crop scale while the local ones crop a small part.
    plain = image_recipe("simclr").with_options(
        crop_scale=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, local_views=3
    )
    images = torch.rand(4, 1, 16, 16)
    whole = ImageViews(plain.with_options(local_crop_scale=(1.0, 1.0)), 16, 1)(images)
    assert all(torch.equal(v, whole[2]) for v in whole[3:])
    torch.manual_seed(0)
    small = ImageViews(plain.with_options(local_crop_scale=(0.05, 0.2)), 16, 1)(images)
    assert torch.allclose(small[0], images, atol=1e-5)
    assert not torch.allclose(small[2], whole[2], atol=1e-2)


def test_local_view_size_is_rounded_half_up_at_least_4_pixels() -> None:
    recipe = image_recipe("byol")
    sizes = [local_view_size(recipe, s) for s in (224, 96, 64, 32, 28, 12, 8, 4)]
    assert sizes == [96, 41, 27, 14, 12, 5, 4, 4]
    assert local_view_size(recipe.with_options(local_size=0.5), 12) == 6
    assert local_view_size(recipe.with_options(local_size=1.0), 12) == 12
    # A ViT cuts views into whole patches: half-up to a multiple of the patch size, at least one.
    assert local_view_size(recipe, 32, patch_size=4) == 16
    assert local_view_size(recipe, 224, patch_size=16) == 96
    assert local_view_size(recipe, 12, patch_size=4) == 4
    with pytest.raises(ValueError, match="local_size"):
        local_view_size(recipe.with_options(local_size=1.5), 12)


def test_method_views_add_the_methods_local_views_unless_overridden() -> None:
    images = torch.rand(3, 1, 28, 28)
    views, recipe = method_views(SwAV, 28, 1)
    assert recipe.local_views == SwAV.num_local_views == 6
    assert [v.shape[-1] for v in views(images)] == [28, 28] + [12] * 6
    views, recipe = method_views(SwAV, 28, 1, local_views=0, crop_scale=[0.5, 1.0])
    assert recipe.local_views == 0 and recipe.crop_scale == (0.5, 1.0)
    assert len(views(images)) == 2
    views, _ = method_views(SimCLR, 28, 1)
    assert len(views(images)) == 2
    views, _ = method_views(SimCLR, 28, 1, local_views=2, local_size=0.5)
    assert [v.shape[-1] for v in views(images)] == [28, 28, 14, 14]


def test_method_views_cut_local_views_into_whole_vit_patches() -> None:
    vit = build_image_encoder("vit-tiny", 1, 32, patch_size=4, dim=16, depth=1, heads=2)
    views, _ = method_views(build_method("dino", vit, hidden_dim=16, out_dim=8), 32, 1)
    assert views.local_size == 16  # 32 * 96 / 224 = 13.7 pixels -> 3.4 patches -> 4 patches
