"""The part every modality's views share: a recipe of named fields that a run's ``views``
options override (unknown names are an error) and that the run's config saves as plain data,
and a module that makes several independently augmented views of a batch with it.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class NoiseRecipe(ViewRecipe):
    ...     kind = "noise"
    ...     std: float = 0.1
    ...     crop_scale: tuple[float, float] = (0.5, 1.0)
    >>> NoiseRecipe().with_options(crop_scale=[0.2, 1.0]).to_dict()
    {'std': 0.1, 'crop_scale': (0.2, 1.0)}
    >>> NoiseRecipe().with_options(sigma=1.0)
    Traceback (most recent call last):
    ...
    ValueError: unknown noise view options ['sigma']; known: ['crop_scale', 'std']
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

R = TypeVar("R", bound="ViewRecipe")


class ViewRecipe:
    """Mixin of the frozen dataclasses that describe how a modality's views are made."""

    #: The modality named in error messages.
    kind: ClassVar[str] = "view"

    def with_options(self: R, **options: Any) -> R:
        """A copy with some fields replaced (lists, as YAML gives them, become tuples);
        unknown fields are an error."""
        known = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown {self.kind} view options {unknown}; known: {sorted(known)}")
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        return dataclasses.replace(self, **options)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data (saved with the run)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]


class IndependentViews(nn.Module, ABC):
    """Makes ``num_views`` views of a batch, each drawn independently by :meth:`view`.

    Subclasses implement ``view(x)``: one augmented copy of the batch as ``recipe`` says.

    Args:
        recipe: the transformations.
        num_views: views per item.
    """

    def __init__(self, recipe: ViewRecipe, num_views: int = 2) -> None:
        super().__init__()
        self.recipe = recipe
        self.num_views = num_views

    @abstractmethod
    def view(self, x: torch.Tensor) -> torch.Tensor:
        """One augmented view of the batch ``x``."""

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The list of ``num_views`` views."""
        return [self.view(x) for _ in range(self.num_views)]
