import json

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import hubel
from hubel import layers as L
from hubel.cli.main import main
from hubel.errors import ConfigError
from hubel.export import ExportError, export_onnx


@pytest.fixture(scope="module")
def digits_model():
    (x_train, y_train), (x_test, _) = hubel.datasets.load("digits")
    hubel.set_seed(0)
    model = hubel.Sequential([
        L.Input((8, 8, 1)), L.Rescaling(1 / 255), L.Conv2D(8, 3, padding="same", activation="relu"),
        L.BatchNormalization(), L.MaxPooling2D(), L.Flatten(), L.Dense(10, activation="softmax"),
    ])  # fmt: skip
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=1, verbose=0)
    model.metadata["class_names"] = [str(digit) for digit in range(10)]
    return model, x_test


def test_the_graph_takes_raw_pixels_and_gives_predict_outputs(digits_model, tmp_path):
    model, x_test = digits_model
    result = model.export(tmp_path / "digits.onnx", sample=x_test[:40])
    assert result.path.exists() and result.examples == 40 and result.max_difference <= 1e-4
    session = onnxruntime.InferenceSession(str(result.path))
    for batch in (x_test[:1], x_test[100:117]):  # the batch axis is dynamic
        pixels = batch[..., None].astype(np.float32)
        np.testing.assert_allclose(session.run(None, {"input": pixels})[0], model.predict(batch), atol=1e-5)
    metadata = {entry.key: entry.value for entry in onnx.load(str(result.path)).metadata_props}
    assert json.loads(metadata["class_names"]) == model.metadata["class_names"]
    assert json.loads(metadata["input_shape"]) == [8, 8, 1] and metadata["input_dtype"] == "float32"


@pytest.mark.parametrize("gradient", [True, False])
def test_the_graph_holds_torchs_public_operators_with_or_without_gradients(digits_model, tmp_path, gradient):
    # hubel.layers.inference's paths stand aside while the exporter traces, even under no_grad
    model, x_test = digits_model
    with torch.set_grad_enabled(gradient):
        result = model.export(tmp_path / "digits.onnx", sample=x_test[:40])
    operators = {node.op_type for node in onnx.load(str(result.path)).graph.node}
    assert {"Conv", "Relu", "MaxPool", "Gemm"} <= operators and "Max" not in operators
    assert result.max_difference <= 1e-4


def test_test_time_flips_are_in_the_graph_and_in_predict_and_evaluate(digits_model, tmp_path):
    model, x_test = digits_model
    x = x_test[:64]
    y = hubel.datasets.load("digits")[1][1][:64]
    alone, mirrored = model.predict(x), model.predict(x[:, :, ::-1])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    try:
        model.test_time_augmentation = "flip"
        averaged = model.predict(x)
        np.testing.assert_allclose(averaged, (alone + mirrored) / 2, atol=1e-6)
        assert np.abs(averaged - alone).max() > 1e-3  # the digits are not symmetric: the mean differs
        accuracy = model.evaluate(x, y, verbose=0)[1]
        assert accuracy == pytest.approx(np.mean(averaged.argmax(1) == y))
        result = model.export(tmp_path / "flips.onnx", sample=x[:16])
        session = onnxruntime.InferenceSession(str(result.path))
        produced = session.run(None, {"input": x[:, :, :, None].astype(np.float32)})[0]
        np.testing.assert_allclose(produced, averaged, atol=1e-5)
    finally:
        model.test_time_augmentation = None
    with pytest.raises(ConfigError, match="Received: 'rotate'"):
        model.test_time_augmentation = "rotate"


def test_uint8_pixels_are_cast_inside_the_graph(digits_model, tmp_path):
    model, x_test = digits_model
    result = export_onnx(model, tmp_path / "digits8.onnx", x_test[:20, ..., None], input_dtype="uint8")
    session = onnxruntime.InferenceSession(str(result.path))
    assert session.get_inputs()[0].type == "tensor(uint8)"
    np.testing.assert_allclose(
        session.run(None, {"input": x_test[:5, ..., None]})[0], model.predict(x_test[:5]), atol=1e-5
    )


def test_a_failed_parity_check_leaves_no_file(digits_model, tmp_path):
    model, x_test = digits_model
    with pytest.raises(ExportError, match="no file written"):
        export_onnx(model, tmp_path / "bad.onnx", x_test[:8, ..., None], tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(hubel.ConfigError, match="Received: input_dtype='int8'"):
        export_onnx(model, tmp_path / "bad.onnx", input_dtype="int8")
    with pytest.raises(hubel.ConfigError, match="Received: format='tflite'"):
        model.export(tmp_path / "m.tflite", format="tflite")


def test_a_text_model_exports_on_token_ids_with_its_vocabulary(tmp_path):
    vectorize = L.TextVectorization(output_sequence_length=6, vocabulary=["good", "bad", "film"])
    model = hubel.Sequential([vectorize, L.Embedding(5, 3), L.GlobalAveragePooling1D(), L.Dense(1, "sigmoid")])
    result = model.export(tmp_path / "text.onnx", sample=["good film", "bad bad film", "unknown words"])
    document = onnx.load(str(result.path))
    metadata = {entry.key: entry.value for entry in document.metadata_props}
    assert json.loads(metadata["vocabulary"]) == ["", "[UNK]", "good", "bad", "film"]
    session = onnxruntime.InferenceSession(str(result.path))
    ids = vectorize(["good film"])
    np.testing.assert_allclose(session.run(None, {"input": ids})[0], model.predict(["good film"]), atol=1e-6)


def test_hubel_export_checks_a_run_on_its_test_data(tmp_path, capsys):
    run = tmp_path / "digits"
    assert main(["train", "digits", "--epochs", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["export", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"Wrote {run / 'model.onnx'}" in out and "on 64 examples: max |difference|" in out
    assert main(["export", str(tmp_path / "missing.hubel")]) == 2
    assert "no such model file" in capsys.readouterr().err
