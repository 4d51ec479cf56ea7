import numpy as np
import pytest
import torch

import hubel
from helpers import fashion_layers, fashion_model
from hubel import layers as L
from hubel.errors import ConfigError, ShapeError

FASHION_SHAPES = [
    (None, 26, 26, 64),
    (None, 13, 13, 64),
    (None, 11, 11, 64),
    (None, 5, 5, 64),
    (None, 1600),
    (None, 128),
    (None, 10),
]


def test_fashion_mnist_network_matches_keras_figures():
    model = fashion_model()
    assert [layer.output_shape for layer in model.layers] == FASHION_SHAPES
    assert model.count_params() == 243_786
    assert [layer.count_params() for layer in model.layers] == [640, 0, 36928, 0, 0, 204928, 1290]
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    assert [layer.name for layer in model.layers] == [
        "conv2d",
        "max_pooling2d",
        "conv2d_1",
        "max_pooling2d_1",
        "flatten",
        "dense",
        "dense_1",
    ]


def test_three_ways_to_build_give_the_same_model():
    keras2 = fashion_model()
    keras3 = hubel.Sequential([L.Input(shape=(28, 28, 1)), *fashion_layers({})])
    added = hubel.Sequential()
    added.add(L.Input((28, 28, 1)))
    for layer in fashion_layers({}):
        added.add(layer)
    deferred = hubel.Sequential(fashion_layers({}))
    assert not deferred.built
    deferred.build((None, 28, 28, 1))
    for model in (keras3, added, deferred):
        assert [layer.output_shape for layer in model.layers] == FASHION_SHAPES
        assert model.count_params() == keras2.count_params()


def test_model_called_on_data_builds_itself():
    model = hubel.Sequential([L.Conv2D(4, 3), L.Flatten(), L.Dense(2)])
    y = model(np.zeros((3, 8, 8, 1), np.float32))
    assert y.shape == (3, 2) and model.input_shape == (None, 8, 8, 1)


def cifar_layers(top):
    return [
        L.Conv2D(32, 3, activation="relu", input_shape=(32, 32, 3)),
        L.Conv2D(32, 3, activation="relu"),
        L.MaxPooling2D(),
        L.Conv2D(64, 3, activation="relu"),
        L.Conv2D(64, 3, activation="relu"),
        L.MaxPooling2D(),
        L.Conv2D(64, 3, activation="relu"),
        top,
        L.Dense(1024, activation="relu"),
        L.Dense(10, activation="softmax"),
    ]


def test_cifar10_network_matches_keras_figures():
    assert hubel.Sequential(cifar_layers(L.Flatten())).count_params() == 703_594
    assert hubel.Sequential(cifar_layers(L.GlobalMaxPooling2D())).count_params() == 179_306


def mobilenet_v1_without_top(input_shape=(160, 160, 3)):
    """Keras's MobileNet (alpha 1.0, include_top=False), layer for layer."""
    model = hubel.Sequential([L.Input(input_shape)])
    model.add(L.Conv2D(32, 3, strides=2, padding="same", use_bias=False))
    model.add(L.BatchNormalization())
    model.add(L.ReLU(6.0))
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1)]
    for filters, stride in blocks:
        if stride == 2:
            model.add(L.ZeroPadding2D(((0, 1), (0, 1))))
        model.add(L.DepthwiseConv2D(3, strides=stride, padding="same" if stride == 1 else "valid", use_bias=False))
        model.add(L.BatchNormalization())
        model.add(L.ReLU(6.0))
        model.add(L.Conv2D(filters, 1, padding="same", use_bias=False))
        model.add(L.BatchNormalization())
        model.add(L.ReLU(6.0))
    return model


def test_mobilenet_without_top_matches_keras_counts():
    from hubel.models.summary import summarize

    model = mobilenet_v1_without_top()
    summary = summarize(model)
    assert (summary.total_params, summary.non_trainable_params) == (3_228_864, 21_888)
    assert model.output_shape == (None, 5, 5, 1024)


def test_layer_that_does_not_fit_fails_at_add_and_leaves_the_model_unchanged():
    model = hubel.Sequential([L.Conv2D(8, 3, input_shape=(8, 8, 1)), L.MaxPooling2D(2), L.MaxPooling2D(2)])
    with pytest.raises(ShapeError) as error:
        model.add(L.Conv2D(8, 5))
    assert str(error.value).startswith(
        "Conv2D 'conv2d_1' cannot take input shape (1, 1, 8) (after max_pooling2d_1): output height = "
        "(H − F + 2P)/S + 1 = (1 − 5 + 2×0)/1 + 1 = -3, less than 1."
    )
    assert [layer.name for layer in model.layers] == ["conv2d", "max_pooling2d", "max_pooling2d_1"]
    model.add(L.Flatten())  # still usable
    assert model.output_shape == (None, 8)


def test_deferred_build_names_the_failing_layer_and_builds_nothing():
    model = hubel.Sequential([L.Dense(4), L.Reshape((2, 2, 1)), L.Conv2D(8, 3), L.Flatten()])
    with pytest.raises(ShapeError, match=r"Conv2D 'conv2d' cannot take input shape \(2, 2, 1\) \(after reshape\)"):
        model.build((None, 3))
    assert not model.built and not any(layer.built for layer in model.layers)
    model.pop()
    model.pop()
    model.add(L.Flatten())
    model.build((None, 3))
    assert model.output_shape == (None, 4)


def test_layer_names_must_be_unique_and_not_shadow_attributes():
    model = hubel.Sequential([L.Dense(2, name="head", input_shape=(3,))])
    with pytest.raises(ConfigError, match="'head' is already the name of a layer"):
        model.add(L.Dense(2, name="head"))
    with pytest.raises(ConfigError, match="'summary' is also an attribute of Sequential"):
        model.add(L.Dense(2, name="summary"))
    with pytest.raises(ConfigError, match="expected a hubel layer"):
        model.add(torch.nn.ReLU())


def test_input_shape_on_a_later_layer_must_agree():
    model = hubel.Sequential([L.Dense(4, input_shape=(3,))])
    with pytest.raises(ShapeError, match="outputs \\(4,\\)"):
        model.add(L.Dense(2, input_shape=(5,)))


def test_nhwc_arrays_tensors_grayscale_and_nchw_give_the_same_output():
    model = fashion_model()
    model.eval()
    images = np.random.default_rng(0).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    with torch.no_grad():
        from_grayscale = model(images)
        from_nhwc = model(images[..., None])
        from_tensor = model(torch.from_numpy(images[..., None]).float())
        from_nchw = model(torch.from_numpy(images[:, None]).float())
    for other in (from_nhwc, from_tensor):
        assert torch.equal(from_grayscale, other)  # equal data, equal answer, bit for bit
    torch.testing.assert_close(from_nchw, from_grayscale)  # another memory layout, another conv algorithm
    torch.testing.assert_close(from_grayscale.sum(1), torch.ones(4))


def test_output_matches_a_hand_written_torch_forward():
    import torch.nn.functional as F

    model = fashion_model()
    x = torch.rand(2, 28, 28, 1)
    conv1, _, conv2, _, _, dense1, dense2 = model.layers
    h = F.max_pool2d(F.relu(F.conv2d(x.permute(0, 3, 1, 2), conv1.kernel, conv1.bias)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, conv2.kernel, conv2.bias)), 2)
    h = h.permute(0, 2, 3, 1).reshape(2, -1)  # Keras flattens (H, W, C)
    expected = F.softmax(F.linear(F.relu(F.linear(h, dense1.kernel, dense1.bias)), dense2.kernel, dense2.bias), 1)
    torch.testing.assert_close(model(x), expected)


def test_wrong_input_shape_says_what_the_model_takes():
    model = fashion_model()
    with pytest.raises(
        ShapeError, match=r"takes examples of shape \(28, 28, 1\).*received a batch of shape \(2, 32, 32, 3\)"
    ):
        model(np.zeros((2, 32, 32, 3), np.float32))


def test_it_is_a_torch_module():
    model = fashion_model()
    assert sum(p.numel() for p in model.parameters()) == 243_786
    assert list(model.state_dict())[:2] == ["conv2d.kernel", "conv2d.bias"]
    model.eval()
    assert not model.layers[0].training
    assert model.to(torch.float64).layers[0].kernel.dtype == torch.float64
    assert model.get_layer("dense").units == 128 and model.get_layer(index=-1).units == 10
    with pytest.raises(KeyError, match="Did you mean 'dense'"):
        model.get_layer("dens")


def test_trainable_false_on_the_model_freezes_every_layer():
    model = mobilenet_v1_without_top((32, 32, 3))
    model.trainable = False
    assert not any(p.requires_grad for p in model.parameters())


def test_config_round_trip_rebuilds_the_same_architecture():
    model = hubel.Sequential(cifar_layers(L.Flatten()), name="cifar")
    rebuilt = hubel.Sequential.from_config(model.get_config())
    assert rebuilt.get_config() == model.get_config()
    assert rebuilt.count_params() == 703_594


def test_pop_removes_the_last_layer():
    model = fashion_model()
    assert model.pop().name == "dense_1"
    assert model.output_shape == (None, 128)


def test_unbuilt_model_summary_says_how_to_build():
    model = hubel.Sequential([L.Dense(3)])
    with pytest.raises(ShapeError, match=r"is not built yet.*model.build\(\(None, H, W, C\)\)"):
        model.summary()


def test_the_tensorflow_tutorials_probability_model_wraps_a_logits_model():
    model = hubel.Sequential([L.Input((28, 28)), L.Flatten(), L.Dense(128, activation="relu"), L.Dense(10)])
    probability_model = hubel.Sequential([model, L.Softmax()])
    images = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
    logits = torch.from_numpy(model.predict(images))
    probabilities = probability_model.predict(images)
    np.testing.assert_allclose(probabilities, torch.softmax(logits, -1).numpy(), rtol=1e-5, atol=1e-7)


def test_predict_and_evaluate_take_the_keras_arguments_tutorials_pass(capsys):
    model = hubel.Sequential([L.Input((4,)), L.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.random.default_rng(0).random((10, 4)).astype(np.float32), np.arange(10) % 3
    probabilities = model.predict(x, verbose=0)
    np.testing.assert_array_equal(model.predict_on_batch(x), probabilities)
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert model.evaluate(x, y, verbose=0, return_dict=True) == {"loss": loss, "accuracy": accuracy}
    assert capsys.readouterr().out == ""  # verbose=0 prints nothing
    with pytest.raises(ConfigError, match=r"expected verbose 0, 1, 2 or 'auto'\. Received: verbose=3"):
        model.predict(x, verbose=3)
