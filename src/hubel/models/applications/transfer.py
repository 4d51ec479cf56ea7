"""Transfer learning, the Keras tutorial's two methods and fine-tuning, as Python calls.

Feature extraction — run the frozen base once, train a small head on what it saw:

    extractor = feature_extractor("mobilenet_v2", (160, 160, 3))      # raw pixels -> (1280,)
    x_features, y = extract_features(extractor, train)                 # cached on disk
    head = classifier_head(extractor.output_shape[1:], num_classes=2)
    model = attach_head(extractor, head)                                # raw pixels -> classes, to save

Frozen base inside the model, augmentation in front — the functional API as Keras writes it:

    inputs = L.Input((160, 160, 3))
    x = mobilenet_v2.preprocess_input(L.RandomFlip("horizontal")(inputs))
    x = base(x, training=False)                                         # BatchNormalization stays in inference mode

Fine-tuning — unfreeze the top blocks at a low learning rate:

    unfreeze_top(base, blocks=4); model.compile(optimizer=RMSprop(1e-5), ...)   # compile again, as in Keras
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hubel import layers as L
from hubel.data.folders import ImageFolderDataset
from hubel.data.paths import cache_dir
from hubel.errors import ConfigError, DataError
from hubel.files import atomic_write
from hubel.layers.normalization import BatchNormalization
from hubel.models.applications.backbones import BACKBONES
from hubel.models.model import Model, walk_layers
from hubel.train.allocator import keep_freed_blocks
from hubel.train.history import History
from hubel.train.optimizers import Adam

__all__ = [
    "TransferResult",
    "attach_head",
    "classifier_head",
    "extract_features",
    "feature_extractor",
    "features_cached",
    "pretrained_classifier",
    "transfer_learn",
    "unfreeze_top",
]


def feature_extractor(
    backbone: str, input_shape: Any = None, pooling: str = "avg", weights: str | None = "imagenet"
) -> Model:
    """Raw 0-255 pixels -> pooled features of a pretrained backbone, frozen: Input, the
    backbone's preprocessing, the backbone (called with training=False), pooling."""
    entry = BACKBONES.get(backbone)
    shape = tuple(input_shape or entry.input_shape)
    base = entry.build(input_shape=shape, include_top=False, weights=weights, pooling=pooling)
    base.trainable = False
    inputs = L.Input(shape, name="image")
    outputs = base(entry.preprocess_input(inputs), training=False)
    model = Model(inputs, outputs, name=f"{backbone}_features")
    model.metadata.update({**{k: v for k, v in base.metadata.items() if k != "backbone"}, "extractor_of": backbone})
    return model.eval()


def pretrained_classifier(backbone: str) -> Model:
    """A backbone with its ImageNet top and its preprocessing inside: raw pixels in, the 1,000
    ImageNet classes out (names in metadata["class_names"])."""
    from hubel.models.applications.imagenet import class_names

    entry = BACKBONES.get(backbone)
    base = entry.build(include_top=True, weights="imagenet")
    inputs = L.Input(base.input_shape[1:], name="image")
    model = Model(inputs, base(entry.preprocess_input(inputs)), name=f"{backbone}_imagenet")
    model.metadata.update({"class_names": list(class_names()), **base.metadata})
    return model.eval()


def classifier_head(feature_shape: Any, num_classes: int, dropout: float = 0.2) -> Model:
    """Dropout then one sigmoid unit for two classes, or a softmax (the tutorial's head)."""
    inputs = L.Input(tuple(feature_shape), name="features")
    x = L.Dropout(dropout, name="head_dropout")(inputs) if dropout else inputs
    dense = L.Dense(1, activation="sigmoid") if num_classes == 2 else L.Dense(num_classes, activation="softmax")
    return Model(inputs, dense(x), name="head")


def attach_head(extractor: Model, head: Model, augmentation: list[Any] | None = None, name: str | None = None) -> Model:
    """One model from raw pixels to classes: augmentation layers (identity when predicting),
    the extractor, the head."""
    inputs = L.Input(extractor.input_shape[1:], name="input_pixels")
    x = inputs
    for layer in augmentation or []:
        x = layer(x)
    return Model(inputs, head(extractor(x, training=False)), name=name or f"{extractor.name}_classifier")


def unfreeze_top(base: Model, blocks: int) -> list[str]:
    """Make the top `blocks` blocks of a backbone trainable and freeze the rest; its
    BatchNormalization layers stay frozen (in inference mode), as the Keras tutorial advises.
    Returns the names of the layers made trainable. Compile the model again afterwards."""
    backbone = base.metadata.get("backbone")
    if backbone is None:
        raise ConfigError(f"unfreeze_top: {base.name!r} is not a backbone from hubel.applications (no blocks known).")
    groups = BACKBONES.get(backbone).blocks(base)
    if not isinstance(blocks, int) or not 0 <= blocks <= len(groups):
        raise ConfigError(f"unfreeze_top: expected 0 <= blocks <= {len(groups)} for {backbone}. Received: {blocks!r}")
    base.trainable = True  # as the tutorial: all of it, then freeze the lower blocks and every batch norm
    for group in groups[: len(groups) - blocks]:
        for layer in group:
            layer.trainable = False
    opened = []
    for group in groups[len(groups) - blocks :]:
        for layer in group:
            if isinstance(layer, BatchNormalization):
                layer.trainable = False
            else:
                opened.append(layer.name)
    return opened


def extract_features(
    extractor: Model,
    data: Any,
    batch_size: int = 8,
    cache: bool | str | Path = True,
    verbose: bool = True,
    precision: str | None = None,
    stats: dict[str, float] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(features, labels) for every example of `data` (an image-folder dataset, or an (x, y)
    pair / an x array of raw pixels), computed once in eval mode. Small batches run fastest
    on a CPU (8 images: 3x the throughput of 64 for MobileNetV2 at 160x160, whose activations
    then stay in cache; benchmarks/transfer.py).

    With cache (True: HUBEL_CACHE_DIR/features; or a folder) the result is kept on disk,
    keyed by the extractor's architecture and weights and the exact pixels, so a second run
    on the same data reads it back instead of running the base again. `stats`, a dict, gets
    the images computed (not read from the cache) and the seconds they took added to it."""
    x, y = _arrays(data)
    path = _cache_path(extractor, x, cache, precision)
    if path is not None:
        if path.exists():
            try:
                features = np.load(path, allow_pickle=False)
                if len(features) == len(x):
                    _say(verbose, f"Features: {len(x)} images from the cache ({path})")
                    return features, y
            except (OSError, ValueError):
                pass  # damaged: compute again and overwrite
    start = time.perf_counter()
    features = _run(extractor, x, batch_size, verbose, precision)
    if stats is not None:
        stats["images"] = stats.get("images", 0) + len(x)
        stats["seconds"] = stats.get("seconds", 0.0) + time.perf_counter() - start
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as file:
            np.save(file, features, allow_pickle=False)
    return features, y


def features_cached(extractor: Model, data: Any, cache: bool | str | Path = True, precision: str | None = None) -> bool:
    """Whether extract_features(extractor, data, cache=cache) would read its features from the cache."""
    path = _cache_path(extractor, _arrays(data)[0], cache, precision)
    return path is not None and path.exists()


def _cache_path(extractor: Model, x: Any, cache: bool | str | Path, precision: str | None) -> Path | None:
    """Where the features of x are kept: keyed by the extractor's architecture and weights and the pixels."""
    if not cache:
        return None
    folder = Path(cache) if isinstance(cache, (str, Path)) else cache_dir() / "features"
    return folder / f"{extractor.name}-{_key(extractor, x, precision)}.npy"


def _arrays(data: Any) -> tuple[Any, np.ndarray | None]:
    """(images, labels): a folder's images as slices read from its cache when asked for (the pass
    holds one batch of pixels at a time, not the whole folder); arrays as they are."""
    if isinstance(data, ImageFolderDataset):
        return data.numpy(lazy=True)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return np.asarray(data[0]), np.asarray(data[1])
    if isinstance(data, np.ndarray):
        return data, None
    raise DataError(
        f"extract_features takes an image-folder dataset, an (x, y) pair or an array of images. "
        f"Received: {type(data).__name__}"
    )


_HASHED_AT_ONCE = 256  # images: the pixels' digest is taken a slice at a time


def _key(extractor: Model, x: Any, precision: str | None) -> str:
    digest = hashlib.sha1()  # layer kinds, shapes and weights, not names (they count up per session)
    for layer in walk_layers(extractor):
        config = {key: value for key, value in layer.get_config().items() if key != "name"}
        digest.update(f"{type(layer).__name__}{layer.output_shape}{sorted(config.items())}".encode())
    digest.update(str(precision).encode())
    for tensor in extractor.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(str(x.shape).encode() + str(x.dtype).encode())
    for begin in range(0, len(x), _HASHED_AT_ONCE):  # the digest of all at once, one slice in memory
        digest.update(np.ascontiguousarray(x[begin : begin + _HASHED_AT_ONCE]).data)
    return digest.hexdigest()[:20]


@torch.no_grad()
def _run(extractor: Model, x: Any, batch_size: int, verbose: bool, precision: str | None) -> np.ndarray:
    if len(x) == 0:
        raise DataError("extract_features got no images.")
    was_training = extractor.training
    extractor.eval()
    device = next(extractor.parameters()).device
    if device.type == "cpu":
        keep_freed_blocks()  # each batch's activations (38 MB a layer at 224x224) reused by the next
    dtype = {"bf16": torch.bfloat16, None: None}[precision]
    outputs, start = [], time.perf_counter()
    try:
        for begin in range(0, len(x), batch_size):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                outputs.append(extractor(x[begin : begin + batch_size]).float().cpu().numpy())
            done = min(begin + batch_size, len(x))
            rate = done / (time.perf_counter() - start)
            _say(verbose, f"\rFeatures: {done}/{len(x)} images, {rate:.0f} img/s", end="")
    finally:
        extractor.train(was_training)
    seconds = time.perf_counter() - start
    _say(verbose, f"\rFeatures: {len(x)} images in {seconds:.1f} s ({len(x) / seconds:.0f} img/s)")
    return np.concatenate(outputs)


def _say(verbose: bool, text: str, end: str = "\n") -> None:
    if not verbose:
        return
    if end == "" and not sys.stdout.isatty():
        return  # no carriage-return progress in logs: the final line says it all
    print(text, end=end, flush=True)


@dataclass
class TransferResult:
    model: Model  # raw pixels -> classes, compiled (loss and accuracy) for evaluate
    history: History
    feature_seconds: float  # the frozen base's pass over the images not found in the feature cache
    feature_images: int  # how many images that pass computed
    images: int  # training and validation images in all
    fine_tuned_layers: list[str]
    extractor: Model  # the backbone's part of model, raw pixels -> features (fine-tuned, if it was)
    head: Model  # features -> classes: model's outputs are head(extractor(pixels))


def transfer_learn(
    backbone: str,
    train: Any,
    validation: Any,
    num_classes: int,
    *,
    input_shape: Any = None,
    head_epochs: int = 20,
    learning_rate: float = 1e-3,
    fine_tune_blocks: int = 0,
    fine_tune_epochs: int = 0,
    fine_tune_rate: float = 1e-5,
    augmentation: list[Any] | None = None,
    callbacks: Any = (),
    verbose: bool = True,
) -> TransferResult:
    """The tutorial's recipe as one call: the frozen backbone's features, computed once (and
    cached), train a head in seconds; the head is then attached to the backbone, so the model
    takes raw pixels. With fine_tune_epochs, the top fine_tune_blocks blocks are unfrozen (their
    BatchNormalization kept in inference mode) and the whole model trains on the images at
    fine_tune_rate, with the augmentation layers, if any, in front."""
    extractor = feature_extractor(backbone, input_shape)
    stats: dict[str, float] = {}
    train_features, train_labels = extract_features(extractor, train, verbose=verbose, stats=stats)
    validation_data = None
    if validation is not None:
        validation_data = extract_features(extractor, validation, verbose=verbose, stats=stats)
    total = len(train_features) + (len(validation_data[0]) if validation_data is not None else 0)
    if train_labels is None:
        raise DataError("transfer_learn needs labels: pass an image-folder dataset or an (x, y) pair.")
    head = classifier_head(extractor.output_shape[1:], num_classes)
    loss = "binary_crossentropy" if num_classes == 2 else "sparse_categorical_crossentropy"
    head.compile(optimizer=Adam(learning_rate), loss=loss, metrics=["accuracy"])
    history = head.fit(
        train_features, train_labels, epochs=head_epochs, batch_size=32, validation_data=validation_data,
        callbacks=list(callbacks), verbose="auto" if verbose else 0,
    )  # fmt: skip
    model = attach_head(extractor, head, augmentation=augmentation)
    opened: list[str] = []
    if fine_tune_epochs:
        base = next(layer for layer in extractor.layers if isinstance(layer, Model) and layer.metadata.get("backbone"))
        opened = unfreeze_top(base, fine_tune_blocks)
        model.compile(optimizer=Adam(fine_tune_rate), loss=loss, metrics=["accuracy"])
        history = history + model.fit(
            train, validation_data=validation, epochs=head_epochs + fine_tune_epochs, initial_epoch=head_epochs,
            callbacks=list(callbacks), verbose="auto" if verbose else 0,
        )  # fmt: skip
    model.compile(optimizer=Adam(learning_rate), loss=loss, metrics=["accuracy"])
    return TransferResult(model.eval(), history, stats.get("seconds", 0.0), int(stats.get("images", 0)), total, opened,
                          extractor, head)  # fmt: skip
