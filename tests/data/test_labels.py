import numpy as np
import pytest

from hubel.data.labels import to_categorical
from hubel.errors import ConfigError


def test_one_hot_rows_as_keras_makes_them():
    # the Keras MNIST example: (N,) integer labels -> (N, 10) float rows for categorical_crossentropy
    labels = np.array([3, 0, 9, 3], dtype=np.uint8)
    rows = to_categorical(labels, 10)
    assert rows.shape == (4, 10) and rows.dtype == np.float64
    assert rows.argmax(axis=1).tolist() == [3, 0, 9, 3] and rows.sum() == 4
    assert to_categorical([[1], [0]]).tolist() == [[0.0, 1.0], [1.0, 0.0]]  # (N, 1): the 1 is dropped
    assert to_categorical(np.zeros((2, 3), dtype=int), 2).shape == (2, 3, 2)  # other shapes keep their axes
    assert to_categorical([2.0, 1.0]).tolist() == [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]  # whole floats, as Keras


def test_labels_outside_the_classes_get_one_clear_error():
    with pytest.raises(ConfigError, match=r"labels must lie in \[0, 3\). Received: 3 and 1 more"):
        to_categorical([0, 3, 4], 3)
    with pytest.raises(ConfigError, match=r"Received: -1"):
        to_categorical([-1, 0])  # numpy would wrap it to the last class
    with pytest.raises(ConfigError, match="integer class indices"):
        to_categorical([0.5, 1.0])
    with pytest.raises(ConfigError, match="positive integer"):
        to_categorical([0, 1], num_classes=0)
