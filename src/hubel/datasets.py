"""`hubel.datasets.load(name)`, like `keras.datasets.<name>.load_data()`; see hubel.data.datasets."""

from hubel.data.datasets import DatasetInfo, info, list_datasets, load

__all__ = ["DatasetInfo", "info", "list_datasets", "load"]
