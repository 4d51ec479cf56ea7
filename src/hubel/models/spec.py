"""Model specs: the architecture as data, in JSON or YAML — the same format the model file
stores (Sequential.get_config), with shorthands for hand-written files:

```yaml
name: fashion_cnn
input_shape: [28, 28, 1]
layers:
  - Conv2D: {filters: 64, kernel_size: 3, activation: relu}
  - MaxPooling2D: {pool_size: 2}
  - Flatten                      # a layer without arguments
  - {class_name: Dense, config: {units: 10, activation: softmax}}
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from hubel.errors import ConfigError, HubelError
from hubel.layers.base import normalize_layer_entry
from hubel.models.sequential import Sequential

__all__ = ["load_spec", "model_from_spec", "normalize_spec"]


def load_spec(path: str | Path) -> dict[str, Any]:
    """Read a JSON or YAML spec file into the canonical form."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such spec file. Pass a .json or .yaml model spec.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the spec file ({error}).") from None
    try:
        document = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise ConfigError(
            f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {first_line}"
        ) from None
    try:
        return normalize_spec(document)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def normalize_spec(document: Any) -> dict[str, Any]:
    """Canonical {'name', 'input_shape', 'layers': [{'class_name', 'config'}]} from any accepted form.

    Example:
        >>> normalize_spec({"input_shape": [4], "layers": ["Flatten", {"Dense": {"units": 2}}]})["layers"]
        [{'class_name': 'Flatten', 'config': {}}, {'class_name': 'Dense', 'config': {'units': 2}}]
    """
    if isinstance(document, dict) and document.get("format") == "hubel.model":
        document = document.get("model")  # a model.json taken out of a .hubel file
    if isinstance(document, list):
        document = {"layers": document}
    if not isinstance(document, dict) or not isinstance(document.get("layers"), list):
        raise ConfigError(
            f"a model spec must be a mapping with a `layers` list (or a list of layers). Received: {_preview(document)}"
        )
    unknown = set(document) - {"name", "input_shape", "layers"}
    if unknown:
        raise ConfigError(f"unexpected keys {sorted(unknown)} in the model spec; expected name, input_shape, layers.")
    return {
        "name": document.get("name"),
        "input_shape": document.get("input_shape"),
        "layers": [normalize_layer_entry(entry, f"layer {index}") for index, entry in enumerate(document["layers"])],
    }


def model_from_spec(spec: str | Path | dict[str, Any] | list[Any], input_shape: Any = None) -> Sequential:
    """Build a Sequential from a spec file path or spec data; input_shape overrides the spec's."""
    from_file = isinstance(spec, (str, Path))
    canonical = load_spec(spec) if from_file else normalize_spec(spec)  # type: ignore[arg-type]
    if input_shape is not None:
        canonical["input_shape"] = list(input_shape)
        for entry in canonical["layers"][:1]:
            entry["config"] = {k: v for k, v in entry["config"].items() if k not in ("input_shape", "input_dim")}
    try:
        return Sequential.from_config(canonical)
    except HubelError as error:
        if not from_file:
            raise
        raise type(error)(f"{spec}: {error}") from None


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
