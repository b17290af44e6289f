"""Text views: random cropping, token deletion and masking of token-id batches.

SimCSE's views are the batch itself (dropout inside the encoder is the noise) and masked
language modelling masks inside its own loss (the masked positions are its targets), so both
use the ``none`` recipe. The generic objectives (SimCLR, VICReg...) contrast two views made
by the ``text`` recipe: a random contiguous crop of each text, then deletion of random tokens,
as the discrete augmentations compared in the SimCSE paper (Gao et al. 2021, Table 2: crop,
word deletion). The views stay padded with 0 (``[PAD]``) at the end.

Example:
    >>> import torch
    >>> views = TextViews(text_recipe("text"), num_views=2)
    >>> ids = torch.tensor([[5, 6, 7, 8, 9, 0], [5, 6, 0, 0, 0, 0]])
    >>> [tuple(v.shape) for v in views(ids)]
    [(2, 6), (2, 6)]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.data.tokenizer import MASK_ID, PAD_ID
from selfsup.views.recipe import IndependentViews, ViewRecipe


@dataclass(frozen=True)
class TextViewRecipe(ViewRecipe):
    """How the views of a batch of token ids are made.

    Attributes:
        crop_scale: range of the fraction of each text's tokens kept as one contiguous span;
            ``(1, 1)`` turns cropping off.
        deletion: probability that a token (of the crop) is deleted.
        mask: probability that a kept token becomes ``[MASK]``.
        identity: every view is the batch as it is (the ``none`` recipe).
    """

    kind = "text"

    crop_scale: tuple[float, float] = (0.7, 1.0)
    deletion: float = 0.1
    mask: float = 0.0
    identity: bool = False


_RECIPES = {
    "text": TextViewRecipe(),
    "none": TextViewRecipe(identity=True),
}


def text_recipe(name: str) -> TextViewRecipe:
    """A named recipe: ``text`` (crop and deletion) or ``none``.

    Example:
        >>> text_recipe("none").identity
        True
    """
    if name not in _RECIPES:
        raise ValueError(f"unknown text view recipe {name!r}; known: {', '.join(_RECIPES)}")
    return _RECIPES[name]


def keep_tokens(ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The kept tokens of each row moved to its front, in order, the rest padding.

    Example:
        >>> ids = torch.tensor([[5, 6, 7, 0]])
        >>> keep_tokens(ids, torch.tensor([[True, False, True, False]])).tolist()
        [[5, 7, 0, 0]]
    """
    keep = keep & (ids != PAD_ID)
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    return torch.where(keep.gather(1, order), ids.gather(1, order), PAD_ID)


def augment_tokens(ids: torch.Tensor, recipe: TextViewRecipe) -> torch.Tensor:
    """One random view of each row of ``ids`` (n, L): a crop, deletions, masks.

    A text keeps at least one token (its crop's first) whatever the deletion rate.

    Example:
        >>> ids = torch.tensor([[5, 6, 7, 8]])
        >>> recipe = TextViewRecipe(crop_scale=(1.0, 1.0), deletion=0.0, mask=1.0)
        >>> augment_tokens(ids, recipe).tolist()
        [[2, 2, 2, 2]]
    """
    n, width = ids.shape
    present = ids != PAD_ID
    lengths = present.sum(dim=1)
    low, high = recipe.crop_scale
    scale = low + (high - low) * torch.rand(n, device=ids.device)
    span = (scale * lengths).ceil().clamp_min(1).long()
    start = (torch.rand(n, device=ids.device) * (lengths - span + 1).clamp_min(1)).long()
    position = torch.arange(width, device=ids.device)[None, :]
    in_crop = (position >= start[:, None]) & (position < (start + span)[:, None])
    keep = in_crop & (torch.rand(n, width, device=ids.device) >= recipe.deletion)
    keep |= position == start[:, None]  # never an empty view of a non-empty text
    out = keep_tokens(ids, keep)
    masked = (torch.rand(n, width, device=ids.device) < recipe.mask) & (out != PAD_ID)
    return torch.where(masked, MASK_ID, out)


class TextViews(IndependentViews):
    """Makes ``num_views`` views of a batch of token ids (n, L)."""

    recipe: TextViewRecipe

    def view(self, ids: torch.Tensor) -> torch.Tensor:
        """One view of the token ids: cropped and with tokens deleted as the recipe says."""
        return ids if self.recipe.identity else augment_tokens(ids, self.recipe)
