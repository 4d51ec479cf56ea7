import csv
import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import hubel
from hubel import layers as L
from hubel.errors import ConfigError
from hubel.train import (
    CSVLogger,
    EarlyStopping,
    FreezeWeights,
    LearningRateScheduler,
    Lookahead,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TrainingBudget,
)
from hubel.train.schedules import CosineDecay, ExponentialDecay, OneCycle, StepDecay


def fake_trainer(rate=0.1):
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    return SimpleNamespace(model=model, stop_training=False, optimizer=SimpleNamespace(learning_rate=rate))


def drive(callback, values, key="val_loss", trainer=None):
    """Feed a sequence of epoch results to a callback; the model's weight records the epoch."""
    trainer = trainer or fake_trainer()
    callback.trainer = trainer
    callback.on_train_begin({})
    stopped_at = None
    for epoch, value in enumerate(values):
        with torch.no_grad():
            trainer.model.weight.fill_(epoch)
        callback.on_epoch_end(epoch, {key: value})
        if trainer.stop_training:
            stopped_at = epoch
            break
    callback.on_train_end({})
    return trainer, stopped_at


def test_early_stopping_patience_and_min_delta():
    _, stopped = drive(EarlyStopping(patience=2), [1.0, 0.9, 0.95, 0.91, 0.92, 0.5])
    assert stopped == 3  # Keras: stop after `patience` epochs in a row without beating 0.9
    _, stopped = drive(EarlyStopping(patience=1, min_delta=0.1), [1.0, 0.95, 0.93])
    assert stopped == 1  # 0.95 is not better by 0.1
    _, stopped = drive(EarlyStopping(monitor="val_accuracy"), [0.5, 0.6, 0.7], key="val_accuracy")
    assert stopped is None  # accuracy: higher is better, chosen automatically


def test_early_stopping_restores_the_best_weights_even_without_stopping():
    trainer, stopped = drive(EarlyStopping(patience=10, restore_best_weights=True), [1.0, 0.4, 0.6, 0.7])
    assert stopped is None and trainer.model.weight.item() == 1.0  # epoch 1 was best
    with pytest.raises(ConfigError, match="EarlyStopping monitors 'val_loss', which is not in the logs"):
        drive(EarlyStopping(), [1.0], key="loss")


def test_reduce_lr_on_plateau():
    trainer, _ = drive(ReduceLROnPlateau(factor=0.5, patience=2, min_lr=0.02), [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    # plateau from epoch 1: halved after epochs 2, 4 and 6, never below min_lr
    assert trainer.optimizer.learning_rate == pytest.approx(0.02)
    trainer, _ = drive(ReduceLROnPlateau(factor=0.5, patience=2), [1.0, 0.9, 0.8, 0.7])
    assert trainer.optimizer.learning_rate == 0.1


def test_lookahead_pulls_the_weights_toward_a_slow_copy_every_few_steps_and_at_each_epochs_end():
    trainer = fake_trainer()
    lookahead = Lookahead(every=2, decay=0.5, power=1.0)
    lookahead.trainer, lookahead.params = trainer, {"epochs": 1, "steps": 5}
    lookahead.on_train_begin({})  # slow copy: 0
    weights = []
    for batch in range(5):
        with torch.no_grad():
            trainer.model.weight.add_(1.0)  # a training step
        lookahead.on_train_batch_end(batch, {})
        weights.append(trainer.model.weight.item())
    # step 2 (progress 0.4, d = 0.2): 0 + 0.8·(2 − 0) = 1.6; step 4 (d = 0.4): 1.6 + 0.6·(3.6 − 1.6) = 2.8;
    # step 5 ends the epoch (d = 0.5): 2.8 + 0.5·(3.8 − 2.8) = 3.3
    assert weights == pytest.approx([1.0, 1.6, 2.6, 2.8, 3.3])
    assert Lookahead().decay_at(0.0) == 0.0 and Lookahead().decay_at(2.0) == pytest.approx(0.95**5)
    for bad in (dict(every=0), dict(every=2.5), dict(decay=1.0), dict(power=0)):
        with pytest.raises(ConfigError, match="Lookahead: expected"):
            Lookahead(**bad)


def test_lookahead_in_a_real_fit_leaves_the_slow_copy_and_batch_norms_statistics_in_the_model():
    (x, y), _ = hubel.datasets.load("digits")
    hubel.set_seed(0)
    model = hubel.Sequential(
        [L.Input((8, 8)), L.Rescaling(1 / 16), L.Flatten(), L.Dense(32), L.BatchNormalization(), L.ReLU(),
         L.Dense(10, activation="softmax")]
    )  # fmt: skip
    model.compile(optimizer=hubel.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])  # fmt: skip
    lookahead = Lookahead(every=5)
    history = model.fit(x, y, epochs=3, batch_size=64, verbose=0, callbacks=[lookahead])
    state = [value for value in model.state_dict().values() if value.is_floating_point()]
    assert len(state) == len(lookahead._slow) == 8  # two kernels, two biases, gamma, beta, moving mean and variance
    assert all(torch.equal(value, slow) for value, slow in zip(state, lookahead._slow))
    assert history.history["accuracy"][-1] > 0.9


def test_freeze_weights_holds_the_whitening_bias_from_its_epoch_and_spares_the_gradients_before_it():
    (x, y), _ = hubel.datasets.load("digits")
    x = x.reshape(-1, 8, 8, 1)
    hubel.set_seed(0)
    model = hubel.Sequential(
        [L.Input((8, 8, 1)), L.Rescaling(1 / 16), L.PatchWhitening(2), L.Activation("gelu"), L.Conv2D(8, 3),
         L.Flatten(), L.Dense(10, activation="softmax")]
    )  # fmt: skip
    model.adapt(x)
    model.compile(optimizer=hubel.optimizers.SGD(0.05, momentum=0.9, weight_decay=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
    whitening = model.get_layer("patch_whitening")
    biases, kernels, asked = [], [], []  # at each epoch's end; whether a step asked for the whitening's gradient
    whitening.register_forward_hook(lambda layer, inputs, output: asked.append(output.requires_grad))

    class Record(hubel.train.Callback):
        def on_epoch_end(self, epoch, logs):
            biases.append(whitening.bias.detach().clone())
            kernels.append(model.get_layer("conv2d").kernel.detach().clone())

    freeze = FreezeWeights("patch_whitening*.bias", after_epochs=2)
    history = model.fit(x, y, epochs=4, batch_size=256, verbose=0, callbacks=[freeze, Record()])
    assert not torch.equal(biases[0], biases[1])  # trained in epochs 0 and 1 (momentum and decay too) ...
    assert torch.equal(biases[1], biases[2]) and torch.equal(biases[2], biases[3])  # ... then held exactly
    assert not torch.equal(kernels[2], kernels[3])  # the other weights train on
    steps = math.ceil(len(x) * 1.0 / 256)
    assert asked[: 2 * steps] == [True] * 2 * steps and not any(asked[2 * steps : 4 * steps])  # no gradient asked
    assert history.history["accuracy"][-1] > 0.8
    assert whitening.bias.requires_grad and repr(freeze) == "FreezeWeights('patch_whitening*.bias', after_epochs=2)"
    model.fit(x, y, epochs=1, batch_size=256, verbose=0)  # trainable again at fit's end: no compile needed


def test_freeze_weights_says_what_it_needs():
    model = hubel.Sequential([L.Input((4,)), L.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = np.zeros((8, 4), np.float32), np.zeros(8, np.int64)
    with pytest.raises(ConfigError, match=r"'conv\*' matches none of the model's trainable weights \(dense.kernel, "):
        model.fit(x, y, verbose=0, callbacks=[FreezeWeights("conv*", after_epochs=1)])
    for weights, epochs in (("", 1), (["dense*", 3], 1), ("dense*", -1), ("dense*", 1.5), ("dense*", True)):
        with pytest.raises(ConfigError, match="FreezeWeights: expected"):
            FreezeWeights(weights, epochs)
    several = FreezeWeights(["kernel", "bias"], 0)
    several.trainer, several.params = SimpleNamespace(model=model), {"world_size": 2}
    with pytest.raises(ConfigError, match="DistributedDataParallel does not allow"):
        several.on_train_begin({})


def test_model_checkpoint_saves_only_improvements(tmp_path):
    model = hubel.Sequential([L.Input((2,)), L.Dense(1)])
    callback = ModelCheckpoint(tmp_path / "best-{epoch:02d}-{val_loss:.2f}.hubel", save_best_only=True)
    callback.trainer = SimpleNamespace(model=model)
    for epoch, value in enumerate([0.9, 0.8, 0.85, 0.7]):
        callback.on_epoch_end(epoch, {"val_loss": value})
    assert [path.name for path in callback.saved] == ["best-01-0.90.hubel", "best-02-0.80.hubel", "best-04-0.70.hubel"]
    assert hubel.load_model(callback.saved[-1]).count_params() == 3


def digits_model():
    (x, y), _ = hubel.datasets.load("digits")
    hubel.set_seed(0)
    model = hubel.Sequential([L.Input((8, 8)), L.Rescaling(1 / 255), L.Flatten(), L.Dense(10, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model, x, y


def test_learning_rate_scheduler_and_csv_logger_in_a_real_fit(tmp_path):
    model, x, y = digits_model()
    history = model.fit(
        x,
        y,
        epochs=3,
        verbose=0,
        callbacks=[LearningRateScheduler(lambda epoch, rate: 0.1 / (epoch + 1)), CSVLogger(tmp_path / "log.csv")],
    )
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]
    assert float(rows[2]["loss"]) == pytest.approx(history.history["loss"][2])


def test_schedules_at_known_steps():
    assert [StepDecay(1.0, 2, 0.5)(step) for step in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert ExponentialDecay(1.0, 10, 0.5, staircase=True)(19) == 0.5
    assert ExponentialDecay(1.0, 10, 0.5)(20) == pytest.approx(0.25)
    cosine = CosineDecay(1.0, decay_steps=100, alpha=0.1)
    assert (cosine(0), cosine(50), cosine(100), cosine(1000)) == pytest.approx((1.0, 0.55, 0.1, 0.1))
    cycle = OneCycle(1.0, total_steps=100, pct_start=0.3, div_factor=10, final_div_factor=10)
    rates = [cycle(step) for step in range(101)]
    assert rates[0] == pytest.approx(0.1) and max(rates) == pytest.approx(1.0) and rates[30] == pytest.approx(1.0)
    assert rates[-1] == pytest.approx(0.01) and all(a <= b for a, b in itertools.pairwise(rates[:31]))


def test_a_schedule_drives_the_rate_inside_fit():
    model, x, y = digits_model()
    model.compile(
        optimizer=hubel.optimizers.SGD(StepDecay(0.1, step_size=46, factor=0.5)), loss="sparse_categorical_crossentropy"
    )
    history = model.fit(x, y, epochs=3, verbose=0)  # 46 steps per epoch: the rate halves at each epoch's start
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])  # as used by each epoch's last step


def test_lr_find_suggests_a_rate_and_leaves_everything_as_it_was():
    model, x, y = digits_model()
    before = [p.detach().clone() for p in model.parameters()]
    random_state = torch.get_rng_state()
    curve = model.lr_find(x, y, steps=60)
    assert 5 <= len(curve.rates) <= 60 and curve.rates == sorted(curve.rates)
    assert 1e-6 < curve.suggestion < 1.0 and all(math.isfinite(loss) for loss in curve.losses[:-1])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert torch.equal(torch.get_rng_state(), random_state) and model.optimizer.learning_rate == 0.01
    assert np.argmin(curve.losses) > len(curve.losses) // 3  # the loss fell before it rose


def test_a_training_budget_stops_inside_an_epoch_and_that_epoch_still_validates():
    (x, y), _ = hubel.datasets.load("digits")
    model = hubel.Sequential([L.Input((8, 8, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    budget = TrainingBudget(steps=50)
    steps = []

    class CountSteps(hubel.callbacks.Callback):
        def on_batch_end(self, batch, logs):
            steps.append(batch)

    history = model.fit(
        x, y, epochs=5, batch_size=32, validation_split=0.2, callbacks=[budget, CountSteps()], verbose=0
    )
    per_epoch = math.ceil(int(len(x) * 0.8) / 32)  # 45
    assert len(steps) == 50 and budget.stopped_by == "steps" and budget.taken == 50
    assert history.epoch == [0, 1] and steps[-1] == 50 - per_epoch - 1  # the second epoch stopped at its 5th step
    assert len(history.history["val_loss"]) == 2  # as in Keras, the stopped epoch still validates


def test_a_callback_moves_the_end_of_fit_through_params_and_the_progress_counts_to_it(capsys):
    (x, y), _ = hubel.datasets.load("digits")
    model = hubel.Sequential([L.Input((8, 8, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    seen = []

    class Replan(hubel.callbacks.Callback):
        def __init__(self, ends):
            self.ends = ends

        def on_epoch_end(self, epoch, logs):
            seen.append(dict(self.params))
            self.params["epochs"] = self.ends[epoch]

    history = model.fit(x[:64], y[:64], epochs=2, batch_size=32, callbacks=[Replan([4, 4, 3])], verbose=2)
    assert history.epoch == [0, 1, 2]  # given 2 epochs, moved to 4, then to 3 after the third
    assert seen[0] == {"epochs": 2, "steps": 2, "batch_size": 32} and history.params["epochs"] == 3
    lines = [line.split(" - ")[0] for line in capsys.readouterr().out.splitlines() if line.startswith("Epoch")]
    assert lines == ["Epoch 1/2", "Epoch 2/4", "Epoch 3/4"]
    history = model.fit(x[:64], y[:64], epochs=5, batch_size=32, callbacks=[Replan([1])], verbose=0)
    assert history.epoch == [0]  # lowered below the epochs done: fit ends after this one


def test_a_training_budget_in_seconds_and_its_checks():
    (x, y), _ = hubel.datasets.load("digits")
    model = hubel.Sequential([L.Input((8, 8, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    budget = TrainingBudget(seconds=0.05)
    history = model.fit(x, y, epochs=10_000, batch_size=8, callbacks=[budget], verbose=0)
    assert budget.stopped_by == "seconds" and len(history.epoch) < 10_000
    for arguments in ({}, {"steps": 0}, {"seconds": -1.0}):
        with pytest.raises(ConfigError, match="TrainingBudget"):
            TrainingBudget(**arguments)


def test_one_cycle_can_be_retargeted_to_a_new_length():
    schedule = OneCycle(1.0, total_steps=100, pct_start=0.25, div_factor=10, final_div_factor=100)
    schedule.retarget(200)
    assert schedule.total == 200 and schedule.rise == 50
    assert schedule(50) == pytest.approx(1.0) and schedule(200) == pytest.approx(0.001)


def test_a_keras_style_callback_stops_fit_through_self_model():
    # the tutorials' callback, as written for Keras: self.model, logs=None, on_train_batch_end
    class StopAtAccuracy(hubel.callbacks.Callback):
        def __init__(self):
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1

        def on_epoch_end(self, epoch, logs=None):
            if logs.get("accuracy") > 0.9:
                self.model.stop_training = True

    (x, y), _ = hubel.datasets.load("digits")
    model = hubel.Sequential([L.Input((8, 8)), L.Rescaling(1 / 16), L.Flatten(), L.Dense(10, activation="softmax")])
    model.compile(optimizer=hubel.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stopper = StopAtAccuracy()
    history = model.fit(x, y, epochs=50, batch_size=64, verbose=0, callbacks=[stopper])
    epochs = len(history.history["accuracy"])
    assert stopper.model is model and 1 < epochs < 50 and history.history["accuracy"][-1] > 0.9
    assert max(history.history["accuracy"][:-1]) <= 0.9  # it stopped at the first epoch past 0.9
    assert stopper.batches == epochs * math.ceil(len(x) / 64)  # the Keras name of the batch hook is called
    assert model.stop_training is True  # read back as in Keras; the next fit starts it over
