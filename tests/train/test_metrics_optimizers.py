import pytest
import torch

from hubel import layers as L
from hubel.errors import ConfigError, UnknownNameError
from hubel.train import SGD, Adam, RMSprop, get_metric, get_optimizer


def score(metric, output, target):
    metric.update(torch.as_tensor(output, dtype=torch.float32), torch.as_tensor(target))
    return metric.result()


def test_accuracy_resolves_from_the_loss_like_keras():
    output = [[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]
    assert score(get_metric("accuracy", "sparse_categorical_crossentropy"), output, [1, 1, 1]) == pytest.approx(2 / 3)
    one_hot = [[0, 1], [1, 0], [1, 0]]
    assert score(get_metric("acc", "categorical_crossentropy"), output, one_hot) == pytest.approx(2 / 3)
    binary = get_metric("accuracy", "binary_crossentropy")
    assert score(binary, [[0.9], [0.4], [0.6]], [1, 0, 0]) == pytest.approx(2 / 3)
    logits = get_metric("accuracy", "binary_crossentropy", from_logits=True)  # threshold 0 on logits
    assert score(logits, [[0.3], [-0.4], [-2.0]], [1, 0, 0]) == 1.0


def test_top_k_and_accumulation_over_batches():
    metric = get_metric("sparse_top_k_categorical_accuracy", "sparse_categorical_crossentropy")
    metric.update(torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.0, 0.0]]), torch.tensor([0]))  # rank 4 of 6: in the top 5
    metric.update(torch.tensor([[0.5, 0.4, 0.3, 0.2, 0.1, 0.0]]), torch.tensor([5]))  # rank 6: out
    assert metric.result() == 0.5
    with pytest.raises(UnknownNameError, match="Did you mean 'binary_accuracy'"):
        get_metric("binary_acuracy", "mse")


def parameters():
    layer = L.Dense(3)
    layer.build((4,))
    return layer.parameters()


def test_optimizers_have_keras_defaults():
    adam = get_optimizer("adam").build(parameters())
    group = adam.torch.param_groups[0]
    assert (group["lr"], group["eps"], group["betas"]) == (0.001, 1e-7, (0.9, 0.999))
    rmsprop = get_optimizer("rmsprop").build(parameters()).torch.param_groups[0]
    assert (rmsprop["lr"], rmsprop["alpha"], rmsprop["eps"]) == (0.001, 0.9, 1e-7)
    sgd = SGD(momentum=0.9, nesterov=True).build(parameters()).torch.param_groups[0]
    assert (sgd["lr"], sgd["momentum"], sgd["nesterov"]) == (0.01, 0.9, True)
    adamw = get_optimizer("adamw").build(parameters()).torch.param_groups[0]
    assert adamw["weight_decay"] == 0.004


def test_learning_rate_is_readable_and_settable():
    optimizer = Adam(0.01).build(parameters())
    assert optimizer.learning_rate == 0.01
    optimizer.learning_rate = 0.001
    assert all(group["lr"] == 0.001 for group in optimizer.torch.param_groups)
    with pytest.raises(ConfigError, match="positive learning rate"):
        optimizer.learning_rate = -1


def test_schedule_as_learning_rate_and_torch_optimizers():
    optimizer = RMSprop(learning_rate=lambda step: 0.1 / (step + 1)).build(parameters())
    for _ in range(3):
        optimizer.step()
    assert optimizer.learning_rate == pytest.approx(0.1 / 3)
    layer = L.Dense(2)
    layer.build((2,))
    wrapped = get_optimizer(torch.optim.SGD(layer.parameters(), lr=0.5))
    assert wrapped.learning_rate == 0.5 and wrapped.build(parameters()).torch.param_groups[0]["lr"] == 0.5
    with pytest.raises(UnknownNameError, match="Did you mean 'adam'"):
        get_optimizer("adma")
