import numpy as np
import pytest

import hubel
from hubel import layers as L


@pytest.fixture(scope="module")
def digits_model():
    """A small convnet trained on the 8x8 digits (about 95% on their test split), with class names."""
    (x_train, y_train), (x_test, y_test) = hubel.datasets.load("digits")
    hubel.set_seed(0)
    model = hubel.Sequential([
        L.Input((8, 8, 1)), L.Rescaling(1 / 255), L.Conv2D(16, 3, padding="same", activation="relu"),
        L.Flatten(), L.Dense(10, activation="softmax"),
    ])  # fmt: skip
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=10, verbose=0)
    model.metadata.update(class_names=[f"digit {d}" for d in range(10)], data="digits")
    return model, x_test, y_test


@pytest.fixture(scope="module")
def review_model():
    """A text model whose answer follows its words: 'good' pushes toward positive, 'bad' away."""
    vectorize = L.TextVectorization(output_sequence_length=6, vocabulary=["good", "bad", "film"])
    model = hubel.Sequential([vectorize, L.Embedding(5, 1), L.GlobalAveragePooling1D(), L.Dense(1, "sigmoid")])
    embedding, dense = model.layers[1], model.layers[3]
    embedding.set_weights([np.array([[0.0], [0.0], [1.0], [-1.0], [0.0]], np.float32)])  # pad, OOV, good, bad, film
    dense.set_weights([np.array([[6.0]], np.float32), np.zeros(1, np.float32)])
    model.metadata.update(class_names=["negative", "positive"], data="made up")
    return model
