import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from PIL import Image

import hubel
from hubel import datasets
from hubel import layers as L
from hubel.train import Callback, CallbackError, Trainer


def digits():
    (x, y), (x_test, y_test) = datasets.load("digits")
    return x[..., None], y, x_test[..., None], y_test


def small_model(seed=0, dropout=0.0):
    hubel.set_seed(seed)
    model = hubel.Sequential(
        [
            L.Input((8, 8, 1)),
            L.Rescaling(1 / 255),
            L.Conv2D(8, 3, activation="relu"),
            L.Flatten(),
            L.Dropout(dropout),
            L.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_one_epoch_on_real_mnist_beats_95_percent():
    (x, y), (x_test, y_test) = datasets.load("mnist")
    hubel.set_seed(0)
    model = hubel.Sequential(
        [
            L.Input((28, 28, 1)),
            L.Rescaling(1 / 255),
            L.Conv2D(32, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(64, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Flatten(),
            L.Dense(64, activation="relu"),
            L.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x[:20000], y[:20000], epochs=1, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy > 0.95, accuracy
    assert set(history.history) == {"loss", "accuracy", "learning_rate"}


def test_evaluate_and_predict_agree_with_a_manual_forward():
    x, y, x_test, y_test = digits()
    model = small_model()
    model.fit(x, y, epochs=2, verbose=0)
    probabilities = model.predict(x_test)
    model.eval()
    with torch.no_grad():
        manual = model(torch.from_numpy(x_test)).numpy()
    np.testing.assert_allclose(probabilities, manual, rtol=1e-5, atol=1e-7)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    expected_loss = -np.log(np.clip(manual[np.arange(len(y_test)), y_test], 1e-7, 1)).mean()
    assert loss == pytest.approx(expected_loss, rel=1e-4)
    assert accuracy == pytest.approx((manual.argmax(1) == y_test).mean())


def test_evaluate_runs_without_autograd_and_score_agrees_with_it():
    x, y, x_test, y_test = digits()
    model = small_model()
    model.fit(x, y, epochs=1, verbose=0)
    grad_enabled = []
    hook = model.register_forward_hook(lambda *_: grad_enabled.append(torch.is_grad_enabled()))
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=100, verbose=0)
    hook.remove()
    assert grad_enabled and not any(grad_enabled)  # no autograd graph is built to evaluate
    # outputs computed elsewhere (as ONNX Runtime's are) score as evaluate does
    logs = model.trainer.score(model.predict(x_test), y_test)
    assert logs == {"loss": pytest.approx(loss, rel=1e-5), "accuracy": pytest.approx(accuracy)}
    with pytest.raises(hubel.errors.DataError, match="Give one output per target"):
        model.trainer.score(model.predict(x_test[:5]), y_test)


def test_validation_split_is_the_last_fraction_and_history_has_keras_keys():
    x, y, _, _ = digits()
    model = small_model()
    history = model.fit(x, y, epochs=2, validation_split=0.25, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert history.epoch == [0, 1] and all(len(values) == 2 for values in history.history.values())
    cut = int(len(x) * 0.75)
    loss, _ = model.evaluate(x[cut:], y[cut:], verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(loss, rel=1e-6)
    assert history.params["steps"] == int(np.ceil(cut / 32))


def test_progress_is_one_keras_line_per_epoch_when_not_a_terminal(capsys):
    x, y, x_test, y_test = digits()
    small_model().fit(x, y, epochs=3, validation_data=(x_test, y_test))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for epoch, line in enumerate(lines, start=1):
        assert line.startswith(f"Epoch {epoch}/3 - 46/46 - ")
        assert "ms/step - loss: " in line and " - accuracy: " in line and " - val_accuracy: " in line


def test_continuing_with_a_lower_rate_and_combining_histories():
    x, y, _, _ = digits()
    model = small_model()
    first = model.fit(x, y, epochs=2, verbose=0)
    model.optimizer.learning_rate = model.optimizer.learning_rate / 10
    second = model.fit(x, y, epochs=4, initial_epoch=2, verbose=0)
    assert second.epoch == [2, 3] and second.history["learning_rate"] == [1e-4, 1e-4]
    both = first + second
    assert both.epoch == [0, 1, 2, 3] and both.history["learning_rate"] == [1e-3, 1e-3, 1e-4, 1e-4]
    assert both.history["loss"][2] < both.history["loss"][0]


def test_set_seed_repeats_a_run_bit_for_bit():
    x, y, _, _ = digits()
    runs = []
    for _ in range(2):
        model = small_model(seed=3, dropout=0.3)
        history = model.fit(x, y, epochs=2, verbose=0)
        runs.append((history.history["loss"], [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))


def test_class_weight_moves_the_decision():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)  # separable, half and half
    hubel.set_seed(0)
    model = hubel.Sequential([L.Input((2,)), L.Dense(2, activation="softmax")])
    model.compile(optimizer=hubel.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=5, class_weight={0: 0.0, 1: 1.0}, verbose=0)
    assert (model.predict(x).argmax(1) == 1).mean() > 0.9  # class 0 costs nothing, so everything becomes 1
    balanced = small_model()
    x_digits, y_digits, _, _ = digits()
    keep = (y_digits != 3) | (np.arange(len(y_digits)) % 5 == 0)  # make class 3 rare
    balanced.fit(x_digits[keep], y_digits[keep], class_weight="balanced", epochs=1, verbose=0)


def test_non_finite_loss_stops_naming_epoch_and_step(tmp_path, capsys):
    x, y, _, _ = digits()
    model = small_model()
    model.fit(x, y, epochs=1, verbose=0, checkpoint_dir=tmp_path)
    saved = (tmp_path / "last.ckpt").read_bytes()
    bad = x.astype(np.float32)
    bad[40:] = np.nan  # the second batch of the epoch
    history = model.fit(bad, y, epochs=3, shuffle=False, verbose=0, checkpoint_dir=tmp_path)
    out = capsys.readouterr().err  # shown even with verbose=0
    assert "Stopped: the loss became nan at epoch 1, step 2." in out
    assert f"The last good checkpoint is {tmp_path / 'last.ckpt'}" in out
    assert len(history) == 0 and model.trainer.stop_training
    assert (tmp_path / "last.ckpt").read_bytes() == saved  # the good checkpoint was kept


def test_a_dataset_of_batches_and_a_plain_torch_module(tmp_path):
    for name, color in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
        for index in range(12):
            (tmp_path / name).mkdir(exist_ok=True)
            noise = np.random.default_rng(index).integers(0, 30, (16, 16, 3))
            Image.fromarray((np.array(color) + noise).clip(0, 255).astype(np.uint8)).save(
                tmp_path / name / f"{index}.png"
            )
    dataset = hubel.data.image_folder(tmp_path, (16, 16), batch_size=8, seed=0, verbose=False)
    hubel.set_seed(0)
    model = hubel.Sequential([L.Input((16, 16, 3)), L.Rescaling(1 / 255), L.GlobalAveragePooling2D(), L.Dense(2)])
    model.compile(optimizer=hubel.optimizers.Adam(0.05), loss=hubel.train.get_loss("sparse_categorical_crossentropy"))
    model.trainer.loss.from_logits = True
    history = model.fit(dataset, epochs=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert (model.predict(dataset.numpy()[0]).argmax(1) == dataset.labels).all()
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))  # NHWC floats in, logits out
    x, y, x_test, y_test = digits()
    trainer = Trainer(plain, "adam", hubel.train.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    trainer.fit(x.astype(np.float32) / 255, y, epochs=5, verbose=0)
    assert trainer.evaluate(x_test.astype(np.float32) / 255, y_test, verbose=0)[1] > 0.85


def test_a_failing_callback_is_named():
    class Boom(Callback):
        def on_epoch_end(self, epoch, logs):
            raise ValueError("bad idea")

    x, y, _, _ = digits()
    with pytest.raises(CallbackError, match=r"callback Boom failed in on_epoch_end: ValueError\('bad idea'\)"):
        small_model().fit(x, y, epochs=1, verbose=0, callbacks=[Boom()])


def test_bad_inputs_are_clear():
    x, y, _, _ = digits()
    model = small_model()
    with pytest.raises(hubel.DataError, match="x has 1442 examples but y has 10"):
        model.fit(x, y[:10], verbose=0)
    with pytest.raises(hubel.ShapeError, match=r"takes examples of shape \(8, 8, 1\)"):
        model.fit(np.zeros((4, 9, 9, 1)), y[:4], verbose=0)
    with pytest.raises(hubel.ConfigError, match="not compiled"):
        hubel.Sequential([L.Input((2,)), L.Dense(1)]).fit(np.zeros((2, 2)), np.zeros(2))


RESUME_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import numpy as np, torch
    import hubel
    from hubel import layers as L
    from hubel.train import Callback

    checkpoint_dir, output, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
    torch.set_num_threads(1)
    hubel.set_seed(7)
    (x, y), _ = hubel.datasets.load("digits")
    model = hubel.Sequential([L.Input((8, 8)), L.Rescaling(1 / 255), L.Reshape((8, 8, 1)),
                              L.RandomTranslation(0.1, 0.1, seed=3), L.Conv2D(8, 3, activation="relu"),
                              L.Flatten(), L.Dropout(0.3), L.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    class Slow(Callback):
        def on_batch_end(self, batch, logs):
            time.sleep(pause)

    history = model.fit(x, y, epochs=4, batch_size=32, verbose=0, checkpoint_dir=checkpoint_dir,
                        checkpoint_every=5, resume=True, callbacks=[Slow()])
    np.savez(output, *[p.detach().numpy() for p in model.state_dict().values()])
    with open(output + ".json", "w") as file:
        json.dump(history.history, file)
    """
)


def test_a_run_killed_or_interrupted_mid_epoch_resumes_bit_for_bit(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(RESUME_SCRIPT)
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    def run(name, pause, kill_at=None, how=signal.SIGKILL):
        output = str(tmp_path / f"{name}.npz")
        process = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / name), output, str(pause)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if kill_at is not None and how == signal.SIGINT:
            checkpoint = tmp_path / name / "last.ckpt"
            while not checkpoint.exists() or torch.load(checkpoint, weights_only=True)["epoch"] < kill_at[0]:
                time.sleep(0.05)
            time.sleep(0.3)
            process.send_signal(signal.SIGINT)  # Ctrl-C
            _, errors = process.communicate(timeout=120)
            assert process.returncode == 0 and b"Interrupted: saved" in errors
            partial = json.load(open(output + ".json"))  # fit returned the history so far
            assert len(partial["loss"]) == kill_at[0]
            state = torch.load(checkpoint, weights_only=True)
            assert state["epoch"] == kill_at[0] and 0 < state["step"] < 46
            return None
        if kill_at is not None:
            checkpoint = tmp_path / name / "last.ckpt"
            deadline = time.time() + 120
            while time.time() < deadline and process.poll() is None:
                if checkpoint.exists():
                    state = torch.load(checkpoint, weights_only=True)
                    if (state["epoch"], state["step"]) >= kill_at:
                        process.send_signal(signal.SIGKILL)
                        break
                time.sleep(0.05)
            process.wait()
            assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
            assert not os.path.exists(output)
            state = torch.load(checkpoint, weights_only=True)
            assert state["epoch"] == kill_at[0] and 0 < state["step"] < 46  # killed in the middle of an epoch
            return None
        _, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors.decode()[-2000:]
        return np.load(output), json.load(open(output + ".json"))

    reference_weights, reference_history = run("uninterrupted", 0.0)
    # 30 ms a step: the kill and the Ctrl-C have 0.75 s and more of margin when the machine is busy
    run("killed", 0.03, kill_at=(1, 20))
    resumed_weights, resumed_history = run("killed", 0.0)
    assert resumed_history == reference_history
    for key in reference_weights.files:
        assert np.array_equal(reference_weights[key], resumed_weights[key]), key
    run("interrupted", 0.03, kill_at=(2, 0), how=signal.SIGINT)
    resumed_weights, resumed_history = run("interrupted", 0.0)
    assert resumed_history == reference_history
    for key in reference_weights.files:
        assert np.array_equal(reference_weights[key], resumed_weights[key]), key


def test_mixed_precision_is_opt_in_and_fp16_needs_cuda():
    x, y, x_test, _ = digits()
    model = small_model()
    model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], mixed_precision="bf16"
    )
    history = model.fit(x, y, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    assert model.predict(x_test[:4]).dtype == np.float32
    if not torch.cuda.is_available():
        with pytest.raises(hubel.ConfigError, match="mixed_precision='fp16' needs a CUDA GPU"):
            model.compile(optimizer="adam", loss="mse", mixed_precision="fp16")
    with pytest.raises(hubel.ConfigError, match="expected mixed_precision None, 'auto', 'bf16' or 'fp16'"):
        model.compile(optimizer="adam", loss="mse", mixed_precision="half")
    assert model.trainer.precision == "bf16"
    model.compile(optimizer="adam", loss="mse", jit_compile=True)  # opt-in torch.compile (slower on 2 CPU cores)
    assert isinstance(model.trainer.forward, torch._dynamo.eval_frame.OptimizedModule)
    assert model.trainer.forward._orig_mod is model


def test_integer_sequences_train_an_embedding_model():
    rng = np.random.default_rng(0)
    sequences = rng.integers(1, 50, size=(600, 20))
    labels = (sequences == 7).any(axis=1).astype(np.float32)  # "does the review mention word 7?"
    hubel.set_seed(0)
    model = hubel.Sequential(
        [
            L.Embedding(50, 8, input_length=20),
            L.Conv1D(16, 3, activation="relu"),
            L.GlobalMaxPooling1D(),
            L.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer=hubel.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(sequences, labels, epochs=8, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.95
    assert model.predict(sequences[:3]).shape == (3, 1)


def test_resuming_with_another_model_or_a_damaged_checkpoint_is_clear(tmp_path):
    x, y, _, _ = digits()
    small_model().fit(x, y, epochs=1, verbose=0, checkpoint_dir=tmp_path)
    other = hubel.Sequential([L.Input((8, 8, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
    other.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(hubel.train.CheckpointError, match="the checkpoint does not fit this model"):
        other.fit(x, y, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True)
    (tmp_path / "last.ckpt").write_bytes(b"garbage")
    with pytest.raises(hubel.train.CheckpointError, match="damaged checkpoint"):
        small_model().fit(x, y, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(hubel.train.CheckpointError, match="no checkpoint there"):
        small_model().fit(x, y, verbose=0, resume_from=tmp_path / "missing.ckpt")


def test_a_damaged_last_checkpoint_resumes_from_the_previous_one(tmp_path):
    x, y, _, _ = digits()
    reference = small_model()
    reference.fit(x, y, epochs=3, verbose=0)
    small_model().fit(x, y, epochs=2, verbose=0, checkpoint_dir=tmp_path)
    previous = tmp_path / "previous.ckpt"
    assert torch.load(previous, weights_only=True)["epoch"] == 1  # the one before the last is kept
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["epoch"] == 2
    (tmp_path / "last.ckpt").write_bytes(b"cut short")
    resumed = small_model()
    with pytest.warns(UserWarning, match="damaged checkpoint.*resuming from previous.ckpt"):
        history = resumed.fit(x, y, epochs=3, verbose=0, checkpoint_dir=tmp_path, resume=True)
    assert history.epoch == [0, 1, 2]  # epoch 2 again from the previous checkpoint, then epoch 3
    for mine, theirs in zip(resumed.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(mine, theirs)  # the same model as a run never interrupted
    (tmp_path / "last.ckpt").unlink()  # a kill between a save's two renames: only the previous is there
    state = hubel.train.checkpoint.load_checkpoint(tmp_path / "last.ckpt", warn=False)
    assert state["epoch"] == 2
    for name in ("last.ckpt", "previous.ckpt"):
        (tmp_path / name).write_bytes(b"cut short")
    with pytest.raises(hubel.train.CheckpointError, match=r"and so is previous\.ckpt beside it\. Delete both"):
        small_model().fit(x, y, epochs=4, verbose=0, checkpoint_dir=tmp_path, resume=True)


def test_resume_with_the_same_architecture_built_again_in_one_process(tmp_path):
    x, y, _, _ = digits()
    first = small_model()
    first.fit(x, y, epochs=1, verbose=0, checkpoint_dir=tmp_path)
    again = small_model()  # a notebook cell run twice: the layers are now conv2d_1, dense_1, ...
    assert [layer.name for layer in again.layers] != [layer.name for layer in first.layers]
    history = again.fit(x, y, epochs=2, verbose=0, checkpoint_dir=tmp_path, resume=True)
    assert history.epoch == [0, 1]  # epoch 0 came from the checkpoint


def test_auto_precision_is_bf16_exactly_where_the_hardware_runs_it_fast(monkeypatch):
    from hubel.train import trainer as engine

    model = small_model()
    for fast, expected in ((True, "bf16"), (False, "float32")):
        monkeypatch.setattr(engine, "fast_bfloat16", lambda device, fast=fast: fast)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", mixed_precision="auto")
        assert model.trainer.precision == expected
    monkeypatch.undo()
    cpu = torch.device("cpu")
    bf16_instructions = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert engine.fast_bfloat16(cpu) == bf16_instructions and not engine.fast_bfloat16(torch.device("meta"))
    for amx, avx512_bf16 in ((True, False), (False, True), (False, False)):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda avx512_bf16=avx512_bf16: avx512_bf16)
        assert engine.fast_bfloat16(cpu) == (amx or avx512_bf16)


def test_under_bf16_the_loss_is_computed_and_summed_in_float32():
    x, y, _, _ = digits()
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", mixed_precision="bf16")
    with torch.no_grad(), model.trainer._autocast():
        logits = model(x)._hubel_logits
    assert logits.dtype == torch.bfloat16  # the network itself runs in bf16
    per_example = torch.nn.functional.cross_entropy(logits.double(), torch.as_tensor(y), reduction="none")
    loss = model.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(float(per_example.mean()), rel=1e-6)  # a bf16 sum of 1,442 losses is off by ~1e-3


FIT_AND_RESUME = """
import sys
import numpy as np
from hubel import layers as L
from hubel.models import Sequential

def model():
    network = Sequential([L.Input((8, 8, 1)), L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
                          L.Dense(3, activation="softmax")])
    network.compile(optimizer=sys.argv[1], loss="sparse_categorical_crossentropy")
    return network

x, y = np.random.default_rng(0).random((64, 8, 8, 1), dtype=np.float32), np.arange(64) % 3
model().fit(x, y, epochs=1, batch_size=16, verbose=0, checkpoint_dir=sys.argv[2])
model().fit(x, y, epochs=2, batch_size=16, verbose=0, checkpoint_dir=sys.argv[2], resume=True)
print(sorted(name for name in ("torch._dynamo", "sympy") if name in sys.modules))
"""


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_fit_and_resume_import_neither_torch_compile_nor_sympy(optimizer, tmp_path):
    # their imports made a process's first fit take 1.75-2.35 s, against 0.18-0.25 s without them
    # (benchmarks/first_fit.py); only jit_compile=True needs them
    result = subprocess.run([sys.executable, "-c", FIT_AND_RESUME, optimizer, str(tmp_path)], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"
