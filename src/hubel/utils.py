"""Keras's `keras.utils` names, for code written for Keras:

    from hubel.utils import to_categorical, image_dataset_from_directory, load_img, img_to_array

Each is the hubel function that does the job (hubel.data.image_folder, hubel.data.pad_sequences,
hubel.set_seed, Pillow), under Keras's name and with Keras's defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from hubel.data.folders import AUTOTUNE, ImageFolderDataset, image_folder
from hubel.data.labels import to_categorical
from hubel.data.text import pad_sequences
from hubel.errors import ConfigError, DataError
from hubel.train.trainer import set_seed as set_random_seed

__all__ = [
    "AUTOTUNE",
    "image_dataset_from_directory",
    "img_to_array",
    "load_img",
    "pad_sequences",
    "set_random_seed",
    "to_categorical",
]

_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
_MODES = {"rgb": "RGB", "rgba": "RGBA", "grayscale": "L"}


def load_img(
    path: str | Path,
    color_mode: str = "rgb",
    target_size: tuple[int, int] | None = None,
    interpolation: str = "nearest",
    keep_aspect_ratio: bool = False,
) -> Image.Image:
    """A Pillow image, as keras.utils.load_img: converted to `color_mode` ("rgb", "rgba",
    "grayscale"), resized to target_size (height, width) with `interpolation` (Keras's default
    "nearest"), center-cropped to the target's aspect ratio first with keep_aspect_ratio."""
    if color_mode not in _MODES:
        raise ConfigError(f"load_img: color_mode must be one of {sorted(_MODES)}. Received: {color_mode!r}")
    if interpolation not in _RESAMPLING:
        raise ConfigError(f"load_img: interpolation must be one of {sorted(_RESAMPLING)}. Received: {interpolation!r}")
    try:
        with Image.open(path) as opened:
            image = opened.convert(_MODES[color_mode])
    except (OSError, UnidentifiedImageError) as error:
        raise DataError(f"load_img: cannot read {str(path)!r} as an image ({error}).") from None
    if target_size is None:
        return image
    height, width = (int(size) for size in target_size)
    if (image.width, image.height) == (width, height):
        return image
    box = None
    if keep_aspect_ratio:  # the largest centered crop with the target's aspect ratio, as Keras's
        crop_width = min(image.width, image.height * width // height)
        crop_height = min(image.height, image.width * height // width)
        left, top = (image.width - crop_width) // 2, (image.height - crop_height) // 2
        box = (left, top, left + crop_width, top + crop_height)
    return image.resize((width, height), _RESAMPLING[interpolation], box=box)


def img_to_array(image: Image.Image, dtype: str = "float32") -> np.ndarray:
    """(height, width, channels) pixels of a Pillow image, as keras.utils.img_to_array (a
    grayscale image gets its channel axis)."""
    array = np.asarray(image, dtype=dtype)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ConfigError(f"img_to_array: expected an image of rank 2 or 3. Received: shape {array.shape}")
    return array


def image_dataset_from_directory(
    directory: str | Path,
    labels: Any = "inferred",
    label_mode: str = "int",
    class_names: Any = None,
    color_mode: str = "rgb",
    batch_size: int = 32,
    image_size: tuple[int, int] = (256, 256),
    shuffle: bool = True,
    seed: int | None = None,
    validation_split: float | None = None,
    subset: str | None = None,
    interpolation: str = "bilinear",
    follow_links: bool = False,
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    verbose: bool = True,
) -> ImageFolderDataset | tuple[ImageFolderDataset, ImageFolderDataset]:
    """keras.utils.image_dataset_from_directory, with its arguments and defaults (256x256
    images), through hubel.data.image_folder: labels come from the class folders, in
    alphanumeric order, as Keras infers them."""
    if labels != "inferred":
        raise ConfigError(
            f"image_dataset_from_directory: hubel takes the labels from the class sub-folders (labels='inferred'). "
            f"Received: labels={labels!r}. Put each class's images in a folder of its own."
        )
    if class_names is not None:
        raise ConfigError(
            "image_dataset_from_directory: the classes are the sub-folders, in alphanumeric order; hubel does "
            f"not reorder them. Received: class_names={class_names!r}. Leave class_names out."
        )
    return image_folder(
        directory,
        image_size,
        batch_size,
        validation_split=validation_split,
        subset=subset,
        seed=seed,
        shuffle=shuffle,
        label_mode=label_mode,
        color_mode=color_mode,
        interpolation=interpolation,
        crop_to_aspect_ratio=crop_to_aspect_ratio,
        pad_to_aspect_ratio=pad_to_aspect_ratio,
        follow_links=follow_links,
        verbose=verbose,
    )
