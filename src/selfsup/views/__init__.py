"""Views: the random augmentations that turn one item into several correlated inputs."""

from selfsup.views.image import ImageViewRecipe, ImageViews, image_recipe, method_views

__all__ = ["ImageViewRecipe", "ImageViews", "image_recipe", "method_views"]
