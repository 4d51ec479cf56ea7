"""Inspection: pictures of data, training and what a model learned — each call returns a
matplotlib Figure (headless) and saves a PNG when given a path."""

from hubel.inspect.attribution import WordScore, highlight_words, word_attributions
from hubel.inspect.confusion import (
    classification_report,
    confusion_matrix,
    most_confused,
    pearson,
    plot_confusion_matrix,
    plot_roc,
    predictions,
    roc_curve,
    show_top_losses,
    threshold_sweep,
    top_losses,
)
from hubel.inspect.filters import feature_maps, overlay, show_feature_maps, show_filters
from hubel.inspect.gradcam import GradCam, grad_cam, heatmap_overlay, show_grad_cam
from hubel.inspect.kernels import apply_kernel, list_kernels, show_kernel
from hubel.inspect.plots import plot_history, save_figure, show_images
from hubel.inspect.report import report

__all__ = [
    "GradCam",
    "WordScore",
    "apply_kernel",
    "classification_report",
    "confusion_matrix",
    "feature_maps",
    "grad_cam",
    "heatmap_overlay",
    "highlight_words",
    "list_kernels",
    "most_confused",
    "overlay",
    "pearson",
    "plot_confusion_matrix",
    "plot_history",
    "plot_roc",
    "predictions",
    "report",
    "roc_curve",
    "save_figure",
    "show_feature_maps",
    "show_filters",
    "show_grad_cam",
    "show_images",
    "show_kernel",
    "show_top_losses",
    "threshold_sweep",
    "top_losses",
    "word_attributions",
]
