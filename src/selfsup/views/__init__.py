"""Views: the random augmentations that turn one item into several correlated inputs."""

from selfsup.views.audio import AudioViewRecipe, AudioViews, audio_method_views, audio_recipe
from selfsup.views.image import ImageViewRecipe, ImageViews, image_recipe, method_views
from selfsup.views.series import (
    SeriesViewRecipe,
    SeriesViews,
    series_method_views,
    series_recipe,
)
from selfsup.views.tabular import (
    TabularViewRecipe,
    TabularViews,
    marginal_corruption,
    tabular_method_views,
    tabular_recipe,
)
from selfsup.views.text import (
    TextViewRecipe,
    TextViews,
    augment_tokens,
    text_method_views,
    text_recipe,
)

__all__ = [
    "AudioViewRecipe",
    "AudioViews",
    "ImageViewRecipe",
    "ImageViews",
    "SeriesViewRecipe",
    "SeriesViews",
    "TabularViewRecipe",
    "TabularViews",
    "TextViewRecipe",
    "TextViews",
    "audio_method_views",
    "audio_recipe",
    "augment_tokens",
    "image_recipe",
    "marginal_corruption",
    "method_views",
    "series_method_views",
    "series_recipe",
    "tabular_method_views",
    "tabular_recipe",
    "text_method_views",
    "text_recipe",
]
