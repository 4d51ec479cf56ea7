"""The functional API: Input, layer calls on symbolic tensors, Model, merges, nesting, save/load."""

import numpy as np
import pytest
import torch

import hubel
from hubel import layers as L
from hubel.errors import ConfigError, ShapeError


@pytest.fixture(autouse=True)
def _fresh_names():
    hubel.clear_session()


def tutorial_head() -> hubel.Model:
    inputs = L.Input((5, 5, 1024))
    x = L.Flatten()(inputs)
    x = L.Dense(256, activation="relu")(x)
    x = L.Dropout(0.5)(x)
    return hubel.Model(inputs, L.Dense(1, activation="sigmoid")(x))


def test_the_tutorial_head_has_keras_parameter_count_and_summary():
    model = tutorial_head()
    assert model.count_params() == 6_554_113  # as Keras prints it
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert 'Model: "functional"' in text
    assert "input_layer (InputLayer)" in text and "(None, 5, 5, 1024)" in text
    assert "Connected to" not in text  # a chain, as Keras leaves the column out
    assert "Total params: 6,554,113" in text
    assert [layer.name for layer in model.layers] == ["input_layer", "flatten", "dense", "dropout", "dense_1"]
    assert model.get_layer("dense").units == 256


def branchy() -> hubel.Model:
    inputs = L.Input((6, 6, 3))
    a = L.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = L.Conv2D(4, 1, name="b")(inputs)
    added = L.add([a, b])
    joined = L.concatenate([added, a])
    pooled = L.GlobalAveragePooling2D()(joined)
    return hubel.Model(inputs, L.Dense(3, activation="softmax")(pooled))


def test_a_graph_with_merges_computes_what_torch_computes():
    model = branchy().eval()
    x = torch.rand(2, 6, 6, 3)
    a = torch.nn.functional.conv2d(
        x.permute(0, 3, 1, 2), model.get_layer("a").kernel, model.get_layer("a").bias, padding=1
    )
    b = torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), model.get_layer("b").kernel, model.get_layer("b").bias)
    joined = torch.cat([a + b, a], dim=1).mean(dim=(2, 3))
    dense = model.get_layer("dense")
    expected = torch.softmax(joined @ dense.kernel.T + dense.bias, dim=-1)
    torch.testing.assert_close(model(x), expected)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text and "a[0][0]," in text and "b[0][0]" in text
    assert "concatenate (Concatenate)" in text and "(None, 6, 6, 8)" in text


def test_concatenate_axis_counts_in_keras_layout():
    first, second = L.Input((4, 5, 2)), L.Input((4, 3, 2))
    model = hubel.Model([first, second], L.Concatenate(axis=2)([first, second]))
    assert model.output_shape == (None, 4, 8, 2)
    x1, x2 = np.random.rand(2, 4, 5, 2).astype(np.float32), np.random.rand(2, 4, 3, 2).astype(np.float32)
    np.testing.assert_array_equal(model.predict([x1, x2]), np.concatenate([x1, x2], axis=2))


def test_a_model_nests_inside_another_and_inside_a_sequential():
    base_inputs = L.Input((8, 8, 3))
    base = hubel.Model(base_inputs, L.Conv2D(4, 3, activation="relu")(base_inputs), name="base")
    head_inputs = L.Input((6, 6, 4))
    head = hubel.Model(head_inputs, L.Dense(2)(L.GlobalMaxPooling2D()(head_inputs)), name="head")
    inputs = L.Input((8, 8, 3))
    model = hubel.Model(inputs, head(base(inputs)))
    assert model.count_params() == base.count_params() + head.count_params()
    x = np.random.rand(3, 8, 8, 3).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), head.predict(base.predict(x)), rtol=1e-6)
    stacked = hubel.Sequential([base, L.GlobalAveragePooling2D(), L.Dense(1)])
    assert stacked.input_shape == (None, 8, 8, 3) and stacked.output_shape == (None, 1)
    assert stacked.predict(x).shape == (3, 1)
    rows = []
    model.summary(print_fn=rows.append)
    assert any("base (Functional)" in row for row in rows)


def test_save_and_load_round_trip_a_graph_with_a_shared_layer_and_a_nested_model(tmp_path):
    inner_inputs = L.Input((4,))
    inner = hubel.Model(inner_inputs, L.Dense(4, activation="tanh")(inner_inputs), name="inner")
    inputs = L.Input((4,))
    shared = L.Dense(4, name="shared")
    y = shared(inner(shared(inputs), training=False))  # the shared layer is called twice
    model = hubel.Model(inputs, L.Dense(2, activation="softmax")(L.add([y, inputs])))
    path = model.save(tmp_path / "graph.hubel", metadata={"class_names": ["a", "b"]})
    loaded = hubel.load_model(path)
    x = np.random.rand(5, 4).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.metadata["class_names"] == ["a", "b"]
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.get_config() == model.get_config()


def test_a_functional_model_trains_like_a_sequential_one():
    hubel.set_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    inputs = L.Input((8,))
    hidden = L.Dense(16, activation="relu")(inputs)
    model = hubel.Model(inputs, L.Dense(2, activation="softmax")(L.concatenate([hidden, inputs])))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=15, batch_size=32, validation_split=0.2, verbose=0)
    assert history.history["val_accuracy"][-1] > 0.9
    assert model.evaluate(x, y, verbose=0)[1] > 0.9


def test_a_frozen_model_still_predicts_and_evaluates():
    inputs = L.Input((3,))
    model = hubel.Model(inputs, L.Dense(2, activation="softmax")(inputs))
    model.trainable = False
    assert model.count_trainable_params() == 0
    x, y = np.ones((4, 3), np.float32), np.array([0, 1, 0, 1])
    assert model.predict(x).shape == (4, 2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert np.isfinite(loss) and accuracy == 0.5  # the same output for every row, half the labels
    only_pooling = hubel.Sequential([L.Input((4, 4, 2)), L.GlobalMaxPooling2D()])
    assert only_pooling.predict(np.ones((2, 4, 4, 2))).tolist() == [[1.0, 1.0], [1.0, 1.0]]
    before = model.get_weights()
    with pytest.warns(UserWarning, match="no trainable weights"):
        history = model.fit(x, y, verbose=0)  # Keras fits a frozen model too: the loss, no updates
    assert np.isfinite(history.history["loss"][0])
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_training_false_keeps_batch_norm_statistics_while_the_outer_model_trains():
    inner_inputs = L.Input((4,))
    inner = hubel.Model(inner_inputs, L.BatchNormalization(momentum=0.5, name="bn")(inner_inputs), name="inner")
    inputs = L.Input((4,))
    model = hubel.Model(inputs, L.Dense(1)(inner(inputs, training=False)))
    model.compile(optimizer="sgd", loss="mse")
    before = inner.get_layer("bn").moving_mean.clone()
    x = np.random.default_rng(1).normal(5.0, 1.0, size=(64, 4)).astype(np.float32)
    model.fit(x, np.zeros((64, 1), np.float32), epochs=1, verbose=0)
    torch.testing.assert_close(inner.get_layer("bn").moving_mean, before)
    free = hubel.Model(inputs, L.Dense(1)(inner(inputs)))  # without training=False the statistics move
    free.compile(optimizer="sgd", loss="mse")
    free.fit(x, np.zeros((64, 1), np.float32), epochs=1, verbose=0)
    assert float(inner.get_layer("bn").moving_mean.mean()) > float(before.mean()) + 0.5


def test_shape_errors_at_call_time_name_the_layer_before():
    inputs = L.Input((8, 8, 3))
    pooled = L.MaxPooling2D(4, name="pool")(inputs)
    with pytest.raises(ShapeError, match=r"Conv2D 'conv2d' cannot take input shape \(2, 2, 3\) \(after pool\)"):
        L.Conv2D(4, 5)(pooled)
    with pytest.raises(ShapeError, match=r"axis 3 has sizes 3 and 5, which neither match nor broadcast"):
        L.add([inputs, L.Conv2D(5, 1)(inputs)])
    with pytest.raises(ShapeError, match=r"takes input shape \(8, 8, 3\).*received \(4, 4, 3\)"):
        hubel.Model(inputs, L.Flatten()(inputs))(L.Input((4, 4, 3)))


def test_bad_graphs_get_one_clear_error():
    first, second = L.Input((2,)), L.Input((2,))
    total = L.add([first, second])
    with pytest.raises(ConfigError, match="depend on the input 'input_layer_1', which is not in `inputs`"):
        hubel.Model(first, total)
    with pytest.raises(ConfigError, match="every entry of inputs must be an Input"):
        hubel.Model(total, L.Dense(1)(total))
    with pytest.raises(ConfigError, match="expected `outputs` to be a symbolic tensor"):
        hubel.Model(first, np.zeros(3))
    with pytest.raises(ConfigError, match="two different layers are named 'twin'"):
        hubel.Model(first, L.Dense(2, name="twin")(L.Dense(2, name="twin")(first)))
    with pytest.raises(hubel.DataError, match="has 2 inputs"):
        hubel.Model([first, second], total).predict(np.zeros((1, 2)))


def test_a_list_is_several_inputs_only_for_a_model_with_several_inputs():
    first, second = L.Input((2,)), L.Input((2,))
    pair = hubel.Model([first, second], L.add([first, second]))
    np.testing.assert_array_equal(pair.predict([np.ones((1, 2)), np.full((1, 2), 2.0)]), [[3.0, 3.0]])
    rows = [np.ones(2, np.float32), np.full(2, 2.0, np.float32)]  # two examples of two values each
    single = hubel.Sequential([L.Input((2,)), L.Dense(1, use_bias=False, kernel_initializer="ones")])
    single.compile(optimizer="sgd", loss="mse")
    assert single.evaluate(rows, np.array([[2.0], [4.0]]), verbose=0) == 0.0  # a list of examples, stacked
    with pytest.raises(hubel.DataError, match="has 2 inputs: pass x as a list of 2 arrays"):
        pair.predict(np.zeros((3, 2)))
    with pytest.raises(hubel.DataError, match=r"inputs hold \[1, 3\] examples"):
        pair.predict([np.zeros((1, 2)), np.zeros((3, 2))])
    assert repr(L.Input((2,), name="pixels")) == "Input(shape=(2,), name='pixels')"
    assert "InputLayer" in repr(first.producer.layer)


def test_every_layers_activations_as_the_keras_tutorial_takes_them():
    # Deep Learning with Python, 5.4: a model from the input to each layer's output
    layers = [L.Conv2D(8, 3, activation="relu"), L.MaxPooling2D(), L.Conv2D(4, 3, activation="relu"), L.Flatten()]
    model = hubel.Sequential([L.Input((28, 28, 1)), *layers, L.Dense(10, activation="softmax")])
    activation_model = hubel.Model(inputs=model.input, outputs=[layer.output for layer in model.layers[:3]])
    images = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    activations = activation_model.predict(images)
    assert [a.shape for a in activations] == [(3, 26, 26, 8), (3, 13, 13, 8), (3, 11, 11, 4)]
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    with torch.no_grad():
        for layer, activation in zip(model.layers[:3], activations):
            x = layer(x)  # the same layers, the same weights, run by hand
            np.testing.assert_allclose(activation, x.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-6)
    assert model.inputs == [model.input] and model.outputs == [model.output] == [model.layers[-1].output]
    assert model.layers[1].input is model.layers[0].output and model.output.shape == (None, 10)
    np.testing.assert_allclose(hubel.Model(model.input, model.output).predict(images), model.predict(images))
    model.pop()
    assert model.output is model.layers[-1].output and model.output.shape == (None, 484)
    # without an input shape there is nothing symbolic yet; building the model makes it
    later = hubel.Sequential([L.Conv2D(4, 3), L.Flatten()])
    with pytest.raises(ConfigError, match=r"Conv2D 'conv2d_2' has never been called on a symbolic tensor"):
        _ = later.layers[0].output
    later.build((None, 8, 8, 1))
    assert later.layers[1].output.shape == (None, 144) and later.input.shape == (None, 8, 8, 1)


def test_layers_may_be_named_input_and_output_as_in_keras(tmp_path):
    model = hubel.Sequential([L.Input((4,)), L.Dense(3, name="input"), L.Dense(2, activation="softmax", name="output")])
    assert model.output.shape == (None, 2) and model.get_layer("output").units == 2  # the tensor, and the layer
    model.save(tmp_path / "named.hubel")
    x = np.random.default_rng(0).random((5, 4)).astype(np.float32)
    np.testing.assert_allclose(hubel.load_model(tmp_path / "named.hubel").predict(x), model.predict(x), rtol=1e-6)
    inputs = L.Input((4,))
    graph = hubel.Model(inputs, L.Dense(2, name="output")(inputs))
    assert [layer.name for layer in graph.layers][1:] == ["output"] and graph.output.shape == (None, 2)
