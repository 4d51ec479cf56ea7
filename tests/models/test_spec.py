import json

import pytest

from hubel.errors import ConfigError, UnknownNameError
from hubel.models.spec import load_spec, model_from_spec

SHORTHAND_YAML = """
name: tiny
input_shape: [28, 28, 1]
layers:
  - Conv2D: {filters: 4, kernel_size: 3, activation: relu}
  - MaxPool2D
  - Flatten
  - {class_name: Dense, config: {units: 10, activation: softmax}}
"""


def test_yaml_shorthand_and_canonical_json_build_the_same_model(tmp_path):
    (tmp_path / "tiny.yaml").write_text(SHORTHAND_YAML)
    model = model_from_spec(tmp_path / "tiny.yaml")
    assert model.name == "tiny" and model.output_shape == (None, 10)
    assert model.count_params() == 40 + 13 * 13 * 4 * 10 + 10
    (tmp_path / "tiny.json").write_text(json.dumps(model.get_config()))
    assert model_from_spec(tmp_path / "tiny.json").get_config()["layers"] == model.get_config()["layers"]


def test_examples_in_the_repository_have_the_tutorial_counts():
    assert model_from_spec("examples/fashion_cnn.yaml").count_params() == 243_786
    assert model_from_spec("examples/cifar_convnet.yaml").count_params() == 703_594


def test_input_shape_override():
    model = model_from_spec("examples/cifar_convnet.yaml", input_shape=(64, 64, 3))
    assert model.layers[-3].output_shape == (None, 7744)


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("layers: [Conv2d]", UnknownNameError, "Unknown layer 'Conv2d'. Did you mean 'Conv2D'"),
        ("layers: [{Dense: {unit: 3}}]", ConfigError, "unexpected argument `unit` (did you mean `units`?)"),
        ("layers: [{Dense: {}}]", ConfigError, "layer 0: Dense: missing required argument `units`. Received: {}"),
        ("layers: [42]", ConfigError, "layer 0: expected a layer name"),
        ("input: [1]", ConfigError, "a model spec must be a mapping with a `layers` list"),
        ("layers: []\nlayer: []", ConfigError, "unexpected keys ['layer']"),
        ("layers: [\n", ConfigError, "not valid YAML"),
    ],
)
def test_bad_specs_say_what_is_wrong(tmp_path, text, error, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(error) as raised:
        model_from_spec(path)
    assert message in str(raised.value) and str(raised.value).startswith(str(path))


def test_missing_spec_file(tmp_path):
    with pytest.raises(ConfigError, match="no such spec file"):
        load_spec(tmp_path / "none.yaml")
