"""Tabular views: SCARF's random feature corruption from the empirical marginals.

Each corrupted entry of a row takes the value of the same column in another random row of the
batch (Bahri et al. 2022, "SCARF: Self-Supervised Contrastive Learning using Random Feature
Corruption", ICLR), so a corrupted value is always a plausible value of its column, numeric or
categorical. SCARF contrasts each row with its corrupted copy, so its first view is the row
itself (``keep_first``); the generic objectives contrast two corrupted copies. VIME corrupts
inside its own loss (it needs the mask as a target), so its recipe is ``none``.

Example:
    >>> import torch
    >>> views = TabularViews(tabular_recipe("scarf"), num_views=2)
    >>> x = torch.arange(12.0).view(4, 3)
    >>> first, second = views(x)
    >>> torch.equal(first, x), second.shape
    (True, torch.Size([4, 3]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from selfsup.views.recipe import ViewRecipe


@dataclass(frozen=True)
class TabularViewRecipe(ViewRecipe):
    """How the views of a batch of rows are made.

    Attributes:
        corruption: the fraction of each row's columns replaced (SCARF: 0.6).
        keep_first: the first view is the uncorrupted row (SCARF's anchor).
        identity: every view is the batch as it is (the ``none`` recipe).
    """

    kind = "tabular"

    corruption: float = 0.6
    keep_first: bool = False
    identity: bool = False


_RECIPES = {
    "tabular": TabularViewRecipe(),
    "scarf": TabularViewRecipe(keep_first=True),
    "none": TabularViewRecipe(identity=True),
}


def tabular_recipe(name: str) -> TabularViewRecipe:
    """A named recipe: ``tabular`` (two corrupted views), ``scarf`` (row + corrupted copy)
    or ``none``."""
    if name not in _RECIPES:
        raise ValueError(f"unknown tabular view recipe {name!r}; known: {', '.join(_RECIPES)}")
    return _RECIPES[name]


def marginal_corruption(x: torch.Tensor, rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace a random ``rate`` of each row's entries with the same column of random rows.

    Exactly ``round(rate * columns)`` entries per row are chosen (SCARF's scheme).

    Returns:
        The corrupted batch and the boolean mask of replaced entries.

    Example:
        >>> x = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
        >>> corrupted, mask = marginal_corruption(x, 0.5)
        >>> mask.sum(dim=1).tolist(), bool(torch.isin(corrupted[:, 1], x[:, 1]).all())
        ([1, 1, 1], True)
    """
    n, d = x.shape
    count = round(rate * d)
    order = torch.rand(n, d, device=x.device).argsort(dim=1)
    mask = torch.zeros(n, d, dtype=torch.bool, device=x.device)
    mask.scatter_(1, order[:, :count], True)
    donors = torch.randint(0, n, (n, d), device=x.device)
    replacement = x.gather(0, donors)
    return torch.where(mask, replacement, x), mask


class TabularViews(nn.Module):
    """Makes ``num_views`` views of a batch of encoded rows (n, columns)."""

    def __init__(self, recipe: TabularViewRecipe, num_views: int = 2) -> None:
        super().__init__()
        self.recipe = recipe
        self.num_views = num_views

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The list of views."""
        r = self.recipe
        views = []
        for i in range(self.num_views):
            if r.identity or (i == 0 and r.keep_first):
                views.append(x)
            else:
                views.append(marginal_corruption(x, r.corruption)[0])
        return views
