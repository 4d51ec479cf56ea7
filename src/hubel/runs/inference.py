"""A model on examples: the run's test pass (on ONNX Runtime when that repays its start),
`hubel predict` on files and texts, and `hubel evaluate` on a dataset or a folder."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from hubel.data import datasets
from hubel.data.folders import image_folder
from hubel.data.text import read_text_file, text_folder
from hubel.errors import ConfigError, DataError
from hubel.models.applications.backbones import BACKBONES
from hubel.models.model import Model, is_text, top_classes
from hubel.runs.setup import _holds_text, _load_data

_INFERENCE_BATCH = 256  # the test pass at the end of a run, and the budget probe that times it
# ONNX Runtime on a test pass: its lowest lead over PyTorch measured here (0.90x the time since
# PyTorch's blocks stay allocated, train/allocator.py), and its start: 0.15-0.3 s to export, check
# and open a session, plus 1.4 s to import onnx the first time (torch's exporter needs it). A pass
# that saves less runs on PyTorch (benchmarks/README.md).
_ONNX_SPEEDUP = 1.10
_ONNX_START_SECONDS = 0.3
_ONNX_FIRST_START_SECONDS = 1.9


def _test_outputs(
    network: Model, inputs: Any, engine: str = "auto", seconds_per_example: float | None = None
) -> tuple[np.ndarray, str]:
    """The model's outputs on `inputs` (NHWC pixels, or a text model's token ids) in batches of
    _INFERENCE_BATCH, and which engine computed them. engine "auto": ONNX Runtime on a CPU when it
    is installed, its export reproduces the model, and the pass is long enough to repay its
    start (the export and its parity check, and the first time in a process importing onnx);
    else PyTorch. The pass's length comes from `seconds_per_example` (PyTorch's) or from timing
    the first batch, whose outputs are kept."""
    from hubel.serve.engine import choose_engine

    batches = [inputs[start : start + _INFERENCE_BATCH] for start in range(0, len(inputs), _INFERENCE_BATCH)]
    outputs: list[np.ndarray] = []
    note = None
    if engine == "auto":
        if seconds_per_example is None:
            started = time.perf_counter()
            outputs.append(network.predict(batches[0], batch_size=_INFERENCE_BATCH))
            seconds_per_example = (time.perf_counter() - started) / len(batches[0])
        rest = sum(len(batch) for batch in batches[len(outputs) :]) * seconds_per_example
        start_cost = _ONNX_START_SECONDS if "onnx" in sys.modules else _ONNX_FIRST_START_SECONDS
        if rest * (1 - 1 / _ONNX_SPEEDUP) <= start_cost:
            engine, note = "torch", "PyTorch (a pass this short does not repay ONNX Runtime's start)"
    runner = choose_engine(network, engine)
    for batch in batches[len(outputs) :]:
        outputs.append(runner(_engine_input(network, batch) if runner.name == "onnxruntime" else batch))
    return np.concatenate(outputs), note or runner.note


def _engine_input(network: Model, batch: Any) -> np.ndarray:
    """A batch as the exported graph takes it, through the model's own input checks (so a wrong
    shape gets predict's error): token ids for a text model, else float32 NHWC pixels."""
    array = np.asarray(batch)
    if array.shape[1:] == tuple(network.input_shape[1:]) and array.dtype.kind in "uif":
        # NumPy, not torch: torch's idle OpenMP threads would spin against ONNX Runtime's
        return array.astype(np.int64 if network._vectorizers[0] is not None else np.float32, copy=False)
    x = network._boundary_in(batch)[0]  # (N, T) ids, or (N, C, H, W) float: grayscale, channels first
    if network._vectorizers[0] is not None:
        return x.cpu().numpy().astype(np.int64, copy=False)
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).float().cpu().numpy())


def predict_files(model: Model | str | Path, paths: list[str | Path], top: int = 3) -> list[dict[str, Any]]:
    """Top-k classes with probabilities for image files, decoded exactly as image folders are for
    training (size and colour mode from the model's input shape). `model` is a model, a .hubel
    file, a run directory, or a pretrained backbone's name ("mobilenet_v2": its ImageNet classes).
    For a text model, each item is a .txt file or the text itself."""
    from hubel.data.images import DecodeOptions, UnreadableImage, decode_image

    network = _model_for_prediction(model)
    names = network.metadata.get("class_names") or []
    if getattr(network, "_vectorizers", [None])[0] is not None:
        return _predict_texts(network, [str(path) for path in paths], names, top)
    height, width, channels = network.input_shape[1:]
    options = DecodeOptions((height, width), "grayscale" if channels == 1 else "rgb")
    results = []
    for path in paths:
        try:
            pixels = decode_image(Path(path), options)
        except UnreadableImage as reason:
            raise DataError(f"{path}: {reason}. Pass an image file Pillow can read.") from None
        results.append({"file": str(path), "top": top_classes(network.predict(pixels[None])[0], names, top)})
    return results


def _predict_texts(network: Model, items: list[str], names: list[str], top: int) -> list[dict[str, Any]]:
    texts, files = [], []
    for item in items:
        path = Path(item)
        is_file = path.suffix.lower() == ".txt" and path.is_file()
        text, why = read_text_file(path) if is_file else (item, None)
        if text is None or not text.strip():
            where = f"{item}: " if is_file else ""
            raise DataError(f"{where}{why or 'empty text'}: give some text (in quotes) or a .txt file that holds text.")
        texts.append(text)
        files.append(str(path) if is_file else None)
    scores = network.predict(texts)
    return [
        {"file": file, "text": text if len(text) <= 200 else text[:197] + "...", "top": top_classes(row, names, top)}
        for file, text, row in zip(files, texts, scores)
    ]


def _model_for_prediction(model: Model | str | Path) -> Model:
    from hubel.models.io import load_model

    if isinstance(model, Model):
        return model
    if isinstance(model, str) and model in BACKBONES and not Path(model).exists():
        from hubel.models.applications.transfer import pretrained_classifier

        return pretrained_classifier(model)
    path = _model_path(model)
    if not path.exists() and isinstance(model, str) and "/" not in model and not model.endswith(".hubel"):
        raise ConfigError(
            f"{model!r} is neither a model file, a run directory nor a pretrained backbone "
            f"({', '.join(BACKBONES.names())})."
        )
    return load_model(path)


def _model_path(model: str | Path) -> Path:
    path = Path(model)
    return path / "model.hubel" if path.is_dir() else path


def _evaluation_data(data: str, image_size: tuple[int, int], batch_size: int) -> tuple[Any, list[str]]:
    """What evaluate measures: a built-in dataset's test split; a folder's test/, else its
    val/ (validation/), else — a flat folder of class folders — every image in it."""
    if data in datasets.list_datasets():
        loaded = _load_data(data, image_size, batch_size, seed=0)
        return loaded["test"], loaded["class_names"]
    if not Path(data).is_dir():
        raise DataError(f"{data!r} is neither a built-in dataset ({', '.join(datasets.list_datasets())}) nor a folder.")
    if _holds_text(Path(data)):
        for subset in ("test", "validation", None):
            try:
                texts = text_folder(data, subset=subset, verbose=False)
            except ConfigError:
                continue
            return texts.numpy(), texts.class_names
    for subset in ("test", "validation", None):
        try:
            folder = image_folder(data, image_size, batch_size, subset=subset, shuffle=False, verbose=False)
        except ConfigError:
            continue
        return folder, folder.class_names
    raise DataError(f"{data}: no images to evaluate on.")


def evaluate(
    model: str | Path, data: str, out: str | Path | None = None, batch_size: int = 32, engine: str = "auto"
) -> dict[str, Any]:
    """Loss, accuracy and per-class metrics of a saved model (or run directory) on `data`: a
    built-in dataset's test split, or a folder (its test/, else val/, else all of it: a flat
    folder of class folders is the test set); the confusion matrix is saved as a PNG beside the
    model unless `out` names another path. `engine`: "auto" (ONNX Runtime on a CPU when it is
    installed and reproduces the model, else PyTorch), "onnxruntime" or "torch"."""
    from hubel.inspect.confusion import classification_report, confusion_matrix, examples, plot_confusion_matrix
    from hubel.models.io import load_model

    path = _model_path(model)
    network = load_model(path)
    text_model = network._vectorizers[0] is not None
    image_size = None if text_model else tuple(network.input_shape[1:3])
    test, folder_names = _evaluation_data(data, image_size, batch_size)  # type: ignore[arg-type]
    if text_model != is_text(test[0] if isinstance(test, tuple) else next(iter(test))[0]):
        kinds = ("text", "images") if text_model else ("images", "text")
        raise DataError(f"{path} is a model for {kinds[0]}, and {data} holds {kinds[1]}. Evaluate it on {kinds[0]}.")
    names = network.metadata.get("class_names") or folder_names
    if sorted(names) != sorted(folder_names):
        raise DataError(
            f"{data} has the classes {folder_names}, but the model was trained on {names}. Evaluate on a folder with "
            f"the same class folders."
        )
    inputs, labels = examples(test)
    started = time.perf_counter()
    if network._vectorizers[0] is not None:
        inputs = network.encode_inputs(inputs)
    probabilities, used = _test_outputs(network, inputs, engine)
    seconds = time.perf_counter() - started  # the engine's start (an export for ONNX Runtime) and the pass
    report = classification_report(labels, probabilities, names)
    counts = confusion_matrix(labels, probabilities, len(names))
    figure_path = Path(out) if out else path.with_name(f"{path.stem}-confusion.png")
    plot_confusion_matrix(counts, names, path=figure_path)
    chosen = (
        probabilities[np.arange(len(labels)), labels]
        if probabilities.shape[1] > 1
        else np.where(labels == 1, probabilities[:, 0], 1 - probabilities[:, 0])
    )
    loss = float(-np.log(np.clip(chosen, 1e-7, 1.0)).mean())
    return {
        "loss": loss,
        "accuracy": report["accuracy"],
        "examples": len(labels),
        "engine": used,
        "seconds": seconds,
        "classes": report["classes"],
        "confusion_png": str(figure_path),
    }
