"""Where a classifier is right and wrong: confusion matrix, per-class precision/recall/F1,
most confused pairs, worst predictions, and for binary models the threshold sweep, Pearson
correlation and ROC curve the cats-vs-dogs tutorial reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from hubel.data.folders import ImageFolderDataset
from hubel.errors import DataError
from hubel.inspect.plots import plt, save_figure

# the pass over the examples when the caller has no outputs (a report written again, a notebook's
# confusion matrix): airbench_tiny on MNIST's 10,000 test images took 2.57-2.83 s in batches of 256
# against 3.84-3.88 s at predict's default of 32 (2 cores; benchmarks/README.md)
_PASS_BATCH = 256

__all__ = [
    "ClassReport",
    "classification_report",
    "confusion_matrix",
    "examples",
    "most_confused",
    "pearson",
    "plot_confusion_matrix",
    "plot_roc",
    "predictions",
    "roc_curve",
    "show_top_losses",
    "threshold_sweep",
    "top_losses",
]


def examples(data: Any, limit: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, true labels) of (x, y) or a dataset of batches, at most `limit` of them."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return np.asarray(data[0])[:limit], _labels(np.asarray(data[1])[:limit])
    if isinstance(data, ImageFolderDataset):  # copied once from the cache, not batch by batch and then joined
        x, y = data.numpy(lazy=True)
        if len(x) == 0:
            raise DataError("the data holds no examples.")
        return x[:limit], _labels(y[:limit])
    batches = [(np.asarray(x), np.asarray(y)) for x, y in data]
    if not batches:
        raise DataError("the data holds no examples.")
    images = np.concatenate([x for x, _ in batches])[:limit]
    return images, _labels(np.concatenate([y for _, y in batches])[:limit])


def predictions(
    model: Any, data: Any, limit: int = 100_000, outputs: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, true labels, predicted probabilities) of a model on (x, y) or a dataset of batches.
    `outputs`: the model's outputs on `data` when they are at hand (no second pass)."""
    images, labels = examples(data, limit)
    if outputs is None:
        return images, labels, model.predict(images, batch_size=_PASS_BATCH)
    if len(outputs) < len(images):
        raise DataError(f"{len(outputs)} outputs for {len(images)} examples: pass the outputs of the whole data.")
    return images, labels, np.asarray(outputs)[: len(images)]


def _labels(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] > 1:
        return array.argmax(axis=1)  # one-hot or probabilities
    if array.ndim == 2 and array.shape[1] == 1 and array.dtype.kind == "f":
        return (array[:, 0] > 0.5).astype(np.int64)  # one sigmoid unit
    return array.reshape(len(array)).astype(np.int64)


def confusion_matrix(
    y_true: Any, y_pred: Any, num_classes: int | None = None, normalize: str | None = None
) -> np.ndarray:
    """counts[true, predicted]. y_pred may be labels, probabilities or one-hot rows; or call it as
    confusion_matrix(model, (x_test, y_test)) (or a dataset of batches).
    normalize: None (counts), "true" (rows sum to 1: recall), "pred" (columns: precision), "all".

    Example:
        >>> confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2]).tolist()
        [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    """
    if hasattr(y_true, "predict"):  # confusion_matrix(model, (x, y))
        _, truth, probabilities = predictions(y_true, y_pred)
        predicted = _labels(probabilities)
    else:
        truth, predicted = _labels(y_true), _labels(y_pred)
    if len(truth) != len(predicted):
        raise DataError(f"{len(truth)} true labels but {len(predicted)} predictions.")
    size = num_classes or int(max(truth.max(initial=0), predicted.max(initial=0)) + 1)
    counts = np.bincount(truth * size + predicted, minlength=size * size).reshape(size, size)
    if normalize is None:
        return counts
    axis = {"true": 1, "pred": 0, "all": None}[normalize]
    totals = counts.sum(axis=axis, keepdims=axis is not None)
    return np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)


@dataclass(frozen=True)
class ClassReport:
    name: str
    precision: float
    recall: float
    f1: float
    support: int


def classification_report(
    y_true: Any, y_pred: Any, class_names: Sequence[str] | None = None, top_k: int | None = None
) -> dict[str, Any]:
    """Per-class precision, recall, F1 and support; overall accuracy; macro averages; and top-k
    accuracy when y_pred holds probabilities."""
    counts = confusion_matrix(y_true, y_pred, len(class_names) if class_names else None)
    names = list(class_names) if class_names else [str(i) for i in range(len(counts))]
    rows = []
    for index, name in enumerate(names):
        true_positive = counts[index, index]
        predicted, actual = counts[:, index].sum(), counts[index].sum()
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(ClassReport(name, float(precision), float(recall), float(f1), int(actual)))
    report: dict[str, Any] = {
        "classes": rows,
        "accuracy": float(np.trace(counts) / counts.sum()) if counts.sum() else 0.0,
        "macro_precision": float(np.mean([r.precision for r in rows])),
        "macro_recall": float(np.mean([r.recall for r in rows])),
        "macro_f1": float(np.mean([r.f1 for r in rows])),
    }
    probabilities = np.asarray(y_pred)
    if top_k and probabilities.ndim == 2 and probabilities.shape[1] > top_k:
        best = np.argsort(-probabilities, axis=1)[:, :top_k]
        report[f"top_{top_k}_accuracy"] = float((best == _labels(y_true)[:, None]).any(axis=1).mean())
    return report


def most_confused(
    counts: np.ndarray, class_names: Sequence[str] | None = None, n: int = 5
) -> list[tuple[str, str, int]]:
    """The n largest off-diagonal cells: (true class, predicted class, count), largest first."""
    names = list(class_names) if class_names else [str(i) for i in range(len(counts))]
    off = [(counts[t, p], t, p) for t in range(len(counts)) for p in range(len(counts)) if t != p and counts[t, p]]
    return [(names[t], names[p], int(c)) for c, t, p in sorted(off, key=lambda item: (-item[0], item[1], item[2]))[:n]]


def plot_confusion_matrix(
    counts: np.ndarray,
    class_names: Sequence[str] | None = None,
    normalize: bool = True,
    path: str | Path | None = None,
    title: str | None = None,
) -> Figure:
    """A heatmap of the confusion matrix: rows are true classes; cells show row shares (recall)
    and counts."""
    names = list(class_names) if class_names else [str(i) for i in range(len(counts))]
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    size = max(4.0, 0.6 * len(names) + 2)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    shown = axis.imshow(shares if normalize else counts, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    if len(names) <= 20:
        for t in range(len(names)):
            for p in range(len(names)):
                dark = shares[t, p] > 0.5
                text = f"{shares[t, p]:.2f}\n{counts[t, p]}" if normalize else str(counts[t, p])
                axis.text(p, t, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    figure.colorbar(shown, ax=axis, shrink=0.8, label="share of the true class" if normalize else "images")
    accuracy = np.trace(counts) / counts.sum() if counts.sum() else 0.0
    axis.set_title(title or f"Confusion matrix (accuracy {accuracy:.3f}, {counts.sum():,} examples)")
    figure.tight_layout()
    return save_figure(figure, path)


def _per_example_loss(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if probabilities.ndim == 2 and probabilities.shape[1] == 1:
        p = np.clip(probabilities[:, 0], 1e-7, 1 - 1e-7)
        return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    return -np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0))


def top_losses(probabilities: Any, y_true: Any, n: int = 9) -> list[tuple[int, float]]:
    """The n examples the model got most wrong: (index, loss), largest loss first."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    losses = _per_example_loss(probabilities, _labels(y_true))
    order = np.argsort(-losses, kind="stable")[:n]
    return [(int(index), float(losses[index])) for index in order]


def show_top_losses(
    images: Any,
    probabilities: Any,
    y_true: Any = None,
    class_names: Sequence[str] | None = None,
    n: int = 9,
    path: str | Path | None = None,
) -> Figure:
    """A gallery of the worst predictions: true class, predicted class, its probability, the loss.
    Also show_top_losses(model, (x_test, y_test)) (or a dataset of batches)."""
    from hubel.inspect.plots import image_grid

    if hasattr(images, "predict"):  # (model, data)
        class_names = class_names or getattr(probabilities, "class_names", None)
        images, y_true, probabilities = predictions(images, probabilities)
    probabilities = np.asarray(probabilities)
    truth, predicted = _labels(y_true), _labels(probabilities)
    worst = top_losses(probabilities, truth, n)
    names = list(class_names) if class_names else [str(i) for i in range(int(max(truth.max(), predicted.max())) + 1)]
    titles = []
    for index, loss in worst:
        if probabilities.ndim == 2 and probabilities.shape[1] > 1:
            confidence = float(probabilities[index, predicted[index]])
        else:  # one sigmoid unit: the probability of the class it predicted
            positive = float(probabilities[index].ravel()[0])
            confidence = positive if predicted[index] == 1 else 1 - positive
        titles.append(f"true {names[truth[index]]}\npred {names[predicted[index]]} ({confidence:.2f})\nloss {loss:.2f}")
    pictures = np.asarray(images)[[index for index, _ in worst]]
    figure = image_grid(pictures, titles, min(len(worst), 5), "Worst predictions", small_titles=True)
    return save_figure(figure, path)


def threshold_sweep(y_true: Any, probabilities: Any, thresholds: Sequence[float] | None = None) -> dict[str, Any]:
    """For a binary model: accuracy, precision and recall at each threshold, and the best one.

    Example:
        >>> threshold_sweep([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9], [0.5, 0.65])["best_threshold"]
        0.65
    """
    truth = np.asarray(y_true).reshape(-1).astype(bool)
    scores = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if len(truth) != len(scores):
        raise DataError(f"{len(truth)} labels but {len(scores)} probabilities.")
    thresholds = list(thresholds) if thresholds is not None else [round(t, 2) for t in np.linspace(0.05, 0.95, 19)]
    rows = []
    for threshold in thresholds:
        predicted = scores > threshold
        true_positive = int((predicted & truth).sum())
        rows.append(
            {
                "threshold": float(threshold),
                "accuracy": float((predicted == truth).mean()),
                "precision": true_positive / int(predicted.sum()) if predicted.any() else 0.0,
                "recall": true_positive / int(truth.sum()) if truth.any() else 0.0,
            }
        )
    best = max(rows, key=lambda row: (row["accuracy"], -abs(row["threshold"] - 0.5)))
    return {"rows": rows, "best_threshold": best["threshold"], "best_accuracy": best["accuracy"]}


def pearson(y_true: Any, probabilities: Any) -> float:
    """Pearson correlation between predicted probabilities and 0/1 labels (the tutorial's score)."""
    truth = np.asarray(y_true, dtype=np.float64).reshape(-1)
    scores = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if truth.std() == 0 or scores.std() == 0:
        return math.nan
    return float(np.corrcoef(truth, scores)[0, 1])


def roc_curve(y_true: Any, probabilities: Any) -> dict[str, Any]:
    """False- and true-positive rates over every threshold, and the area under the curve.

    Example:
        >>> roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])["auc"]
        0.75
    """
    truth = np.asarray(y_true).reshape(-1).astype(bool)
    scores = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if not positives or not negatives:
        raise DataError("a ROC curve needs both classes among the labels.")
    order = np.argsort(-scores, kind="stable")
    scores, truth = scores[order], truth[order]
    distinct = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # last index of each score value
    true_positive = np.cumsum(truth)[distinct]
    false_positive = (distinct + 1) - true_positive
    tpr = np.r_[0.0, true_positive / positives]
    fpr = np.r_[0.0, false_positive / negatives]
    auc = float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": [math.inf, *scores[distinct].tolist()], "auc": auc}


def plot_roc(y_true: Any, probabilities: Any, path: str | Path | None = None) -> Figure:
    """The ROC curve of a binary model, with its AUC and the chance diagonal."""
    curve = roc_curve(y_true, probabilities)
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.plot(curve["fpr"], curve["tpr"], label=f"AUC {curve['auc']:.3f}")
    axis.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title("ROC curve")
    axis.legend(loc="lower right")
    axis.grid(alpha=0.3)
    return save_figure(figure, path)
