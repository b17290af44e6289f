"""Series views: random resized crops, jitter, scaling and time masking, per item, batched.

The views work on raw series ``(n, channels, length)`` with NaN where a step is absent, and
keep the batch's length, so any objective written for two views of the same shape runs on
series. Jitter is relative to each channel's own spread, so it means the same on data in volts
or in millions. TS2Vec makes its own overlapping crops (its loss needs to know the overlap), so
its recipe is ``none``: the batch as it is.

Example:
    >>> import torch
    >>> views = SeriesViews(series_recipe("series"), num_views=2)
    >>> [tuple(v.shape) for v in views(torch.randn(4, 3, 50))]
    [(4, 3, 50), (4, 3, 50)]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from selfsup.views.recipe import IndependentViews, ViewRecipe


@dataclass(frozen=True)
class SeriesViewRecipe(ViewRecipe):
    """The random transformations of one series view.

    Attributes:
        crop_scale: range of the kept fraction of the length; the crop is resized back to the
            full length by linear interpolation. ``(1, 1)`` turns cropping off.
        jitter: standard deviation of added Gaussian noise, as a fraction of each channel's
            standard deviation in that series.
        scaling: standard deviation of the random factor (around 1) multiplying each channel.
        mask_p: probability that a view hides one contiguous span of time steps (set absent).
        mask_span: the hidden span's largest length, as a fraction of the length.
        identity: return the batch unchanged (the ``none`` recipe).
    """

    kind = "series"

    crop_scale: tuple[float, float] = (0.5, 1.0)
    jitter: float = 0.05
    scaling: float = 0.1
    mask_p: float = 0.5
    mask_span: float = 0.2
    identity: bool = False


_RECIPES = {
    "series": SeriesViewRecipe(),
    "none": SeriesViewRecipe(identity=True),
}


def series_recipe(name: str) -> SeriesViewRecipe:
    """A named recipe: ``series`` (crops, jitter, scaling, masking) or ``none``.

    Example:
        >>> series_recipe("none").identity
        True
    """
    if name not in _RECIPES:
        raise ValueError(f"unknown series view recipe {name!r}; known: {', '.join(_RECIPES)}")
    return _RECIPES[name]


def resized_crops(x: torch.Tensor, scale: tuple[float, float]) -> torch.Tensor:
    """A random crop of each series (its own length fraction and place), linearly resized
    back to the full length.

    Example:
        >>> x = torch.arange(10.0).view(1, 1, 10)
        >>> torch.equal(resized_crops(x, (1.0, 1.0)), x)
        True
    """
    n, c, t = x.shape
    if t < 2 or scale == (1.0, 1.0):
        return x
    fraction = torch.empty(n, device=x.device).uniform_(*scale)
    span = fraction * (t - 1)
    start = torch.rand(n, device=x.device) * (t - 1 - span)
    position = start[:, None] + span[:, None] * torch.linspace(0, 1, t, device=x.device)
    left = position.floor().long().clamp(0, t - 1)
    right = (left + 1).clamp(max=t - 1)
    weight = (position - left).to(x.dtype)[:, None, :]
    gather = lambda index: x.gather(2, index[:, None, :].expand(n, c, t))  # noqa: E731
    return gather(left) * (1 - weight) + gather(right) * weight


class SeriesViews(IndependentViews):
    """Makes ``num_views`` independently augmented views of a batch of series.

    Args:
        recipe: the transformations.
        num_views: views per item.
    """

    recipe: SeriesViewRecipe

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """One augmented view of ``x`` (n, channels, length)."""
        r = self.recipe
        if r.identity:
            return x
        x = resized_crops(x, r.crop_scale)
        n, c, t = x.shape
        if r.scaling > 0:
            x = x * (1 + r.scaling * torch.randn(n, c, 1, device=x.device, dtype=x.dtype))
        if r.jitter > 0:
            spread = _nanstd(x).clamp_min(1e-6)
            x = x + r.jitter * spread * torch.randn_like(x)
        if r.mask_p > 0 and t > 1:
            hide = torch.rand(n, device=x.device) < r.mask_p
            span = (torch.rand(n, device=x.device) * r.mask_span * t).long()
            start = (torch.rand(n, device=x.device) * (t - span + 1)).long()
            steps = torch.arange(t, device=x.device)[None]
            hidden = hide[:, None] & (steps >= start[:, None]) & (steps < (start + span)[:, None])
            x = x.masked_fill(hidden[:, None, :], float("nan"))
        return x


def _nanstd(x: torch.Tensor) -> torch.Tensor:
    """Standard deviation over time per series and channel, ignoring NaN: (n, c, 1)."""
    present = ~torch.isnan(x)
    count = present.sum(dim=2, keepdim=True).clamp_min(1)
    filled = torch.nan_to_num(x, nan=0.0)
    mean = filled.sum(dim=2, keepdim=True) / count
    var = (((filled - mean) * present) ** 2).sum(dim=2, keepdim=True) / count
    return var.sqrt()
