import os

import pytest
import torch

import hubel
from helpers import SHARED_DATA


@pytest.fixture(autouse=True)
def fresh_session():
    """Every test starts with Keras-style names counting from zero and a fixed torch seed."""
    hubel.clear_session()
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session", autouse=True)
def data_environment(tmp_path_factory):
    """Tests never touch the network; they read ../shared/data and cache into a temporary folder."""
    saved = {key: os.environ.get(key) for key in ("HUBEL_DATA_DIR", "HUBEL_CACHE_DIR", "HUBEL_OFFLINE")}
    os.environ["HUBEL_DATA_DIR"] = str(SHARED_DATA)
    os.environ["HUBEL_CACHE_DIR"] = str(tmp_path_factory.mktemp("hubel-cache"))
    os.environ["HUBEL_OFFLINE"] = "1"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
