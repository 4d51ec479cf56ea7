"""The .hubel model file: a zip of model.json (architecture spec, input shape, layer names,
versions, metadata) and weights.safetensors. Loading never unpickles; every way a file can
be wrong (truncated, foreign, newer) is one ModelFileError line."""

from __future__ import annotations

import json
import platform
import zipfile
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from hubel.errors import ConfigError, HubelError, ModelFileError
from hubel.files import atomic_write
from hubel.models.model import Model
from hubel.models.sequential import Sequential

__all__ = ["FORMAT", "FORMAT_VERSION", "load_model", "model_from_config", "model_from_json", "save_model"]

FORMAT = "hubel.model"
FORMAT_VERSION = 1
_SPEC, _WEIGHTS = "model.json", "weights.safetensors"


def save_model(model: Model, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write `model` to `path` atomically (temp file, fsync, rename); returns the path.

    metadata (e.g. class names, preprocessing) is merged into model.metadata and saved with it.
    """
    from hubel import __version__

    path = Path(path)
    if metadata:
        model.metadata.update(metadata)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.get_config(),
        "input_shape": list(model.input_shape[1:]),
        "layer_names": [layer.name for layer in model.layers],
        "versions": {"hubel": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "metadata": model.metadata,
        "test_time_augmentation": model.test_time_augmentation,
    }
    try:
        spec = json.dumps(document, indent=2, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise HubelError(f"model metadata must be plain JSON data (str, number, list, dict): {error}") from None
    weights = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    blob = safetensors.torch.save(weights, metadata={"format": FORMAT})
    with atomic_write(path) as file, zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_SPEC, spec)
        archive.writestr(_WEIGHTS, blob, compress_type=zipfile.ZIP_STORED)
    return path


def model_from_config(config: dict[str, Any]) -> Model:
    """A Sequential or a functional Model from its get_config() (told apart as Keras does: a
    functional config lists its input layers)."""
    if isinstance(config, dict) and "input_layers" in config:
        return Model.from_config(config)
    return Sequential.from_config(config)


def model_from_json(text: str) -> Model:
    """A model from model.to_json() (or a bare get_config() as JSON), as Keras's model_from_json:
    the architecture, with fresh weights."""
    try:
        document = json.loads(text)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"model_from_json: expected the JSON text of model.to_json(). Received: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"model_from_json: expected a JSON object. Received: {type(document).__name__}")
    return model_from_config(document.get("config", document) if "class_name" in document else document)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> Model:
    """Read a .hubel file written by model.save, with bit-identical weights, in eval mode.

    Example:
        >>> import tempfile, hubel
        >>> from hubel import layers as L
        >>> model = hubel.Sequential([L.Dense(3, input_shape=(4,))])
        >>> path = model.save(tempfile.mkdtemp() + "/tiny.hubel")
        >>> hubel.load_model(path).count_params()
        15
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file. Pass the path of a .hubel file (written by model.save).")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if _SPEC not in names or _WEIGHTS not in names:
                raise ModelFileError(
                    f"{path}: not a hubel model file (a zip without {_SPEC} and {_WEIGHTS}). "
                    f"Load a file written by model.save."
                )
            spec_bytes, blob = archive.read(_SPEC), archive.read(_WEIGHTS)
    except zipfile.BadZipFile:
        raise ModelFileError(
            f"{path}: not a hubel model file, or a truncated one (not a readable zip archive). "
            f"Save the model again with model.save."
        ) from None
    except (zipfile.LargeZipFile, EOFError, OSError) as error:
        raise ModelFileError(f"{path}: the model file is damaged ({error}). Save the model again.") from None
    try:
        document = json.loads(spec_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path}: {_SPEC} is not valid JSON ({error}). The file is damaged.") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a hubel model file ({_SPEC} does not say format {FORMAT!r}).")
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        written_by = document.get("versions", {}).get("hubel", "a newer hubel")
        raise ModelFileError(
            f"{path}: written in model format {version!r} by hubel {written_by}; this hubel reads format "
            f"{FORMAT_VERSION} and older. Upgrade hubel (pip install -U hubel)."
        )
    try:
        model = model_from_config(document["model"])
    except HubelError as error:
        raise ModelFileError(f"{path}: the architecture in {_SPEC} cannot be rebuilt: {error}") from None
    except (KeyError, TypeError) as error:
        raise ModelFileError(f"{path}: {_SPEC} is incomplete ({error!r}). The file is damaged.") from None
    try:
        weights = safetensors.torch.load(blob)
    except Exception as error:  # safetensors raises its own SafetensorError and others on bad bytes
        raise ModelFileError(f"{path}: {_WEIGHTS} is damaged ({error}). Save the model again.") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = sorted(key for key in expected if key in weights and weights[key].shape != expected[key].shape)
    if missing or unexpected or wrong:
        raise ModelFileError(
            f"{path}: the weights do not match the architecture (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, wrong shape {wrong[:3]}). The file is damaged or was edited."
        )
    model.load_state_dict(weights)
    model.metadata = dict(document.get("metadata") or {})
    try:
        model.test_time_augmentation = document.get("test_time_augmentation")
    except ConfigError as error:
        raise ModelFileError(f"{path}: {error} Upgrade hubel, or the file was edited.") from None
    return model.to(device).eval()
