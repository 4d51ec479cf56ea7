"""hubel.utils: Keras's keras.utils names over hubel's own functions."""

import numpy as np
import pytest
from PIL import Image

import hubel
from hubel.errors import ConfigError
from hubel.utils import (
    image_dataset_from_directory,
    img_to_array,
    load_img,
    pad_sequences,
    set_random_seed,
    to_categorical,
)


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


def test_load_img_and_img_to_array_as_the_keras_tutorials_predict_one_photo(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (30, 60, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    image = load_img(tmp_path / "wide.png", target_size=(15, 30))
    array = img_to_array(image)
    assert array.shape == (15, 30, 3) and array.dtype == np.float32
    nearest = Image.Resampling.NEAREST  # Keras's default, through Pillow as Keras resizes
    np.testing.assert_array_equal(array, np.asarray(Image.fromarray(pixels).resize((30, 15), nearest)))
    square = img_to_array(load_img(tmp_path / "wide.png", target_size=(10, 10), keep_aspect_ratio=True))
    centered = Image.fromarray(pixels).resize((10, 10), nearest, box=(15, 0, 45, 30))  # the 30x30 middle
    np.testing.assert_array_equal(square, np.asarray(centered))
    assert img_to_array(load_img(tmp_path / "wide.png", color_mode="grayscale")).shape == (30, 60, 1)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(hubel.DataError, match=r"load_img: cannot read .*notes\.txt"):
        load_img(tmp_path / "notes.txt")


def test_the_tutorials_tf_data_chain_runs_on_an_image_folder(tmp_path):
    from hubel.utils import AUTOTUNE

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for index in range(6):
            Image.new("RGB", (8, 8), (index * 40, 0, 0)).save(tmp_path / name / f"{index}.png")
    train = image_dataset_from_directory(tmp_path, image_size=(8, 8), batch_size=4, shuffle=False, verbose=False)
    pipeline = train.cache().shuffle(1000, seed=3).prefetch(buffer_size=AUTOTUNE)
    assert sorted(train.numpy()[1].tolist()) == sorted(label for _, y in pipeline for label in y.tolist())
    assert [y.tolist() for _, y in train] == [[0, 0, 0, 0], [0, 0, 1, 1], [1, 1, 1, 1]]  # the original keeps its order
    assert [y.tolist() for _, y in pipeline] != [y.tolist() for _, y in train]  # the view shuffles
    ((images, _),) = train.take(1)
    assert images.shape == (4, 8, 8, 3) and len(train.take(-1)) == 3
