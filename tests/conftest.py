import pytest
import torch

import hubel


@pytest.fixture(autouse=True)
def fresh_session():
    """Every test starts with Keras-style names counting from zero and a fixed torch seed."""
    hubel.clear_session()
    torch.manual_seed(0)
    yield
