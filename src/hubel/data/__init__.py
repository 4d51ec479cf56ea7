"""Data: built-in datasets (hubel.datasets), image and text folders, caches, splits and health checks."""

from hubel.data import datasets, imdb
from hubel.data.datasets import DatasetInfo, info, list_datasets, load
from hubel.data.folders import ImageFolderDataset, image_folder, scan_folder
from hubel.data.health import HealthReport, check
from hubel.data.labels import to_categorical
from hubel.data.paths import cache_dir, data_dir
from hubel.data.text import TextFolderDataset, pad_sequences, text_folder, text_to_word_sequence

__all__ = [
    "DatasetInfo",
    "HealthReport",
    "ImageFolderDataset",
    "TextFolderDataset",
    "cache_dir",
    "check",
    "data_dir",
    "datasets",
    "image_folder",
    "imdb",
    "info",
    "list_datasets",
    "load",
    "pad_sequences",
    "scan_folder",
    "text_folder",
    "text_to_word_sequence",
    "to_categorical",
]
