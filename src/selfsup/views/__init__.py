"""Views: the random augmentations that turn one item into several correlated inputs."""

from selfsup.views.audio import AudioViewRecipe, AudioViews, audio_recipe
from selfsup.views.image import ImageViewRecipe, ImageViews, image_recipe
from selfsup.views.series import (
    SeriesViewRecipe,
    SeriesViews,
    series_recipe,
)
from selfsup.views.tabular import (
    TabularViewRecipe,
    TabularViews,
    marginal_corruption,
    tabular_recipe,
)
from selfsup.views.text import (
    TextViewRecipe,
    TextViews,
    augment_tokens,
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
    "audio_recipe",
    "augment_tokens",
    "image_recipe",
    "marginal_corruption",
    "series_recipe",
    "tabular_recipe",
    "text_recipe",
]
