import pytest
import torch

from helpers import check_layer
from hubel import layers as L
from hubel.errors import DataError


def test_embedding_shapes_params_and_lookup():
    layer = L.Embedding(10000, 32, input_length=500)
    assert layer.declared_input_shape == (500,)
    check_layer(layer, (500,), (500, 32), 320000)
    assert layer.embeddings.abs().max() <= 0.05  # Keras 'uniform': U(-0.05, 0.05)
    ids = torch.tensor([[3, 0, 9999]])
    output = layer(ids)  # (N, output_dim, L) inside; Keras layout is (N, L, output_dim)
    torch.testing.assert_close(output.movedim(1, -1)[0], layer.embeddings[[3, 0, 9999]])


def test_embedding_out_of_range_ids_say_what_to_do():
    layer = L.Embedding(10, 4)
    layer.build((3,))
    with pytest.raises(DataError, match=r"token ids must lie in \[0, 10\).*ids from 0 to 12\. Raise input_dim"):
        layer(torch.tensor([[0, 5, 12]]))


def test_conv1d_after_embedding():
    from hubel import Sequential

    model = Sequential([L.Embedding(100, 8, input_length=20), L.Conv1D(4, 5), L.GlobalMaxPooling1D(), L.Dense(1)])
    assert model.output_shape == (None, 1)
    assert model(torch.randint(0, 100, (3, 20))).shape == (3, 1)


def test_initializers_use_keras_fans_for_embeddings_and_biases():
    torch.manual_seed(0)
    embedding = L.Embedding(54, 2, embeddings_initializer="lecun_uniform")
    embedding.build((4,))
    bound = (3 / 54) ** 0.5  # Keras's fans for a (54, 2) matrix: fan_in 54
    assert embedding.embeddings.abs().max() <= bound and embedding.embeddings.abs().max() > 0.8 * bound
    dense = L.Dense(100, bias_initializer="he_uniform")
    dense.build((3,))
    bias_bound = (6 / 100) ** 0.5  # a vector's fans are its length
    assert dense.bias.abs().max() <= bias_bound and dense.bias.abs().max() > 0.8 * bias_bound
