"""Pictures of data and training, headless (Agg): each call returns a matplotlib Figure and
saves a PNG when given a path."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from hubel.errors import ConfigError, DataError
from hubel.train.history import STEP_CURVES_UP_TO

__all__ = ["image_grid", "picture_axes", "plot_history", "save_figure", "show_images"]


def save_figure(figure: Figure, path: str | Path | None) -> Figure:
    """Save `figure` as a PNG at `path` (folders created) when a path is given; return it."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100, bbox_inches="tight")
    return figure


def picture_axes(*axes: Any) -> None:
    """Axes that show a picture: no frame, ticks or tick labels. Their x and y axis objects are
    hidden too: axis("off") alone leaves them to be measured, ticks built, each time a title is
    placed, which took about half the time of drawing the report's galleries (benchmarks/README.md)."""
    for axis in axes:
        axis.set_axis_off()
        axis.xaxis.set_visible(False)
        axis.yaxis.set_visible(False)


class _PlainLogLabels(ticker.LogFormatter):
    """A log axis's labels as plain numbers (0.2, 0.001), on the ticks matplotlib labels: its own
    labels (2×10⁻¹) go through mathtext, and one log panel of learning rates took as long to
    draw as the loss and accuracy panels together (benchmarks/README.md)."""

    def __call__(self, value: float, position: int | None = None) -> str:
        return f"{value:.3g}" if super().__call__(value, position) else ""


def _log_scale(axis: Any) -> None:
    axis.set_yscale("log")
    axis.yaxis.set_major_formatter(_PlainLogLabels())
    axis.yaxis.set_minor_formatter(_PlainLogLabels())


def _labels_as_indices(labels: Any) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:  # one-hot
        return labels.argmax(axis=1)
    return labels.reshape(len(labels)).astype(np.int64) if labels.ndim else labels


def _first_examples(data: Any, n: int) -> tuple[np.ndarray, np.ndarray | None, Sequence[str] | None]:
    """(images, labels, class names) from arrays or from a dataset of (x, y) batches."""
    class_names = getattr(data, "class_names", None)
    if hasattr(data, "__iter__") and not isinstance(data, np.ndarray) and class_names is not None:
        images, labels = [], []
        for x, y in data:
            images.append(np.asarray(x))
            labels.append(np.asarray(y))
            if sum(len(part) for part in images) >= n:
                break
        return np.concatenate(images)[:n], np.concatenate(labels)[:n], class_names
    return np.asarray(data)[:n], None, None


def show_images(
    images: Any,
    labels: Any = None,
    class_names: Sequence[str] | None = None,
    n: int = 10,
    columns: int = 5,
    path: str | Path | None = None,
    title: str | None = None,
) -> Figure:
    """A labelled grid of the first `n` images (the tutorials' display of a dataset).

    images: (N, H, W) or (N, H, W, C) arrays, uint8 or floats in [0, 1], or a dataset that
    yields (x, y) batches (an image folder), whose class names are used.
    """
    x, batch_labels, folder_classes = _first_examples(images, n)
    labels = batch_labels if labels is None else labels
    class_names = class_names or folder_classes
    if x.ndim not in (3, 4) or len(x) == 0:
        raise DataError(f"show_images: expected images shaped (N, H, W) or (N, H, W, C). Received: shape {x.shape}")
    if x.ndim == 4 and x.shape[-1] not in (1, 3, 4):
        raise DataError(f"show_images: expected 1, 3 or 4 channels last. Received: shape {x.shape}")
    indices = None if labels is None else _labels_as_indices(labels)[: len(x)]
    if indices is not None and len(indices) < len(x):
        raise ConfigError(f"show_images: {len(x)} images but only {len(indices)} labels.")
    titles = None
    if indices is not None:
        titles = [
            class_names[index] if class_names is not None and 0 <= index < len(class_names) else str(index)
            for index in map(int, indices)
        ]
    return save_figure(image_grid(x, titles, columns, title), path)


def image_grid(
    images: np.ndarray, titles: Sequence[str] | None, columns: int, title: str | None, small_titles: bool = False
) -> Figure:
    """Images ((N, H, W) or (N, H, W, C), uint8 or floats) in rows of `columns`, each under its
    title (`small_titles`: up to three lines, in a smaller font), laid out once."""
    if images.dtype != np.uint8:  # floats: [0, 1], or [0, 255] when larger values show up
        images = np.clip(images / 255.0 if images.max() > 1.0 else images, 0.0, 1.0)
    columns = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / columns)
    height = 2.9 * rows + 0.4 if small_titles else 2.4 * rows
    figure, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, height), squeeze=False)
    picture_axes(*axes.flat)
    for position, axis in enumerate(axes.flat):
        if position >= len(images):
            continue
        image = images[position]
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        axis.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255 if image.dtype == np.uint8 else 1)
        if titles is not None:
            axis.set_title(titles[position], fontsize=8 if small_titles else 10)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def _smoothed(values: list[float]) -> np.ndarray:
    """An exponential moving average over about a twentieth of the steps, bias-corrected (as
    TensorBoard and fastai smooth a noisy per-step loss)."""
    beta = 1.0 - 1.0 / max(2.0, len(values) / 20)
    average, out = 0.0, np.empty(len(values))
    for index, value in enumerate(values):
        average = beta * average + (1 - beta) * value
        out[index] = average / (1 - beta ** (index + 1))
    return out


def _plot_steps(axes: Any, panels: Sequence[str], steps: dict[str, list[float]], colour: str, label: str) -> None:
    positions = steps["epoch"]
    for axis, metric in zip(axes, panels):
        values = steps.get(metric)
        if not values:
            continue
        if metric == "learning_rate":
            axis.plot(positions, values, color=colour, label=label or None)
            _log_scale(axis)
            continue
        axis.plot(positions, values, color=colour, alpha=0.25, linewidth=0.8)
        axis.plot(positions, _smoothed(values), color=colour, label=f"{label} training (per step, smoothed)".strip())


def _history_dict(history: Any) -> tuple[dict[str, list[float]], list[int]]:
    if hasattr(history, "history"):
        return history.history, list(getattr(history, "epoch", range(len(next(iter(history.history.values()), [])))))
    if isinstance(history, dict):
        return history, list(range(len(next(iter(history.values()), []))))
    raise ConfigError(
        f"plot_history: expected a History (from fit) or a dict of lists. Received: {type(history).__name__}"
    )


def plot_history(
    history: Any,
    metrics: Sequence[str] = ("loss", "accuracy"),
    labels: Sequence[str] | None = None,
    path: str | Path | None = None,
    title: str | None = None,
) -> Figure:
    """Training (solid) and validation (dashed) curves per metric, one colour per run, and the
    learning rate; a dotted line marks each epoch where the learning rate changed (continued
    training, schedules, ReduceLROnPlateau).

    history: a History, a dict of lists, or a list of them (runs overlaid, named by labels).
    """
    runs = list(history) if isinstance(history, (list, tuple)) else [history]
    labels = (
        list(labels) if labels is not None else [f"run {i + 1}" for i in range(len(runs))] if len(runs) > 1 else [""]
    )
    if len(labels) != len(runs):
        raise ConfigError(f"plot_history: {len(runs)} runs but {len(labels)} labels.")
    parsed = [_history_dict(run) for run in runs]
    shown = [m for m in metrics if any(m in logs or f"val_{m}" in logs for logs, _ in parsed)]
    if not shown:
        available = sorted({key for logs, _ in parsed for key in logs})
        raise ConfigError(f"plot_history: none of {list(metrics)} is in the history; it has {available}.")
    with_rate = any(len(set(logs.get("learning_rate", []))) > 1 for logs, _ in parsed) or any(
        len(set((getattr(run, "steps", None) or {}).get("learning_rate", []))) > 1 for run in runs
    )
    panels = shown + (["learning_rate"] if with_rate else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, ((logs, epochs), label, run) in enumerate(zip(parsed, labels, runs)):
        colour = colours[index % len(colours)]
        x = [epoch + 1 for epoch in epochs]
        rates = logs.get("learning_rate", [])
        changes = [x[i] - 0.5 for i in range(1, len(rates)) if rates[i] != rates[i - 1]]
        steps = getattr(run, "steps", None) or {}
        per_step = bool(steps.get("epoch")) and len(epochs) <= STEP_CURVES_UP_TO  # a short run: every step
        if per_step:
            positions = steps["epoch"]  # validation sits at the last step of its epoch (a budget may stop part-way)
            x = [max((p for p in positions if epoch < p <= epoch + 1), default=epoch + 1) for epoch in epochs]
            changes = []  # the per-step learning rate shows its own changes
            _plot_steps(axes[0], panels, steps, colour, label)
        for axis, metric in zip(axes[0], panels):
            drawn = per_step and metric in steps
            if metric == "learning_rate" and not drawn:
                axis.plot(x, rates, color=colour, marker="o", markersize=3, drawstyle="steps-mid", label=label or None)
                _log_scale(axis)
            elif metric != "learning_rate":
                if metric in logs and not drawn:
                    axis.plot(
                        x, logs[metric], color=colour, marker="o", markersize=3, label=f"{label} training".strip()
                    )
                if f"val_{metric}" in logs:
                    axis.plot(
                        x,
                        logs[f"val_{metric}"],
                        color=colour,
                        linestyle="--",
                        marker="o",
                        markersize=4 if per_step else 3,
                        label=f"{label} validation".strip(),
                    )
            for change in changes:
                axis.axvline(change, color=colour, linestyle=":", linewidth=1)
    for axis, metric in zip(axes[0], panels):
        axis.set_title(metric.replace("_", " "))
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
        axis.xaxis.get_major_locator().set_params(integer=True)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return save_figure(figure, path)
