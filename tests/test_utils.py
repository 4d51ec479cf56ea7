"""hubel.utils: Keras's keras.utils names over hubel's own functions."""

import numpy as np
import pytest
from PIL import Image

import hubel
from hubel.errors import ConfigError
from hubel.utils import image_dataset_from_directory, pad_sequences, set_random_seed, to_categorical


def test_the_keras_mnist_example_trains_on_one_hot_labels():
    from hubel import layers as L

    (x, y), _ = hubel.datasets.load("digits")
    histories = []
    for loss, labels in (("categorical_crossentropy", to_categorical(y, 10)), ("sparse_categorical_crossentropy", y)):
        set_random_seed(0)
        model = hubel.Sequential(
            [L.Input((8, 8)), L.Rescaling(1 / 255), L.Flatten(), L.Dense(10, activation="softmax")]
        )
        model.compile(optimizer=hubel.optimizers.Adam(0.01), loss=loss, metrics=["accuracy"])
        histories.append(model.fit(x, labels, epochs=5, batch_size=32, verbose=0).history)
    assert histories[0]["accuracy"][-1] > 0.8  # ten classes: chance is 0.1
    np.testing.assert_allclose(histories[0]["loss"], histories[1]["loss"], rtol=1e-5)  # one-hot = the indices
    assert pad_sequences([[1, 2]], maxlen=3).tolist() == [[0, 1, 2]]
    set_random_seed(3)
    first = np.random.rand()
    set_random_seed(3)
    assert np.random.rand() == first


def test_image_dataset_from_directory_takes_keras_arguments_and_defaults(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("dogs", "cats"):
        (tmp_path / name).mkdir()
        for index in range(5):
            Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / name / f"{index}.png")
    train, validation = image_dataset_from_directory(
        tmp_path, validation_split=0.2, subset="both", seed=1, batch_size=4, verbose=False
    )
    assert train.class_names == ["cats", "dogs"] and len(train.files) == 8 and len(validation.files) == 2
    images, _ = next(iter(train))
    assert tuple(images.shape[1:]) == (256, 256, 3)  # Keras's default size
    with pytest.raises(ConfigError, match="labels='inferred'"):
        image_dataset_from_directory(tmp_path, labels=[0, 1] * 5)
    with pytest.raises(ConfigError, match="Leave class_names out"):
        image_dataset_from_directory(tmp_path, class_names=["dogs", "cats"])
