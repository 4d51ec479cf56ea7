"""Inspection: pictures of data, training and what a model learned."""

from hubel.inspect.plots import save_figure, show_images

__all__ = ["save_figure", "show_images"]
