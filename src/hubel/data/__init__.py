"""Data: built-in datasets (hubel.datasets), image folders, caches, splits and health checks."""

from hubel.data import datasets
from hubel.data.datasets import DatasetInfo, info, list_datasets, load
from hubel.data.folders import ImageFolderDataset, image_folder, scan_folder
from hubel.data.health import HealthReport, check
from hubel.data.paths import cache_dir, data_dir

__all__ = [
    "DatasetInfo",
    "HealthReport",
    "ImageFolderDataset",
    "cache_dir",
    "check",
    "data_dir",
    "datasets",
    "image_folder",
    "info",
    "list_datasets",
    "load",
    "scan_folder",
]
