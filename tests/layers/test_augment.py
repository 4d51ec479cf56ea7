import pytest
import torch

from helpers import check_layer
from hubel import layers as L
from hubel.errors import ConfigError, ShapeError, UnknownNameError
from hubel.layers.base import canonical_channels_last, internal_to_keras, keras_to_internal

AUGMENTATIONS = [
    lambda seed: L.RandomFlip(seed=seed),
    lambda seed: L.RandomRotation(0.2, seed=seed),
    lambda seed: L.RandomZoom(0.3, seed=seed),
    lambda seed: L.RandomTranslation(0.2, 0.2, seed=seed),
    lambda seed: L.RandomCrop(8, 8, padding=2, seed=seed),
    lambda seed: L.RandomContrast(0.5, seed=seed),
    lambda seed: L.RandomBrightness(0.3, seed=seed),
]


def images(count=6, size=8, channels=3):
    return torch.rand(count, channels, size, size, generator=torch.Generator().manual_seed(1)) * 255


@pytest.mark.parametrize("make", AUGMENTATIONS)
def test_augmentation_is_the_identity_in_inference_and_seeded_in_training(make):
    x = images()
    layer = make(7)
    check_layer(layer, (8, 8, 3), (8, 8, 3), 0)
    layer.eval()
    assert torch.equal(layer(x), x)
    first, second, other = make(7).train(), make(7).train(), make(8).train()
    out = first(x)
    assert out.shape == x.shape and not torch.equal(out, x)
    assert torch.equal(second(x), out)  # same seed, same transforms
    assert not torch.equal(other(x), out)
    assert not torch.equal(first(x), out)  # the next batch gets new draws


def test_unseeded_layers_follow_torch_manual_seed():
    x = images()
    torch.manual_seed(3)
    a = L.RandomRotation(0.2).train()(x)
    torch.manual_seed(3)
    b = L.RandomRotation(0.2).train()(x)
    assert torch.equal(a, b)


def test_flip_gives_each_image_either_itself_or_its_mirror():
    x = images(count=32)
    out = L.RandomFlip("horizontal", seed=0).train()(x)
    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 4 < sum(flipped) < 28


def test_rotation_by_a_quarter_turn_is_rot90():
    x = images(count=2, size=6)
    out = L.RandomRotation((0.25, 0.25), seed=0).train()(x)
    expected = torch.rot90(x, 1, dims=(-2, -1))  # counter-clockwise
    torch.testing.assert_close(out, expected, atol=1e-3, rtol=0)
    wide = torch.rand(2, 3, 5, 8)
    half_turn = L.RandomRotation((0.5, 0.5), seed=0).train()(wide)  # non-square: aspect ratio kept
    torch.testing.assert_close(half_turn, wide.flip(-1, -2), atol=1e-4, rtol=0)


def test_translation_by_one_pixel_shifts_right_and_down():
    x = images(count=2, size=8)
    out = L.RandomTranslation((1 / 8, 1 / 8), (1 / 8, 1 / 8), fill_mode="constant", seed=0).train()(x)
    torch.testing.assert_close(out[..., 1:, 1:], x[..., :-1, :-1], atol=1e-3, rtol=0)
    assert torch.all(out[..., 0, :] == 0) and torch.all(out[..., :, 0] == 0)


def test_zoom_in_by_two_samples_the_centre_bilinearly():
    ramp = torch.arange(8.0).repeat(1, 3, 8, 1)  # value = column index, so bilinear sampling is exact
    out = L.RandomZoom((-0.5, -0.5), seed=0).train()(ramp)
    # output column j looks at input column 1.75 + 0.5·j: half the width, around the centre
    expected = (1.75 + 0.5 * torch.arange(8.0)).repeat(1, 3, 8, 1)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)


def test_random_crop_with_padding_takes_windows_of_the_padded_image():
    x = images(count=16, size=8)
    out = L.RandomCrop(8, 8, padding=2, seed=0).train()(x)
    padded = torch.nn.functional.pad(x, [2, 2, 2, 2])
    offsets = set()
    for image, source in zip(out, padded, strict=True):
        matches = [
            (top, left)
            for top in range(5)
            for left in range(5)
            if torch.equal(source[:, top : top + 8, left : left + 8], image)
        ]
        assert matches
        offsets.add(matches[0])
    assert len(offsets) > 4
    center = L.RandomCrop(4, 6).eval()
    center.build((8, 8, 3))
    assert torch.equal(center(x), x[..., 2:6, 1:7])
    with pytest.raises(ShapeError, match="a 12x12 crop does not fit in 8x8 padded by 1"):
        L.RandomCrop(12, 12, padding=1).build((8, 8, 3))


def test_brightness_and_contrast_follow_keras_formulas_and_clip():
    x = images(count=2)
    brighter = L.RandomBrightness((0.1, 0.1), seed=0).train()(x)
    torch.testing.assert_close(brighter, (x + 25.5).clamp(0, 255))
    out = L.RandomContrast((0.5, 0.0), seed=0).train()(x)  # factor in [0.5, 1.0]: no clipping
    mean = x.mean(dim=(-2, -1), keepdim=True)
    for image in range(2):
        away = (x[image] - mean[image]).abs() > 1
        scale = ((out[image] - mean[image]) / (x[image] - mean[image]))[away]
        assert 0.5 - 1e-4 < scale.min() and scale.max() < 1.0 + 1e-4
        torch.testing.assert_close(scale, torch.full_like(scale, scale[0].item()), atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: L.RandomFlip("diagonal"), "expected `mode` to be one of 'horizontal', 'vertical'"),
        (lambda: L.RandomRotation((0.3, 0.1)), "lower <= upper"),
        (lambda: L.RandomZoom(0.2, fill_mode="mirror"), "expected `fill_mode` to be one of 'reflect'"),
        (lambda: L.RandomBrightness(1.5), r"within \[-1, 1\]"),
        (lambda: L.RandomContrast(-0.1), "expected `factor` to be a number >= 0.0"),
        (lambda: L.RandomCrop(32, 32, padding=-1), "expected `padding` to be an integer >= 0"),
        (lambda: L.RandomFlip(seed="a"), "expected `seed` to be an integer or None"),
    ],
)
def test_bad_augmentation_arguments(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_augmentation_in_a_model_shows_in_the_summary_and_keeps_channels_last():
    from hubel import Sequential

    model = Sequential(
        [
            L.Input((16, 16, 3)),
            L.RandomFlip("horizontal"),
            L.RandomRotation(0.1),
            L.Rescaling(1 / 255),
            L.Conv2D(4, 3),
        ]
    )
    lines = []
    model.summary(print_fn=lines.append)
    assert any("random_flip (RandomFlip)" in line for line in lines)
    x = torch.rand(2, 16, 16, 3) * 255
    model.eval()
    with torch.no_grad():
        conv = model.layers[-1]
        expected = internal_to_keras(conv(keras_to_internal(x / 255)))
        torch.testing.assert_close(model(x), expected)  # augmentation is the identity in eval
    model.train()
    rotated = model.layers[1](torch.rand(2, 3, 16, 16).contiguous(memory_format=torch.channels_last))
    assert rotated.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("make", AUGMENTATIONS)
@pytest.mark.parametrize("channels", [1, 3])
def test_augmented_images_keep_the_standard_channels_last_strides(make, channels):
    # NCHW strides on one channel pass torch's channels_last test, but the convolutions read them as
    # channels first and ran the whole network so (max pooling's forward 7x slower: --augment shift
    # on MNIST); a crop by indexing came out channels first on any number of channels
    layer = make(0)
    layer.train()
    x = canonical_channels_last(images(channels=channels).contiguous(memory_format=torch.channels_last))
    standard = (64 * channels, 1, 8 * channels, channels)  # (6, C, 8, 8) NHWC bytes, as a model's input arrives
    assert x.stride() == standard
    out = layer(x)
    assert out.stride() == standard and out.shape == x.shape
    convolved = torch.nn.functional.conv2d(out, torch.ones(2, channels, 3, 3))
    assert convolved.stride()[1] == 1  # the convolution after it stays channels last


def test_named_augmentations_for_the_command_line():
    from hubel.layers.augment import augmentation, list_augmentations

    layers = augmentation("flip, shift,flip")
    assert [type(layer).__name__ for layer in layers] == ["RandomFlip", "RandomTranslation"]
    assert layers[0].mode == "horizontal" and layers[1].height_factor == (-1 / 16, 1 / 16)
    shift = layers[1].train()
    images = torch.rand(64, 3, 32, 32)
    shifted = shift(images)
    # by whole pixels, as a crop of the padded image: every output pixel is one of its image's pixels
    assert all(torch.isin(out, image).all() for out, image in zip(shifted, images))
    assert not torch.equal(shifted, images)
    assert len(augmentation(",".join(list_augmentations()))) == 5
    with pytest.raises(UnknownNameError, match=r"Unknown augmentation 'flp'\. Did you mean 'flip'"):
        augmentation("flp")
    with pytest.raises(ConfigError, match="expected augmentation names, comma-separated"):
        augmentation(" , ")
