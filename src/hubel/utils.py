"""Keras's `keras.utils` names, for code written for Keras:

    from hubel.utils import to_categorical, image_dataset_from_directory, pad_sequences

Each is the hubel function that does the job (hubel.data.image_folder, hubel.data.pad_sequences,
hubel.set_seed), under Keras's name and with Keras's defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubel.data.folders import ImageFolderDataset, image_folder
from hubel.data.labels import to_categorical
from hubel.data.text import pad_sequences
from hubel.errors import ConfigError
from hubel.train.trainer import set_seed as set_random_seed

__all__ = ["image_dataset_from_directory", "pad_sequences", "set_random_seed", "to_categorical"]


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
