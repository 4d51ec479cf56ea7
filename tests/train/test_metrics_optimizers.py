import pytest
import torch

from hubel import layers as L
from hubel.errors import ConfigError, UnknownNameError
from hubel.models import Sequential
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


def _steps(optimizer, gradients, start=1.0):
    """Run an optimizer on one scalar weight with the given gradients; the weight after each step."""
    weight = torch.nn.Parameter(torch.tensor([start]))
    optimizer.build([weight])
    values = []
    for gradient in gradients:
        weight.grad = torch.tensor([gradient])
        optimizer.step()
        values.append(weight.item())
    return values


def test_adam_takes_keras_steps_epsilon_outside_the_bias_correction():
    # Keras: alpha = lr·sqrt(1 − β₂ᵗ)/(1 − β₁ᵗ); w −= alpha·m/(sqrt(v) + ε); torch adds ε after correcting v
    lr, b1, b2, eps, gradients = 0.01, 0.9, 0.999, 0.1, [1e-2, -3e-2, 2e-2]
    w, m, v, expected = 1.0, 0.0, 0.0, []
    for t, g in enumerate(gradients, start=1):
        m, v = m + (g - m) * (1 - b1), v + (g * g - v) * (1 - b2)
        w -= lr * (1 - b2**t) ** 0.5 / (1 - b1**t) * m / (v**0.5 + eps)
        expected.append(w)
    assert _steps(Adam(lr, epsilon=eps), gradients) == pytest.approx(expected, rel=1e-6)
    amsgrad = _steps(Adam(lr, epsilon=eps, amsgrad=True), gradients)
    assert amsgrad[:2] == pytest.approx(expected[:2], rel=1e-6)  # v only grows in these two steps


def test_adam_on_torchs_fused_kernel_takes_the_multi_tensor_rules_steps(monkeypatch):
    from hubel.train import update_rules

    def train(fused: bool) -> list[torch.Tensor]:
        monkeypatch.setattr(update_rules, "_fused_adam_fits", lambda parameters: fused)
        generator = torch.Generator().manual_seed(0)
        weights = [
            torch.nn.Parameter(torch.randn(*shape, generator=generator)) for shape in [(8, 3, 3, 3), (8,), (5, 4)]
        ]
        optimizer = Adam(0.01, epsilon=0.1, weight_decay=0.01).build(weights)
        for _ in range(4):
            for weight in weights:
                gradient = torch.randn(*weight.shape, generator=generator) * 0.01
                # a convolution's gradient laid out channels-last, as training on images gives it
                weight.grad = gradient.contiguous(memory_format=torch.channels_last) if weight.dim() == 4 else gradient
            optimizer.step()
        return [weight.detach() for weight in weights]

    assert update_rules._fused_adam_fits([torch.zeros(3)])  # the pinned torch has the kernel
    for fused, multi_tensor in zip(train(True), train(False)):
        torch.testing.assert_close(fused, multi_tensor, rtol=1e-6, atol=1e-7)


def test_rmsprop_puts_epsilon_inside_the_root_and_sgd_momentum_scales_steps_by_the_rate():
    lr, rho, eps, gradients = 0.01, 0.9, 1e-3, [1e-3, 2e-3]
    w, velocity, expected = 1.0, 0.0, []
    for g in gradients:
        velocity = rho * velocity + (1 - rho) * g * g
        w -= lr * g / (velocity + eps) ** 0.5
        expected.append(w)
    assert _steps(RMSprop(lr, epsilon=eps), gradients) == pytest.approx(expected, rel=1e-6)
    # SGD: m = μm − lr·g; w += m, with the rate changing between steps (a schedule)
    rates = [0.1, 0.01]
    sgd = SGD(learning_rate=lambda step: rates[step], momentum=0.9)
    w, m, expected = 1.0, 0.0, []
    for rate, g in zip(rates, [1.0, 1.0]):
        m = 0.9 * m - rate * g
        w += m
        expected.append(w)
    assert _steps(sgd, [1.0, 1.0]) == pytest.approx(expected, rel=1e-6)


def test_weight_decay_is_decoupled_on_every_optimizer_as_in_keras():
    for optimizer in (
        SGD(0.1, momentum=0.9, weight_decay=0.5),
        Adam(0.1, weight_decay=0.5),
        RMSprop(0.1, weight_decay=0.5),
    ):
        # a zero gradient moves nothing but the decay: w·(1 − lr·wd), never through momentum
        assert _steps(optimizer, [0.0, 0.0]) == pytest.approx([0.95, 0.95**2], rel=1e-6)
    with pytest.raises(ConfigError, match="weight_decay"):
        SGD(weight_decay=-1)


def test_learning_rate_multipliers_scale_the_step_of_the_weights_they_name_not_their_decay():
    offset, kernel = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    named = [("batch_normalization_1.beta", offset), ("conv2d.kernel", kernel)]
    sgd = SGD(0.1, momentum=0.5, nesterov=True, weight_decay=0.5, learning_rate_multipliers={"beta": 8})
    sgd.build(named)
    assert [group["lr_multiplier"] for group in sgd.torch.param_groups] == [1.0, 8.0]
    assert "learning_rate_multipliers={'beta': 8.0}" in repr(sgd) and sgd.learning_rate == pytest.approx(0.1)
    w, v, kernel_w, kernel_v = 1.0, 0.0, 1.0, 0.0
    for gradient in (1.0, -2.0, 0.5):
        offset.grad, kernel.grad = torch.full((2,), gradient), torch.full((2,), gradient)
        sgd.step()
        # decay at the base rate, then Keras's nesterov step at 8 × 0.1 for the offset, 0.1 for the kernel
        w, kernel_w = w * (1 - 0.5 * 0.1), kernel_w * (1 - 0.5 * 0.1)
        v, kernel_v = 0.5 * v - 0.8 * gradient, 0.5 * kernel_v - 0.1 * gradient
        w, kernel_w = w + 0.5 * v - 0.8 * gradient, kernel_w + 0.5 * kernel_v - 0.1 * gradient
        assert offset.tolist() == pytest.approx([w, w], rel=1e-6)
        assert kernel.tolist() == pytest.approx([kernel_w, kernel_w], rel=1e-6)
    # a schedule sets the base rate of every group; the multiplier stays
    adam = Adam(lambda step: 0.01 / (step + 1), learning_rate_multipliers={"conv2d*": 3})
    adam.build(named)
    offset.grad, kernel.grad = torch.ones(2), torch.ones(2)
    before_offset, before_kernel = offset.detach().clone(), kernel.detach().clone()
    adam.step()  # Adam's first step is lr·sign(g) (up to epsilon)
    assert (before_offset - offset).tolist() == pytest.approx([0.01, 0.01], rel=1e-4)
    assert (before_kernel - kernel).tolist() == pytest.approx([0.03, 0.03], rel=1e-4)


def test_learning_rate_multipliers_fit_a_model_and_are_checked():
    model = Sequential([L.Input((4,)), L.Dense(3, activation="relu"), L.BatchNormalization(), L.Dense(2)])
    x, y = torch.randn(64, 4).numpy(), (torch.arange(64) % 2).numpy()
    model.compile(optimizer=SGD(0.1, learning_rate_multipliers={"beta": 64}), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    groups = model.optimizer.torch.param_groups
    assert [[p.shape for p in group["params"]] for group in groups] == [
        [(3, 4), (3,), (3,), (2, 3), (2,)],  # dense kernel, bias; batch norm's gamma; dense_1
        [(3,)],  # batch norm's beta
    ]
    model.compile(optimizer=SGD(0.1, learning_rate_multipliers={"gama": 2}), loss="sparse_categorical_crossentropy")
    with pytest.raises(ConfigError, match="pattern 'gama' matches none of the model's trainable weights"):
        model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ConfigError, match="positive numbers"):
        SGD(learning_rate_multipliers={"beta": 0})
    with pytest.raises(ConfigError, match="named_parameters"):
        SGD(learning_rate_multipliers={"beta": 2}).build([torch.nn.Parameter(torch.ones(1))])


def test_gradient_clipping_keras_style():
    assert _steps(SGD(1.0, clipvalue=0.5), [2.0]) == pytest.approx([0.5])
    assert _steps(SGD(1.0, clipnorm=0.25), [-2.0]) == pytest.approx([1.25])
    weights = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = SGD(1.0, global_clipnorm=1.0).build(weights)
    weights[0].grad, weights[1].grad = torch.tensor([3.0]), torch.tensor([4.0])
    optimizer.step()
    assert [w.item() for w in weights] == pytest.approx([-0.6, -0.8])
    with pytest.raises(ConfigError, match="only one of `clipnorm`"):
        Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ConfigError, match="did you mean `clipnorm`"):
        Adam(clip_norm=1.0)


def test_a_model_with_nothing_to_train_still_fits_as_in_keras():
    import hubel

    model = hubel.Sequential([L.Input((3,)), L.Dense(1, trainable=False)])
    model.compile(optimizer="adam", loss="mse")
    before = model.get_weights()
    history = model.fit(torch.ones(8, 3).numpy(), torch.zeros(8, 1).numpy(), verbose=0, epochs=2)
    assert len(history.history["loss"]) == 2 and history.history["loss"][0] > 0
    assert all((a == b).all() for a, b in zip(before, model.get_weights()))


def test_a_checkpoint_of_torchs_adam_resumes_with_its_step_count():
    weight = torch.nn.Parameter(torch.ones(3))
    earlier = torch.optim.Adam([weight], lr=0.01, eps=1e-7)  # what hubel's Adam was before Keras's rules
    for _ in range(3):
        weight.grad = torch.ones(3)
        earlier.step()
    resumed = Adam(0.01).build([weight])
    resumed.load_state_dict({"torch": earlier.state_dict(), "iterations": 3})
    assert resumed.torch.param_groups[0]["step"] == 3
    assert torch.equal(resumed.torch.state[weight]["exp_avg"], earlier.state[weight]["exp_avg"])


def test_a_moving_average_of_the_weights_as_in_keras():
    # Keras: after each update, average = m·average + (1 − m)·weight; the first average is the weight
    weight = torch.nn.Parameter(torch.ones(1))
    optimizer = SGD(0.1, use_ema=True, ema_momentum=0.5).build([weight])
    averages = []
    for _ in range(3):
        weight.grad = torch.ones(1)
        optimizer.step()
        averages.append(optimizer.state_dict()["averages"][0].item())
    assert averages == pytest.approx([0.9, 0.85, 0.775]) and weight.item() == pytest.approx(0.7)
    optimizer.finalize_variable_values()  # what fit does after its last epoch
    assert weight.item() == pytest.approx(0.775)
    # every ema_overwrite_frequency steps the weights become the averages, mid-training
    weight = torch.nn.Parameter(torch.ones(1))
    optimizer = SGD(0.1, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=2).build([weight])
    values = []
    for _ in range(3):
        weight.grad = torch.ones(1)
        optimizer.step()
        values.append(weight.item())
    assert values == pytest.approx([0.9, 0.85, 0.75])
    # a checkpoint holds the averages: a resumed optimizer goes on from them
    resumed_weight = torch.nn.Parameter(weight.detach().clone())
    resumed = SGD(0.1, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=2).build([resumed_weight])
    resumed.load_state_dict(optimizer.state_dict())
    for parameter, step in ((weight, optimizer), (resumed_weight, resumed)):
        parameter.grad = torch.ones(1)
        step.step()
    assert weight.item() == resumed_weight.item() == pytest.approx(0.5 * 0.8 + 0.5 * 0.65)
    assert "use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=2" in repr(optimizer)


def test_fit_ends_on_the_moving_average_of_its_weights():
    import numpy as np

    import hubel

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 2, 64)
    model = hubel.Sequential([L.Input((4,)), L.Dense(2, activation="softmax")])
    model.compile(optimizer=Adam(0.05, use_ema=True, ema_momentum=0.9), loss="sparse_categorical_crossentropy")
    seen = []

    class Record(hubel.callbacks.Callback):
        def on_batch_end(self, batch, logs):
            seen.append([weight.copy() for weight in model.get_weights()])

    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[Record()])
    average = seen[0]
    for weights in seen[1:]:
        average = [0.9 * a + 0.1 * w for a, w in zip(average, weights)]
    assert len(seen) == 8 and not np.allclose(seen[-1][0], average[0], atol=1e-3)  # the live weights differ
    for final, expected in zip(model.get_weights(), average):
        np.testing.assert_allclose(final, expected, rtol=1e-5, atol=1e-6)


def test_moving_average_arguments_are_checked_as_in_keras():
    with pytest.raises(ConfigError, match=r"`ema_momentum` must be in the range \[0, 1\]. Received: ema_momentum=1.5"):
        Adam(use_ema=True, ema_momentum=1.5)
    with pytest.raises(ConfigError, match="`ema_overwrite_frequency` must be an integer >= 1 or None"):
        SGD(use_ema=True, ema_overwrite_frequency=0)
    with pytest.raises(ConfigError, match="expected `use_ema` to be True or False"):
        RMSprop(use_ema="yes")
    with pytest.raises(ConfigError, match="did you mean `use_ema`"):
        Adam(use_emma=True)
