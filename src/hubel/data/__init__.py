"""Data: built-in datasets (hubel.datasets), image folders, caches, splits and health checks."""

from hubel.data import datasets
from hubel.data.datasets import DatasetInfo, info, list_datasets, load
from hubel.data.paths import cache_dir, data_dir

__all__ = ["DatasetInfo", "cache_dir", "data_dir", "datasets", "info", "list_datasets", "load"]
