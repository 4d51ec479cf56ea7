import pytest

from hubel.errors import UnknownNameError
from hubel.layers import list_activations, list_initializers, list_layers
from hubel.registry import Registry


def test_unknown_names_suggest_close_matches_and_the_listing_call():
    registry: Registry[int] = Registry("dataset", "hubel.datasets.list_datasets()")
    registry.register("fashion_mnist")(1)
    registry.register("mnist")(2)
    with pytest.raises(UnknownNameError) as error:
        registry.get("Fashion_MNIST2")
    assert str(error.value) == (
        "Unknown dataset 'Fashion_MNIST2'. Did you mean 'fashion_mnist'? See hubel.datasets.list_datasets()."
    )
    with pytest.raises(UnknownNameError, match=r"^Unknown dataset 'cifar'\. See"):
        registry.get("cifar")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("mnist")(3)


def test_listings_hold_the_keras_names():
    assert {"relu", "softmax", "sigmoid", "tanh", "elu", "selu", "gelu", "swish", "softplus", "linear"} <= set(
        list_activations()
    )
    assert {"glorot_uniform", "he_normal", "zeros", "uniform"} <= set(list_initializers())
    assert {"Conv2D", "Dense", "Embedding", "BatchNormalization"} <= set(list_layers())
