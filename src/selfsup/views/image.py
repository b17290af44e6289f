"""The per-method recipes of image augmentations, and the views they make of a batch.

Augmentations (``image_ops``) run on whole batches of float tensors (n, C, H, W) in [0, 1], so
they cost a few vectorized calls per batch instead of one Python call per image, and never make
a GPU wait for the host.

Multi-crop (Caron et al. 2020, SwAV, https://arxiv.org/abs/2006.09882): besides the full-size
global views, a method may ask for extra small local views, each a crop of a small part of the
image resized to a smaller side (96 pixels for 224-pixel images in SwAV and DINO). They follow
the global views in the returned list.

Example:
    >>> import torch
    >>> views = ImageViews(image_recipe("simclr"), image_size=28, channels=1)
    >>> v1, v2 = views(torch.rand(8, 1, 28, 28))
    >>> v1.shape
    torch.Size([8, 1, 28, 28])
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from selfsup.views.image_ops import ColorJitter, GaussianBlur, Grayscale, ResizedCrop, Solarize


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
        local_views: how many small local (multi-crop) views to add after the global ones;
            None means the method's ``num_local_views`` (``method_views`` fills it in), and a
            bare ``ImageViews`` reads None as 0.
        local_crop_scale: area range of the local views' random resized crop; the global views
            keep ``crop_scale``.
        local_size: side of the local views as a fraction of the global views' side (DINO's
            96/224 by default); see ``local_view_size`` for the rounding.
        second: the recipe of the second view when the method's views are asymmetric (BYOL).

    Local views use this (first view's) recipe with ``local_crop_scale`` as crop scale.
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.2, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    solarize_p: float = 0.0
    local_views: int | None = None
    local_crop_scale: tuple[float, float] = (0.05, 0.4)
    local_size: float = 96 / 224
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
# SwAV (Caron et al. 2020), multi-crop: SimCLR's distortions, global crops of 14-100% of the
# image, local crops of 5-14%.
_SWAV = replace(_SIMCLR, crop_scale=(0.14, 1.0), local_crop_scale=(0.05, 0.14))
# DINO (Caron et al. 2021): BYOL's two global views on crops of 40-100%, local crops of 5-40%.
_DINO = _BYOL.with_options(crop_scale=(0.4, 1.0), local_crop_scale=(0.05, 0.4))
_RECIPES = {"simclr": _SIMCLR, "byol": _BYOL, "masked": _MASKED, "swav": _SWAV, "dino": _DINO}


def image_recipe(name: str) -> ImageViewRecipe:
    """The named augmentation recipe (``simclr``, ``byol``, ``masked``, ``swav``, ``dino``).

    Example:
        >>> image_recipe("byol").second.solarize_p
        0.2
    """
    if name not in _RECIPES:
        raise ValueError(f"unknown view recipe {name!r}; known: {sorted(_RECIPES)}")
    return _RECIPES[name]


def local_view_size(recipe: ImageViewRecipe, image_size: int, patch_size: int = 1) -> int:
    """The side of the local views: ``local_size * image_size`` rounded to pixels.

    Rounded half up to a whole number of pixels, at least 4 and at most ``image_size``; then,
    for a ViT (``patch_size`` > 1), rounded half up to a whole number of patches, at least one,
    so the local views cut into whole patches.

    Example:
        >>> recipe = image_recipe("byol")
        >>> [local_view_size(recipe, s) for s in (224, 32, 28, 12, 6)]
        [96, 14, 12, 5, 4]
        >>> local_view_size(recipe, 32, patch_size=4)
        16
    """
    if not 0 < recipe.local_size <= 1:
        raise ValueError(f"local_size must be a fraction in (0, 1], got {recipe.local_size}")
    side = min(image_size, max(4, math.floor(recipe.local_size * image_size + 0.5)))
    if patch_size > 1:
        side = patch_size * max(1, math.floor(side / patch_size + 0.5))
    return side


def _pipeline(
    recipe: ImageViewRecipe,
    image_size: int,
    channels: int,
    crop_scale: tuple[float, float] | None = None,
) -> nn.Sequential:
    ops: list[nn.Module] = [ResizedCrop(image_size, crop_scale or recipe.crop_scale, recipe.flip_p)]
    if recipe.jitter_p > 0 and any(recipe.jitter):
        # Saturation and hue are undefined for one channel: ColorJitter skips them for gray.
        ops.append(ColorJitter(recipe.jitter, recipe.jitter_p))
    if channels == 3 and recipe.grayscale_p > 0:
        ops.append(Grayscale(recipe.grayscale_p))
    if recipe.blur_p > 0:
        # Kernel about a tenth of the image side (SimCLR), odd, at least 3.
        kernel = max(3, (image_size // 10) | 1)
        ops.append(GaussianBlur(kernel, (0.1, 2.0), recipe.blur_p))
    if recipe.solarize_p > 0:
        ops.append(Solarize(recipe.solarize_p))
    return nn.Sequential(*ops)


class ImageViews(nn.Module):
    """Makes ``num_views`` global augmented views of a batch of images, then the local ones.

    Args:
        recipe: the augmentation parameters; its ``second`` recipe, when set, is used for the
            second view (asymmetric views as in BYOL); its ``local_views`` (None: 0) small
            views follow the global ones.
        image_size: side of the square global views.
        channels: 1 for gray input, 3 for color.
        num_views: how many global views to return.
        patch_size: the local views' side is rounded to a multiple of it (a ViT's patch size).

    Attributes:
        local_size: side of the local views (``local_view_size``).

    Example:
        >>> import torch
        >>> recipe = image_recipe("byol").with_options(local_views=3)
        >>> views = ImageViews(recipe, image_size=28, channels=1)
        >>> [v.shape[-1] for v in views(torch.rand(2, 1, 28, 28))]
        [28, 28, 12, 12, 12]
    """

    def __init__(
        self,
        recipe: ImageViewRecipe,
        image_size: int,
        channels: int,
        num_views: int = 2,
        patch_size: int = 1,
    ) -> None:
        super().__init__()
        second = recipe.second or recipe
        self.local_size = local_view_size(recipe, image_size, patch_size)
        self.pipelines = nn.ModuleList(
            [
                _pipeline(second if i == 1 else recipe, image_size, channels)
                for i in range(num_views)
            ]
            + [
                _pipeline(recipe, self.local_size, channels, recipe.local_crop_scale)
                for _ in range(recipe.local_views or 0)
            ]
        )

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Return the list of views: the global ones of shape (n, C, image_size, image_size),
        then the local ones of shape (n, C, local_size, local_size)."""
        return [pipeline(images).clamp_(0, 1) for pipeline in self.pipelines]
