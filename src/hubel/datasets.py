"""`hubel.datasets.load(name)`, like `keras.datasets.<name>.load_data()`, and `hubel.datasets.imdb`
(`load_data`, `get_word_index`) like `keras.datasets.imdb`; see hubel.data.datasets and hubel.data.imdb."""

import sys

from hubel.data import imdb
from hubel.data.datasets import DatasetInfo, info, list_datasets, load

__all__ = ["DatasetInfo", "imdb", "info", "list_datasets", "load"]

sys.modules[f"{__name__}.imdb"] = imdb  # `from hubel.datasets.imdb import load_data`, as in Keras
