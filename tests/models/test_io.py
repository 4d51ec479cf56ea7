import json
import zipfile

import numpy as np
import pytest
import torch

import hubel
from hubel import layers as L
from hubel.errors import ModelFileError


def trained_model():
    model = hubel.Sequential(
        [
            L.Rescaling(1 / 255, input_shape=(12, 12, 3)),
            L.Conv2D(8, 3, padding="same", activation="relu"),
            L.BatchNormalization(),
            L.DepthwiseConv2D(3, strides=2, padding="same"),
            L.MaxPooling2D(),
            L.Flatten(),
            L.Dropout(0.3),
            L.Dense(4, activation="softmax"),
        ]
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for _ in range(3):  # move weights and BN moving statistics away from their initial values
        loss = model(torch.rand(8, 12, 12, 3) * 255).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_round_trip_gives_bit_identical_outputs(tmp_path):
    model = trained_model()
    path = model.save(tmp_path / "net.hubel", metadata={"class_names": ["a", "b", "c", "d"]})
    loaded = hubel.load_model(path).eval()
    x = np.random.default_rng(0).integers(0, 256, (5, 12, 12, 3), dtype=np.uint8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.get_config() == model.get_config()
    assert loaded.metadata["class_names"] == ["a", "b", "c", "d"]
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_test_time_augmentation_travels_with_the_model(tmp_path):
    model = hubel.Sequential([L.Input((6, 6, 3)), L.Conv2D(2, 3), L.Flatten(), L.Dense(3, activation="softmax")])
    model.test_time_augmentation = "flip"
    x = np.random.default_rng(1).integers(0, 256, (5, 6, 6, 3)).astype(np.uint8)
    loaded = hubel.load_model(model.save(tmp_path / "flip.hubel"))
    assert loaded.test_time_augmentation == "flip"
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    model.test_time_augmentation = None
    assert hubel.load_model(model.save(tmp_path / "plain.hubel")).test_time_augmentation is None


def test_file_is_a_zip_of_json_and_safetensors_with_versions(tmp_path):
    path = trained_model().save(tmp_path / "net.hubel")
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["model.json", "weights.safetensors"]
        document = json.loads(archive.read("model.json"))
    assert document["format"] == "hubel.model" and document["format_version"] == 1
    assert document["input_shape"] == [12, 12, 3]
    assert document["layer_names"][:2] == ["rescaling", "conv2d"]
    assert set(document["versions"]) == {"hubel", "torch", "python"}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_save_replaces_an_existing_file_atomically(tmp_path):
    path = tmp_path / "net.hubel"
    trained_model().save(path)
    second = trained_model()
    second.save(path)
    with torch.no_grad():
        x = torch.rand(2, 12, 12, 3)
        assert torch.equal(hubel.load_model(path)(x), second(x))


def test_metadata_must_be_json(tmp_path):
    with pytest.raises(hubel.HubelError, match="plain JSON data"):
        trained_model().save(tmp_path / "net.hubel", metadata={"when": object()})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "not a hubel model file, or a truncated one"),
        ("foreign_zip", "not a hubel model file (a zip without model.json and weights.safetensors)"),
        ("text", "not a hubel model file, or a truncated one"),
        ("newer", "written in model format 99 by hubel 9.0.0; this hubel reads format 1 and older. Upgrade hubel"),
        ("bad_json", "model.json is not valid JSON"),
        ("other_format", "does not say format 'hubel.model'"),
        ("bad_weights", "weights.safetensors is damaged"),
        ("wrong_weights", "the weights do not match the architecture"),
        ("unknown_layer", "Unknown layer 'Conv3D'"),
    ],
)
def test_damaged_files_give_one_line_errors(tmp_path, damage, message):
    good = trained_model().save(tmp_path / "good.hubel")
    with zipfile.ZipFile(good) as archive:
        spec = json.loads(archive.read("model.json"))
        weights = archive.read("weights.safetensors")
    bad = tmp_path / "bad.hubel"

    def write(spec_text, weight_bytes):
        with zipfile.ZipFile(bad, "w") as archive:
            archive.writestr("model.json", spec_text)
            archive.writestr("weights.safetensors", weight_bytes)

    if damage == "truncate":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif damage == "foreign_zip":
        with zipfile.ZipFile(bad, "w") as archive:
            archive.writestr("data.pkl", b"...")
    elif damage == "text":
        bad.write_text("hello")
    elif damage == "newer":
        write(json.dumps({**spec, "format_version": 99, "versions": {"hubel": "9.0.0"}}), weights)
    elif damage == "bad_json":
        write("{not json", weights)
    elif damage == "other_format":
        write(json.dumps({**spec, "format": "keras"}), weights)
    elif damage == "bad_weights":
        write(json.dumps(spec), b"\x00" * 40)
    elif damage == "wrong_weights":
        spec["model"]["layers"][-1]["config"]["units"] = 5
        write(json.dumps(spec), weights)
    elif damage == "unknown_layer":
        spec["model"]["layers"][1]["class_name"] = "Conv3D"
        write(json.dumps(spec), weights)
    with pytest.raises(ModelFileError) as error:
        hubel.load_model(bad)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="no such model file"):
        hubel.load_model(tmp_path / "nope.hubel")


def test_to_json_and_model_from_json_rebuild_the_architecture_as_keras_does():
    sequential = hubel.Sequential([L.Input((28, 28, 1)), L.Conv2D(8, 3, activation="relu"), L.Flatten(), L.Dense(10)])
    inputs = L.Input((4,))
    functional = hubel.Model(inputs, L.add([L.Dense(3)(inputs), L.Dense(3)(inputs)]))
    for model in (sequential, functional):
        text = model.to_json(indent=2)
        assert json.loads(text)["class_name"] == model.kind
        rebuilt = hubel.models.model_from_json(text)
        assert type(rebuilt) is type(model) and rebuilt.get_config() == model.get_config()
        assert rebuilt.count_params() == model.count_params() and rebuilt.output_shape == model.output_shape
    with pytest.raises(hubel.ConfigError, match=r"model_from_json: expected the JSON text of model\.to_json\(\)"):
        hubel.models.model_from_json("{not json")


def test_adapt_fits_patch_whitening_to_what_reaches_it_and_the_file_keeps_the_filters(tmp_path):
    model = hubel.Sequential(
        [L.Input((10, 10, 3)), L.Rescaling(1 / 255), L.RandomFlip(), L.PatchWhitening(2), L.GlobalAveragePooling2D()]
    )
    images = np.random.default_rng(0).integers(0, 256, (40, 10, 10, 3), dtype=np.uint8)
    assert model.adapt(images, batch_size=16) == ["patch_whitening"]  # three passes, each stopped at the layer
    whitening = model.get_layer("patch_whitening")
    direct = L.PatchWhitening(2)
    direct.adapt(images / 255)  # what reaches the layer: rescaled, not flipped (inference mode)
    assert torch.allclose(whitening.kernel, direct.kernel, atol=1e-5)
    assert torch.allclose(whitening.bias, direct.bias, atol=1e-5)
    assert model.training  # adapt leaves the model's mode as it found it
    # the trainable bias, then the fitted kernel in Keras's layout, as Keras lists trainable weights first
    assert [w.shape for w in model.get_weights()] == [(24,), (2, 2, 3, 24)]
    loaded = hubel.load_model(model.save(tmp_path / "whitened.hubel")).eval()
    assert loaded.get_layer("patch_whitening").adapted
    with torch.no_grad():
        assert torch.equal(loaded(images), model.eval()(images))
