"""Batched image augmentations (kornia) and the per-method recipes that combine them.

Augmentations run on whole batches of float tensors (n, C, H, W) in [0, 1], so they cost one
vectorized call per batch instead of one Python call per image.

Example:
    >>> import torch
    >>> views = ImageViews(image_recipe("simclr"), image_size=28, channels=1)
    >>> v1, v2 = views(torch.rand(8, 1, 28, 28))
    >>> v1.shape
    torch.Size([8, 1, 28, 28])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import kornia.augmentation as K
import torch
from torch import nn


@dataclass(frozen=True)
class ImageViewRecipe:
    """The parameters of one view's augmentation pipeline.

    Attributes:
        crop_scale: area range of the random resized crop, as a fraction of the image.
        flip_p: probability of a horizontal flip.
        jitter: brightness, contrast, saturation, hue strengths of the color jitter.
        jitter_p: probability of applying the color jitter.
        grayscale_p: probability of converting to grayscale (color input only).
        blur_p: probability of a Gaussian blur.
        solarize_p: probability of solarization.
        second: the recipe of the second view when the method's views are asymmetric (BYOL).
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    solarize_p: float = 0.0
    second: ImageViewRecipe | None = field(default=None, compare=False)

    def with_options(self, **options: Any) -> ImageViewRecipe:
        """A copy with some fields replaced (applied to both views), e.g. ``crop_scale``."""
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        second = self.second.with_options(**options) if self.second is not None else None
        return replace(self, **options, second=second)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data, for the run's config."""
        return asdict(self)


# SimCLR (Chen et al. 2020), Appendix A: crop, flip, strong color distortion; blur for ImageNet.
_SIMCLR = ImageViewRecipe(jitter=(0.8, 0.8, 0.8, 0.2), blur_p=0.5)
# BYOL (Grill et al. 2020), Table 6: two asymmetric views; VICReg and Barlow Twins reuse them.
_BYOL = ImageViewRecipe(
    jitter=(0.4, 0.4, 0.2, 0.1),
    blur_p=1.0,
    solarize_p=0.0,
    second=ImageViewRecipe(jitter=(0.4, 0.4, 0.2, 0.1), blur_p=0.1, solarize_p=0.2),
)
# MAE (He et al. 2022) and I-JEPA (Assran et al. 2023): crop and flip only; masking is the task.
_MASKED = ImageViewRecipe(crop_scale=(0.2, 1.0), jitter_p=0.0, grayscale_p=0.0)
_RECIPES = {"simclr": _SIMCLR, "byol": _BYOL, "masked": _MASKED}


def image_recipe(name: str) -> ImageViewRecipe:
    """The named augmentation recipe (``simclr``, ``byol`` or ``masked``).

    Example:
        >>> image_recipe("byol").second.solarize_p
        0.2
    """
    if name not in _RECIPES:
        raise ValueError(f"unknown view recipe {name!r}; known: {sorted(_RECIPES)}")
    return _RECIPES[name]


def _pipeline(recipe: ImageViewRecipe, image_size: int, channels: int) -> nn.Sequential:
    ops: list[nn.Module] = [K.RandomResizedCrop((image_size, image_size), scale=recipe.crop_scale)]
    if recipe.flip_p > 0:
        ops.append(K.RandomHorizontalFlip(p=recipe.flip_p))
    brightness, contrast, saturation, hue = recipe.jitter
    if recipe.jitter_p > 0 and any(recipe.jitter):
        if channels == 3:
            ops.append(K.ColorJitter(brightness, contrast, saturation, hue, p=recipe.jitter_p))
        else:
            # Saturation and hue are undefined for one channel: jitter what a gray image has.
            ops.append(K.ColorJitter(brightness, contrast, p=recipe.jitter_p))
    if channels == 3 and recipe.grayscale_p > 0:
        ops.append(K.RandomGrayscale(p=recipe.grayscale_p))
    if recipe.blur_p > 0:
        # Kernel about a tenth of the image side (SimCLR), odd, at least 3.
        kernel = max(3, (image_size // 10) | 1)
        ops.append(K.RandomGaussianBlur((kernel, kernel), (0.1, 2.0), p=recipe.blur_p))
    if recipe.solarize_p > 0:
        ops.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=recipe.solarize_p))
    return nn.Sequential(*ops)


class ImageViews(nn.Module):
    """Makes ``num_views`` augmented views of a batch of images.

    Args:
        recipe: the augmentation parameters; its ``second`` recipe, when set, is used for the
            second view (asymmetric views as in BYOL).
        image_size: side of the square output views.
        channels: 1 for gray input, 3 for color.
        num_views: how many views to return.
    """

    def __init__(
        self, recipe: ImageViewRecipe, image_size: int, channels: int, num_views: int = 2
    ) -> None:
        super().__init__()
        second = recipe.second or recipe
        self.pipelines = nn.ModuleList(
            [
                _pipeline(second if i == 1 else recipe, image_size, channels)
                for i in range(num_views)
            ]
        )

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Return the list of views, each of shape (n, C, image_size, image_size)."""
        return [pipeline(images).clamp_(0, 1) for pipeline in self.pipelines]


def method_views(
    method: Any, image_size: int, channels: int, **overrides: Any
) -> tuple[ImageViews, ImageViewRecipe]:
    """The views a method trains on: its recipe with ``overrides``, and its number of views.

    Args:
        method: a method class or instance (it has ``view_recipe`` and ``num_views``).
        image_size: side of the square global views.
        channels: 1 for gray input, 3 for color.
        **overrides: recipe fields to replace, e.g. ``crop_scale=(0.25, 1.0)``.

    Returns:
        The views module and the recipe it uses (saved with the run).

    Example:
        >>> import torch
        >>> from selfsup.methods import SimCLR
        >>> views, recipe = method_views(SimCLR, 12, 1, blur_p=0.0)
        >>> [v.shape[0] for v in views(torch.rand(4, 1, 12, 12))], recipe.blur_p
        ([4, 4], 0.0)
    """
    recipe = image_recipe(method.view_recipe).with_options(**overrides)
    return ImageViews(recipe, image_size, channels, method.num_views), recipe
