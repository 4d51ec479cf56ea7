"""One self-contained HTML report of a trained model: images embedded, no network, no
JavaScript. Sections, in order: headline, model, data, curves, per-class metrics and confusion
matrix, most confused pairs and worst predictions, Grad-CAM, first-layer filters, feature maps,
environment.

    hubel.inspect.report(model, history, (x_test, y_test), path="report.html")
"""

from __future__ import annotations

import base64
import html
import io
import os
import platform
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from hubel.errors import ConfigError, HubelError
from hubel.files import atomic_write
from hubel.inspect import confusion
from hubel.inspect.attribution import highlight_words, word_attributions
from hubel.inspect.filters import show_feature_maps, show_filters
from hubel.inspect.gradcam import GradCam
from hubel.inspect.plots import picture_axes, plot_history, plt
from hubel.models.model import is_text
from hubel.models.summary import readable_bytes, summarize

__all__ = ["report"]

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 0;
       color: #1d2330; background: #f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 26px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 0 0 12px; }
section { background: #fff; border: 1px solid #e3e6eb; border-radius: 10px; padding: 18px 22px; margin: 18px 0; }
.headline { display: flex; gap: 18px; flex-wrap: wrap; }
.stat { background: #f0f4ff; border-radius: 8px; padding: 10px 16px; min-width: 140px; }
.stat b { display: block; font-size: 24px; } .stat span { color: #5b6475; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { padding: 4px 10px; border-bottom: 1px solid #eceef2; text-align: right; }
th { background: #f4f5f8; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; } .muted { color: #5b6475; font-size: 13px; }
"""


def _png(figure: Figure, dpi: int = 80) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _img(figure: Figure, alt: str) -> str:
    return f'<img src="{_png(figure)}" alt="{html.escape(alt)}">'


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{content}</section>'


def report(
    model: Any,
    history: Any = None,
    data: Any = None,
    path: str | Path = "report.html",
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    seed: int | None = None,
    max_examples: int = 10_000,
    notes: Sequence[str] = (),
    outputs: np.ndarray | None = None,
    split: str = "test",
) -> Path:
    """Write the report for `model` evaluated on `data` ((x_test, y_test) or a dataset of
    batches), with the curves of `history`; returns the path. `outputs`: the model's outputs on
    `data` when the caller has them already (hubel train's test pass). `split` names what `data`
    is in the figures: "test", or "validation" when no test split was held out (a note says so)."""
    started = time.perf_counter()
    if data is None:
        raise ConfigError("report needs evaluation data: report(model, history, (x_test, y_test)).")
    images, labels, probabilities = confusion.predictions(model, data, max_examples, outputs)
    text = is_text(images)  # a text model's examples are strings
    skipped = list(getattr(data, "skipped", []))
    names = list(class_names or getattr(data, "class_names", None) or model.metadata.get("class_names") or [])
    binary = probabilities.ndim == 2 and probabilities.shape[1] == 1
    label_index = confusion._labels(labels)
    predicted = confusion._labels(probabilities)
    num_classes = 2 if binary else probabilities.shape[1]
    names = names if len(names) == num_classes else [str(i) for i in range(num_classes)]
    counts = confusion.confusion_matrix(label_index, predicted, num_classes)
    losses = confusion.top_losses(probabilities, label_index, n=len(label_index))
    mean_loss = float(np.mean([loss for _, loss in losses]))
    accuracy = float(np.trace(counts) / counts.sum())
    parts = [
        _headline(
            model, history, accuracy, mean_loss, len(label_index), title, notes, "texts" if text else "images", split
        ),
        _model_section(model),
        _data_section(images, label_index, names, skipped),
    ]
    if history is not None and getattr(history, "history", None):
        parts.append(_section("curves", "Training curves", _img(plot_history(history), "training curves")))
    parts.append(_metrics_section(label_index, probabilities, counts, names, binary))
    if text:
        parts.append(_text_mistakes_section(images, probabilities, label_index, counts, names, losses))
        parts.append(_attribution_section(model, images, label_index, predicted, names))
    else:
        parts.append(_mistakes_section(images, probabilities, label_index, counts, names))
        parts += _pictures_sections(model, images, label_index, predicted, names)
    parts.append(_environment_section(model, history, seed, time.perf_counter() - started))
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title or 'hubel report')}</title><style>{_STYLE}</style></head>"
        f"<body><main>{''.join(parts)}</main></body></html>"
    )
    path = Path(path)
    with atomic_write(path, "w", encoding="utf-8") as file:
        file.write(page)
    return path


def _headline(
    model: Any,
    history: Any,
    accuracy: float,
    loss: float,
    count: int,
    title: str | None,
    notes: Sequence[str],
    noun: str = "images",
    split: str = "test",
) -> str:
    seconds = getattr(history, "params", {}).get("seconds") if history is not None else None
    epochs = len(getattr(history, "epoch", [])) if history is not None else 0
    stats = [
        (f"{accuracy:.2%}", f"{split} accuracy on {count:,} {noun}"),
        (f"{loss:.4f}", f"{split} loss (cross-entropy)"),
        (
            f"{seconds:.0f} s" if seconds else "–",
            f"training time, {epochs} epoch{'s' if epochs != 1 else ''}" if epochs else "training time",
        ),
        (f"{model.count_params():,}", "parameters"),
    ]
    cards = "".join(f'<div class="stat"><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>' for v, k in stats)
    if split != "test":
        held_out = "Hold out a test split (a test/ folder) for a figure that no choice has seen."
        notes = [*notes, f"No test split was held out: these figures are on the {split} split, which the run "
                 f"watched while it trained. {held_out}"]  # fmt: skip
    return (
        f'<section id="headline"><h1>{html.escape(title or model.name)}</h1>'
        f'<p class="muted">hubel report, {time.strftime("%Y-%m-%d %H:%M")}</p>'
        f'<div class="headline">{cards}</div>' + "".join(f"<p>{html.escape(note)}</p>" for note in notes) + "</section>"
    )


def _model_section(model: Any) -> str:
    summary = summarize(model)
    rows = [
        (
            f"{row.name} ({row.class_name})",
            str(row.output_shape),
            f"{row.params:,}",
            f"{row.macs:,}",
            readable_bytes(row.output_bytes),
        )
        for row in summary.rows
    ]
    footer = (
        f"<p class='muted'>Total params {summary.total_params:,} (trainable {summary.trainable_params:,}, "
        f"non-trainable {summary.non_trainable_params:,}); {summary.macs:,} MACs per example; parameter memory "
        f"{summary.param_bytes / 2**20:.2f} MB.</p>"
    )
    table = _table(["Layer (type)", "Output Shape", "Param #", "MACs", "Output memory"], rows)
    return _section("model", "Model", table + footer)


def _data_section(images: np.ndarray, labels: np.ndarray, names: list[str], skipped: list[Any]) -> str:
    counts = Counter(labels.tolist())
    noun = "texts" if is_text(images) else "images"
    rows = [(name, f"{counts.get(index, 0):,}") for index, name in enumerate(names)]
    if noun == "texts":
        words = np.array([len(str(example).split()) for example in images])
        text = (
            f"<p>{len(labels):,} evaluation texts, {len(names)} classes; words per text: median "
            f"{int(np.median(words)):,}, 90th percentile {int(np.percentile(words, 90)):,}, "
            f"longest {words.max():,}.</p>"
        )
    else:
        text = f"<p>{len(labels):,} evaluation images of shape {tuple(images.shape[1:])}, {len(names)} classes.</p>"
    text += _table(["class", noun], rows)
    if skipped:
        listed = "".join(f"<li>{html.escape(item.path)}: {html.escape(item.reason)}</li>" for item in skipped[:50])
        text += f"<p>{len(skipped)} files were skipped:</p><ul class='muted'>{listed}</ul>"
    else:
        text += "<p class='muted'>No files were skipped.</p>"
    return _section("data", "Data", text)


def _metrics_section(
    labels: np.ndarray, probabilities: np.ndarray, counts: np.ndarray, names: list[str], binary: bool
) -> str:
    top_k = 3 if not binary and len(names) > 3 else None
    result = confusion.classification_report(
        labels, probabilities if not binary else confusion._labels(probabilities), names, top_k=top_k
    )
    rows = [
        (r.name, f"{r.precision:.3f}", f"{r.recall:.3f}", f"{r.f1:.3f}", f"{r.support:,}") for r in result["classes"]
    ]
    rows.append(
        (
            "macro average",
            f"{result['macro_precision']:.3f}",
            f"{result['macro_recall']:.3f}",
            f"{result['macro_f1']:.3f}",
            f"{counts.sum():,}",
        )
    )
    extra = f"<p>Top-3 accuracy {result['top_3_accuracy']:.2%}.</p>" if "top_3_accuracy" in result else ""
    if binary:
        sweep = confusion.threshold_sweep(labels, probabilities)
        roc = confusion.roc_curve(labels, probabilities) if len(set(labels.tolist())) == 2 else None
        extra += (
            f"<p>Best threshold {sweep['best_threshold']:.2f} (accuracy {sweep['best_accuracy']:.2%}); Pearson "
            f"correlation of probabilities and labels {confusion.pearson(labels, probabilities):.3f}"
            + (f"; ROC AUC {roc['auc']:.3f}" if roc else "")
            + ".</p>"
        )
    matrix = _img(confusion.plot_confusion_matrix(counts, names), "confusion matrix")
    return _section(
        "metrics",
        "Per-class metrics and confusion matrix",
        _table(["class", "precision", "recall", "F1", "support"], rows) + extra + matrix,
    )


def _mistakes_section(
    images: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, counts: np.ndarray, names: list[str]
) -> str:
    pairs = confusion.most_confused(counts, names, n=8)
    text = _table(["true class", "predicted as", "images"], pairs) if pairs else "<p>No mistakes.</p>"
    text += _img(confusion.show_top_losses(images, probabilities, labels, names, n=10), "worst predictions")
    return _section("mistakes", "Most confused pairs and worst predictions", text)


def _snippet(text: str, limit: int = 320) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def _text_mistakes_section(
    texts: np.ndarray,
    probabilities: np.ndarray,
    labels: np.ndarray,
    counts: np.ndarray,
    names: list[str],
    losses: list[tuple[int, float]],
) -> str:
    pairs = confusion.most_confused(counts, names, n=8)
    content = _table(["true class", "predicted as", "texts"], pairs) if pairs else "<p>No mistakes.</p>"
    predicted = confusion._labels(probabilities)
    rows = []
    for index, loss in losses[:10]:
        scores = probabilities[index]
        confidence = float(scores[0] if predicted[index] == 1 else 1 - scores[0]) if len(scores) == 1 else scores.max()
        rows.append(
            (
                names[labels[index]],
                f"{names[predicted[index]]} ({confidence:.1%})",
                f"{loss:.2f}",
                _snippet(texts[index]),
            )
        )
    content += "<p>The ten worst predictions (largest loss):</p>"
    content += _table(["true class", "predicted", "loss", "text"], rows).replace("<td>", "<td style='text-align:left'>")
    return _section("mistakes", "Most confused pairs and worst predictions", content)


def _attribution_section(
    model: Any, texts: np.ndarray, labels: np.ndarray, predicted: np.ndarray, names: list[str]
) -> str:
    right = [int(i) for i in np.flatnonzero(predicted == labels)[:2]]
    wrong = [int(i) for i in np.flatnonzero(predicted != labels)[:2]]
    blocks = []
    for index in right + wrong:
        words = word_attributions(model, str(texts[index]), int(predicted[index]), max_words=250)
        verdict = "right" if index in right else f"wrong, true {names[labels[index]]}"
        blocks.append(
            f"<h3 style='font-size:15px'>Predicted {html.escape(names[predicted[index]])} ({html.escape(verdict)})</h3>"
            f"<p style='line-height:1.8'>{highlight_words(words, limit=250)}</p>"
        )
    legend = (
        "<p class='muted'>Each word shaded by how much the predicted class's probability drops without it "
        "(occlusion): green argued for the prediction, red against; hover a word for its score.</p>"
    )
    return _section("attribution", "Which words decided: two right, two wrong", legend + "".join(blocks))


def _pictures_sections(
    model: Any, images: np.ndarray, labels: np.ndarray, predicted: np.ndarray, names: list[str]
) -> list[str]:
    sections = []
    try:
        correct = [int(i) for i in np.flatnonzero(predicted == labels)[:3]]
        wrong = [int(i) for i in np.flatnonzero(predicted != labels)[:3]]
        chosen = correct + wrong
        figure, axes = plt.subplots(1, max(len(chosen), 1), figsize=(2.6 * max(len(chosen), 1), 3.0), squeeze=False)
        with GradCam(model) as cam:
            for axis, index in zip(axes[0], chosen):
                heatmap, _ = cam(images[index], int(predicted[index]))
                picture = images[index][..., 0] if images[index].shape[-1] == 1 else images[index]
                axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
                axis.imshow(
                    heatmap, cmap="jet", alpha=0.45, extent=(-0.5, picture.shape[1] - 0.5, picture.shape[0] - 0.5, -0.5)
                )
                verdict = "right" if index in correct else f"wrong, true {names[labels[index]]}"
                axis.set_title(f"{names[predicted[index]]} ({verdict})", fontsize=8)
                picture_axes(axis)
            layer = cam.layer.name
        sections.append(_section("gradcam", f"Grad-CAM ({layer}): three right, three wrong", _img(figure, "Grad-CAM")))
        sections.append(_section("filters", "First-layer filters", _img(show_filters(model), "filters")))
        sections.append(
            _section(
                "featuremaps",
                "Feature maps for one example",
                _img(show_feature_maps(model, images[0], max_maps=32), "feature maps"),
            )
        )
    except HubelError as error:  # a model without conv layers: say so instead of the pictures
        sections.append(
            _section(
                "gradcam",
                "Grad-CAM, filters and feature maps",
                f"<p class='muted'>Not shown: {html.escape(str(error))}</p>",
            )
        )
    return sections


def _environment_section(model: Any, history: Any, seed: int | None, seconds: float) -> str:
    from hubel import __version__

    parameter = next(model.parameters(), None)
    rows = [
        ("hubel", __version__),
        ("torch", torch.__version__),
        ("python", platform.python_version()),
        ("device", str(parameter.device) if parameter is not None else "cpu"),
        ("threads", str(torch.get_num_threads())),
        ("seed", "not recorded" if seed is None else str(seed)),
        (
            "training time",
            f"{history.params.get('seconds', 0):.1f} s"
            if history is not None and getattr(history, "params", None)
            else "–",
        ),
        ("report time", f"{seconds:.1f} s"),
        ("machine", f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores"),
    ]
    return _section("environment", "Environment", _table(["", ""], rows))
