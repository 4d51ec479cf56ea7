"""Labels as the tutorials prepare them: integer class indices to one-hot rows.

y_train = to_categorical(y_train, 10)     # (60000,) -> (60000, 10), for categorical_crossentropy
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hubel.errors import ConfigError

__all__ = ["to_categorical"]


def to_categorical(x: Any, num_classes: int | None = None) -> np.ndarray:
    """One-hot rows for integer labels, as keras.utils.to_categorical: a trailing axis of size 1
    is dropped, num_classes defaults to the largest label + 1, and the result is float64.

    Example:
        >>> to_categorical([0, 2, 1], 3).tolist()
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    values = np.asarray(x)
    if values.dtype.kind not in "iub" and not (values.dtype.kind == "f" and np.all(np.mod(values, 1) == 0)):
        raise ConfigError(f"to_categorical: expected integer class indices. Received: dtype {values.dtype}")
    labels = values.astype(np.int64)
    shape = labels.shape[:-1] if labels.ndim > 1 and labels.shape[-1] == 1 else labels.shape
    labels = labels.reshape(-1)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ConfigError(f"to_categorical: expected num_classes to be a positive integer. Received: {num_classes!r}")
    outside = labels[(labels < 0) | (labels >= num_classes)]
    if outside.size:
        raise ConfigError(
            f"to_categorical: labels must lie in [0, {num_classes}). Received: {int(outside[0])}"
            f"{f' and {outside.size - 1} more' if outside.size > 1 else ''}. Pass num_classes= the number of classes."
        )
    categorical = np.zeros((labels.size, int(num_classes)))
    categorical[np.arange(labels.size), labels] = 1.0
    return categorical.reshape(*shape, int(num_classes))
