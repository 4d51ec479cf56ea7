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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hubel import layers as L
from hubel.data.paths import cache_dir
from hubel.errors import ConfigError, DataError
from hubel.files import atomic_write
from hubel.layers.normalization import BatchNormalization
from hubel.models.applications.backbones import BACKBONES
from hubel.models.model import Model, walk_layers

__all__ = ["attach_head", "classifier_head", "extract_features", "feature_extractor", "unfreeze_top"]


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
    model.metadata.update({"backbone": backbone, **base.metadata})
    return model.eval()


def classifier_head(feature_shape: Any, num_classes: int, dropout: float = 0.2) -> Model:
    """Dropout then one sigmoid unit for two classes, or a softmax (the tutorial's head)."""
    inputs = L.Input(tuple(feature_shape), name="features")
    x = L.Dropout(dropout, name="head_dropout")(inputs) if dropout else inputs
    dense = L.Dense(1, activation="sigmoid") if num_classes == 2 else L.Dense(num_classes, activation="softmax")
    return Model(inputs, dense(x), name="head")


def attach_head(extractor: Model, head: Model, name: str | None = None) -> Model:
    """One model from raw pixels to classes: the extractor's graph followed by the head."""
    inputs = L.Input(extractor.input_shape[1:], name="input_pixels")
    return Model(inputs, head(extractor(inputs, training=False)), name=name or f"{extractor.name}_classifier")


def unfreeze_top(base: Model, blocks: int) -> list[str]:
    """Make the top `blocks` blocks of a backbone trainable and freeze the rest; its
    BatchNormalization layers stay frozen (in inference mode), as the Keras tutorial advises.
    Returns the names of the layers made trainable. Compile the model again afterwards."""
    backbone = base.metadata.get("backbone") or _backbone_of(base)
    groups = BACKBONES.get(backbone).blocks(base)
    if not isinstance(blocks, int) or not 0 <= blocks <= len(groups):
        raise ConfigError(f"unfreeze_top: expected 0 <= blocks <= {len(groups)} for {backbone}. Received: {blocks!r}")
    base.trainable = False
    base._trainable = True  # the model itself counts as trainable; its layers decide
    opened = []
    for group in groups[len(groups) - blocks :]:
        for layer in group:
            if not isinstance(layer, BatchNormalization):
                layer.trainable = True
                opened.append(layer.name)
    return opened


def _backbone_of(model: Model) -> str:
    for name in BACKBONES.names():
        if model.name.startswith(name.replace("_", "")) or model.name.startswith(name):
            return name
    raise ConfigError(f"unfreeze_top: {model.name!r} is not a backbone from hubel.applications.")


def extract_features(
    extractor: Model,
    data: Any,
    batch_size: int = 64,
    cache: bool | str | Path = True,
    verbose: bool = True,
    precision: str | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(features, labels) for every example of `data` (an image-folder dataset, or an (x, y)
    pair / an x array of raw pixels), computed once in eval mode.

    With cache (True: HUBEL_CACHE_DIR/features; or a folder) the result is kept on disk,
    keyed by the extractor's architecture and weights and the exact pixels, so a second run
    on the same data reads it back instead of running the base again."""
    x, y = _arrays(data)
    key = _key(extractor, x, precision)
    path = None
    if cache:
        folder = Path(cache) if isinstance(cache, (str, Path)) else cache_dir() / "features"
        path = folder / f"{extractor.name}-{key}.npy"
        if path.exists():
            try:
                features = np.load(path, allow_pickle=False)
                if len(features) == len(x):
                    _say(verbose, f"Features: {len(x)} images from the cache ({path})")
                    return features, y
            except (OSError, ValueError):
                pass  # damaged: compute again and overwrite
    features = _run(extractor, x, batch_size, verbose, precision)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as file:
            np.save(file, features, allow_pickle=False)
    return features, y


def _arrays(data: Any) -> tuple[np.ndarray, np.ndarray | None]:
    if hasattr(data, "numpy") and hasattr(data, "class_names"):
        x, y = data.numpy()
        return x, y
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return np.asarray(data[0]), np.asarray(data[1])
    if isinstance(data, np.ndarray):
        return data, None
    raise DataError(
        f"extract_features takes an image-folder dataset, an (x, y) pair or an array of images. "
        f"Received: {type(data).__name__}"
    )


def _key(extractor: Model, x: np.ndarray, precision: str | None) -> str:
    digest = hashlib.sha1()  # layer kinds, shapes and weights, not names (they count up per session)
    for layer in walk_layers(extractor):
        config = {key: value for key, value in layer.get_config().items() if key != "name"}
        digest.update(f"{type(layer).__name__}{layer.output_shape}{sorted(config.items())}".encode())
    digest.update(str(precision).encode())
    for tensor in extractor.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(str(x.shape).encode() + str(x.dtype).encode())
    digest.update(np.ascontiguousarray(x).data)
    return digest.hexdigest()[:20]


@torch.no_grad()
def _run(extractor: Model, x: np.ndarray, batch_size: int, verbose: bool, precision: str | None) -> np.ndarray:
    if len(x) == 0:
        raise DataError("extract_features got no images.")
    was_training = extractor.training
    extractor.eval()
    device = next(extractor.parameters()).device
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
