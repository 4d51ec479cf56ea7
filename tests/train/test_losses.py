import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hubel.errors import ConfigError, ShapeError, UnknownNameError
from hubel.layers.activations import get_activation
from hubel.train.losses import get_loss

softmax = get_activation("softmax")[1]
sigmoid = get_activation("sigmoid")[1]


def numpy_log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def test_sparse_categorical_crossentropy_by_hand():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], dtype=np.float32)
    labels = np.array([0, 1])
    expected = -numpy_log_softmax(logits)[np.arange(2), labels]
    loss = get_loss("sparse_categorical_crossentropy")
    probabilities = torch.from_numpy(np.exp(numpy_log_softmax(logits)))  # plain probabilities, no logits kept
    np.testing.assert_allclose(loss(probabilities, torch.tensor(labels)).numpy(), expected, rtol=1e-5)
    from_logits = get_loss("sparse_categorical_crossentropy")
    from_logits.from_logits = True
    np.testing.assert_allclose(from_logits(torch.from_numpy(logits), torch.tensor(labels)).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(loss(probabilities, torch.tensor(labels).view(2, 1)).numpy(), expected, rtol=1e-5)


def test_fused_softmax_path_is_exact_on_extreme_logits():
    logits = torch.tensor([[1000.0, -1000.0, 0.0], [-500.0, 500.0, 0.0]], requires_grad=True)
    output = softmax(logits)  # probabilities that remember their logits
    labels = torch.tensor([1, 0])  # confident mistakes: p(target) underflows to 0
    loss = get_loss("sparse_categorical_crossentropy")(output, labels)
    expected = F.cross_entropy(logits, labels, reduction="none")  # 2000 and 1000, not log(1e-7)
    torch.testing.assert_close(loss, expected)
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()
    clipped = get_loss("sparse_categorical_crossentropy")(output.detach().clone(), labels)  # no logits: Keras's clip
    torch.testing.assert_close(clipped, torch.full((2,), -np.log(1e-7), dtype=torch.float32))


def test_categorical_crossentropy_with_one_hot_and_soft_targets():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    target = torch.tensor([[0.2, 0.3, 0.5]])
    expected = -(target * F.log_softmax(logits, dim=-1)).sum(-1)
    torch.testing.assert_close(get_loss("categorical_crossentropy")(softmax(logits), target), expected)
    with pytest.raises(ShapeError, match="Integer class targets need loss='sparse_categorical_crossentropy'"):
        get_loss("categorical_crossentropy")(softmax(logits), torch.tensor([2]))


def test_binary_crossentropy_by_hand_and_fused():
    logits = torch.tensor([[3.0], [-2.0], [80.0]])
    target = torch.tensor([1.0, 1.0, 0.0])  # (N,) targets for (N, 1) outputs, as Keras allows
    z, t = logits.numpy().ravel().astype(np.float64), target.numpy()
    expected = np.logaddexp(0.0, z) - t * z  # −[t·log σ(z) + (1 − t)·log(1 − σ(z))], written without overflow
    fused = get_loss("binary_crossentropy")(sigmoid(logits), target)
    np.testing.assert_allclose(fused.numpy(), expected, rtol=1e-4)  # 80 exactly, where clipping gives 16.1
    plain = get_loss("binary_crossentropy")(torch.sigmoid(logits), target)
    assert 15.9 < plain[2].item() < 16.2  # probabilities clipped at 1 − 1e-7 (in float32), as Keras does


def test_mean_squared_and_absolute_error():
    output, target = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [3.0, 1.0]])
    torch.testing.assert_close(get_loss("mse")(output, target), torch.tensor([2.5, 5.0]))
    torch.testing.assert_close(get_loss("mae")(output, target), torch.tensor([1.5, 2.0]))


def test_unknown_loss_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean 'sparse_categorical_crossentropy'"):
        get_loss("sparse_categorical_crossentropi")


def test_loss_objects_under_keras_names():
    import hubel

    logits, labels = torch.randn(6, 4), torch.tensor([0, 3, 1, 2, 2, 0])
    loss = hubel.losses.SparseCategoricalCrossentropy(from_logits=True)  # the TensorFlow tutorial's
    torch.testing.assert_close(loss(logits, labels), F.cross_entropy(logits, labels, reduction="none"))
    one_hot = F.one_hot(labels, 4).float()
    torch.testing.assert_close(
        hubel.losses.CategoricalCrossentropy(from_logits=True)(logits, one_hot), loss(logits, labels)
    )


def test_label_smoothing_moves_the_targets_towards_uniform_as_keras_does():
    import hubel

    logits, labels = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]), torch.tensor([0, 2])
    smoothed = F.one_hot(labels, 3).float() * 0.8 + 0.2 / 3  # Keras: t·(1 − s) + s/num_classes
    expected = -(smoothed * F.log_softmax(logits, dim=-1)).sum(-1)
    torch.testing.assert_close(expected, F.cross_entropy(logits, labels, reduction="none", label_smoothing=0.2))
    categorical = hubel.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)
    torch.testing.assert_close(categorical(logits, F.one_hot(labels, 3).float()), expected)
    sparse = hubel.losses.SparseCategoricalCrossentropy(label_smoothing=0.2)  # from the softmax's kept logits
    torch.testing.assert_close(sparse(softmax(logits), labels), expected)
    assert repr(sparse) == "SparseCategoricalCrossentropy(from_logits=False, label_smoothing=0.2)"
    z, t = torch.tensor([[3.0], [-2.0]]), torch.tensor([[1.0], [0.0]])
    binary = hubel.losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2)  # t·(1 − s) + s/2
    torch.testing.assert_close(
        binary(z, t), F.binary_cross_entropy_with_logits(z, t * 0.8 + 0.1, reduction="none")[:, 0]
    )
    with pytest.raises(ConfigError, match=r"expected 0 <= label_smoothing <= 1. Received: label_smoothing=1.5"):
        hubel.losses.CategoricalCrossentropy(label_smoothing=1.5)
