"""Batched image augmentations against hand computations, kornia's functions and torchvision's
crop sampling; the probability gates; no host synchronization on a GPU."""

import math
import random

import kornia
import pytest
import torch
import torch.nn.functional as F

from selfsup.views.image import ImageViews, image_recipe
from selfsup.views.image_ops import (
    ColorJitter,
    GaussianBlur,
    Grayscale,
    ResizedCrop,
    Solarize,
    blur,
    crop_boxes,
    crop_resize,
    gaussian_kernels,
)


def _torchvision_box(height: int, width: int, scale: tuple[float, float]) -> tuple[float, float]:
    """torchvision's RandomResizedCrop.get_params, as written there (area and ratio only)."""
    area = height * width
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target = area * random.uniform(*scale)
        aspect = math.exp(random.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return w * h / area, w / h
    return 1.0, 1.0


@pytest.mark.parametrize(("height", "width", "scale"), [(32, 32, (0.08, 1.0)), (24, 40, (0.4, 1))])
def test_crop_boxes_fit_and_follow_torchvisions_distribution(
    height: int, width: int, scale: tuple[float, float]
) -> None:
    torch.manual_seed(0)
    random.seed(0)
    boxes = crop_boxes(20_000, height, width, scale)
    x0, y0, w, h = boxes.unbind(1)
    assert bool((x0 >= 0).all() and (y0 >= 0).all())
    assert bool((x0 + w <= width + 1e-4).all() and (y0 + h <= height + 1e-4).all())
    ratio = w / h
    assert bool((ratio >= 3 / 4 - 1e-4).all() and (ratio <= 4 / 3 + 1e-4).all())
    share = (w * h / (height * width)).numpy()
    reference = [_torchvision_box(height, width, scale)[0] for _ in range(20_000)]
    assert abs(share.mean() - sum(reference) / len(reference)) < 0.01
    assert share.min() >= scale[0] - 1e-4


def test_whole_image_crop_is_the_image_and_a_flip_mirrors_it() -> None:
    images = torch.rand(3, 2, 8, 8)
    whole = torch.tensor([[0.0, 0.0, 8.0, 8.0]]).expand(3, -1)
    assert torch.allclose(crop_resize(images, whole, 8), images, atol=1e-6)
    flip = torch.tensor([True, False, True])
    out = crop_resize(images, whole, 8, flip)
    assert torch.allclose(out[0], images[0].flip(-1), atol=1e-6)
    assert torch.allclose(out[1], images[1], atol=1e-6)


def test_a_crop_resized_twice_as_large_is_bilinear_upsampling_inside() -> None:
    # Inside the box, cropping then resizing equals torch's bilinear upsampling of the crop
    # (at the box's edges grid_sample reads the neighbouring pixels, interpolate repeats).
    images = torch.rand(2, 3, 12, 12)
    boxes = torch.tensor([[2.0, 3.0, 6.0, 6.0], [5.0, 1.0, 6.0, 6.0]])
    out = crop_resize(images, boxes, 12)
    for i, (x0, y0, _, _) in enumerate(boxes.int().tolist()):
        crop = images[i : i + 1, :, y0 : y0 + 6, x0 : x0 + 6]
        expected = F.interpolate(crop, size=12, mode="bilinear", align_corners=False)
        assert torch.allclose(out[i, :, 1:-1, 1:-1], expected[0, :, 1:-1, 1:-1], atol=1e-5)


def test_resized_crop_covers_the_requested_share_of_a_marked_image() -> None:
    # A crop of area share s, resized, shows about s of a uniformly spread marking.
    torch.manual_seed(0)
    images = torch.zeros(200, 1, 40, 40)
    images[:, :, ::2, ::2] = 1.0  # a quarter of the pixels
    out = ResizedCrop(40, (1.0, 1.0))(images)
    assert torch.allclose(out.mean((1, 2, 3)), torch.full((200,), 0.25), atol=0.02)


def test_jitter_steps_equal_kornias_functions_for_the_same_factors() -> None:
    images = torch.rand(4, 3, 6, 6)
    factor = torch.tensor([0.5, 1.0, 1.3, 1.7])
    contrast = ColorJitter.adjust(images.clone(), 1, factor)
    expected = kornia.enhance.adjust_contrast_with_mean_subtraction(images, factor)
    assert torch.allclose(contrast, expected.clamp(0, 1), atol=1e-5)
    saturation = ColorJitter.adjust(images.clone(), 2, factor)
    expected = kornia.enhance.adjust_saturation_with_gray_subtraction(images, factor)
    assert torch.allclose(saturation, expected.clamp(0, 1), atol=1e-5)
    brightness = ColorJitter.adjust(images.clone(), 0, factor)
    assert torch.allclose(brightness, (images * factor.view(-1, 1, 1, 1)).clamp(0, 1))


def test_hue_turns_colours_about_the_gray_axis() -> None:
    images = torch.rand(3, 3, 5, 5) * 0.5 + 0.25  # away from the clamp
    turns = torch.tensor([0.0, 0.1, -0.07])
    out = ColorJitter.adjust(images.clone(), 3, turns)
    assert torch.allclose(out[0], images[0], atol=1e-6)  # no turn, no change
    assert not torch.allclose(out[1], images[1], atol=1e-2)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    assert torch.allclose((out * luma).sum(1), (images * luma).sum(1), atol=1e-5)
    gray = torch.full((3, 3, 4, 4), 0.4)
    assert torch.allclose(ColorJitter.adjust(gray.clone(), 3, turns), gray, atol=1e-6)
    back = ColorJitter.adjust(out.clone(), 3, -turns)
    assert torch.allclose(back, images, atol=1e-5)


def test_jitter_changes_about_p_of_the_images_and_gray_images_stay_gray() -> None:
    torch.manual_seed(0)
    images = torch.rand(2000, 3, 4, 4) * 0.5 + 0.25
    out = ColorJitter((0.4, 0.4, 0.2, 0.1), p=0.8)(images)
    changed = (out - images).abs().amax((1, 2, 3)) > 1e-6
    assert abs(changed.float().mean().item() - 0.8) < 0.03
    gray = torch.rand(50, 1, 4, 4)
    assert ColorJitter((0.4, 0.4, 0.2, 0.1), p=1.0)(gray).shape == gray.shape
    assert torch.allclose(ColorJitter((0.4, 0.4, 0.2, 0.1), p=0.0)(images), images, atol=1e-6)


def test_grayscale_is_kornias_luma_on_about_p_of_the_images() -> None:
    torch.manual_seed(0)
    images = torch.rand(2000, 3, 4, 4)
    out = Grayscale(1.0)(images)
    assert torch.allclose(out, kornia.color.rgb_to_grayscale(images).expand(-1, 3, -1, -1))
    out = Grayscale(0.2)(images)
    gray = (out[:, 0] == out[:, 1]).all(-1).all(-1) & (out[:, 1] == out[:, 2]).all(-1).all(-1)
    assert abs(gray.float().mean().item() - 0.2) < 0.03
    assert torch.equal(out[~gray], images[~gray])


def test_blur_equals_kornias_gaussian_blur_per_image_sigma() -> None:
    images = torch.rand(3, 2, 16, 16)
    sigma = torch.tensor([0.3, 1.0, 2.0])
    out = blur(images, gaussian_kernels(sigma, 7))
    expected = kornia.filters.gaussian_blur2d(
        images, (7, 7), sigma[:, None].expand(-1, 2), border_type="reflect"
    )
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.equal(blur(images, gaussian_kernels(torch.zeros(3), 7)), images)


def test_blur_gate_leaves_the_other_images_exactly_as_they_were() -> None:
    torch.manual_seed(0)
    images = torch.rand(400, 1, 8, 8)
    out = GaussianBlur(3, (0.1, 2.0), p=0.5)(images)
    same = (out == images).flatten(1).all(1)
    assert abs(same.float().mean().item() - 0.5) < 0.08


def test_solarize_inverts_bright_pixels_of_the_chosen_images() -> None:
    images = torch.tensor([0.1, 0.5, 0.9]).view(1, 1, 1, 3).expand(2, -1, -1, -1)
    assert torch.allclose(Solarize(1.0)(images)[0].flatten(), torch.tensor([0.1, 0.5, 0.1]))
    assert torch.equal(Solarize(0.0)(images), images)


def test_views_repeat_under_the_same_seed() -> None:
    views = ImageViews(image_recipe("byol").with_options(local_views=2), 16, 3)
    images = torch.rand(4, 3, 20, 20)
    torch.manual_seed(3)
    first = views(images)
    torch.manual_seed(3)
    again = views(images)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_views_never_wait_for_the_gpu() -> None:
    views = ImageViews(image_recipe("byol").with_options(local_views=2), 32, 3)
    images = torch.rand(8, 3, 32, 32, device="cuda")
    views(images)  # the first call copies the hue rotation's constants to the device, once
    torch.cuda.set_sync_debug_mode("error")
    try:
        views(images)
    finally:
        torch.cuda.set_sync_debug_mode("default")
