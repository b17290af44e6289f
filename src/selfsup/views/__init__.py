"""Views: the random augmentations that turn one item into several correlated inputs."""

from selfsup.views.image import ImageViewRecipe, ImageViews, image_recipe, method_views
from selfsup.views.series import (
    SeriesViewRecipe,
    SeriesViews,
    series_method_views,
    series_recipe,
)

__all__ = [
    "ImageViewRecipe",
    "ImageViews",
    "SeriesViewRecipe",
    "SeriesViews",
    "image_recipe",
    "method_views",
    "series_method_views",
    "series_recipe",
]
