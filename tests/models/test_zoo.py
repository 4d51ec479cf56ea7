import numpy as np
import pytest

from hubel.models.zoo import ZOO, create_model, list_models

KERAS_COUNTS = {
    "fashion_cnn": 243_786,
    "cifar_convnet": 703_594,
    "cifar_convnet_gmp": 179_306,
    "lenet": 61_706,
    "mlp": 101_770,
    "mnist_pyramid": 93_322,
    "mnist_one_conv": 542_230,
}


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_builds_runs_on_raw_pixels_and_round_trips(name, tmp_path):
    model = create_model(name, num_classes=5)
    shape = ZOO.get(name).input_shape
    assert model.input_shape == (None, *shape) and model.output_shape == (None, 5)
    if name in KERAS_COUNTS:
        assert create_model(name).count_params() == KERAS_COUNTS[name]
    pixels = np.random.default_rng(0).integers(0, 256, (2, *shape), dtype=np.uint8)
    probabilities = model.predict(pixels)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    from hubel import load_model

    assert np.array_equal(load_model(model.save(tmp_path / f"{name}.hubel")).predict(pixels), probabilities)


def test_two_classes_get_one_sigmoid_unit_and_shapes_can_change():
    model = create_model("cifar_convnet_gmp", num_classes=2, input_shape=(96, 96, 3))
    assert model.output_shape == (None, 1) and model.layers[-1].activation == "sigmoid"
    assert model.count_params() == 179_306 - 10_250 + 1_025  # the 10-way head (10,250) becomes one unit (1,025)
