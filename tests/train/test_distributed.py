"""Training on several processes: the shards, the same model as one process, hubel train --nproc,
two nodes through torchrun, a killed process, and the bad inputs."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from PIL import Image

import hubel
from hubel.data.folders import image_folder
from hubel.data.shards import ShardBatch, shard
from hubel.errors import ConfigError, DistributedError
from hubel.runs import train
from hubel.train.distributed import World, init
from hubel.train.trainer import Trainer, _interrupts_between_steps

HUBEL = [sys.executable, "-m", "hubel"]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_shards_of_a_batch_are_the_batch():
    for count in (1, 2, 3, 7, 10, 64):
        for size in (1, 2, 3, 4):
            parts = [shard(count, rank, size) for rank in range(size)]
            counted = [index for part, share in parts if share > 0 for index in range(count)[part]]
            assert counted == list(range(count))  # each example once, in order
            assert sum(share for _, share in parts) == pytest.approx(1.0)
            lengths = [part.stop - part.start for part, share in parts if share > 0]
            assert max(lengths) - min(lengths) <= 1
            # a process left without an example still gets one to step on, counting for nothing
            assert all(part.stop - part.start == 1 for part, share in parts if share == 0)


def test_image_folder_shards_are_one_epoch_between_them(tmp_path):
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for index in range(7):
            Image.new("RGB", (8, 8), (index * 30, 100 if label == "a" else 200, 0)).save(
                tmp_path / label / f"{index}.png"
            )
    data = image_folder(tmp_path, (8, 8), batch_size=2, seed=3, verbose=False)
    data.set_epoch(1)
    whole = [(x, y) for x, y in data]
    shards = [data.shard(rank, 3) for rank in range(3)]
    for view in shards:
        view.set_epoch(1)
    parts = [list(view) for view in shards]
    assert len(shards[0]) == len(parts[0]) == 3  # global batches of 2 x 3: 14 images in 3 steps
    for step in range(3):
        batches = [parts[rank][step] for rank in range(3)]
        assert all(isinstance(batch, ShardBatch) for batch in batches)
        counted = [batch for batch in batches if batch.share > 0]
        x = np.concatenate([batch.x for batch in counted])
        expected = np.concatenate([whole_x for whole_x, _ in whole])[step * 6 : step * 6 + 6]
        assert np.array_equal(x, expected)  # the union of the parts is the global batch, in order
        assert sum(batch.share for batch in batches) == pytest.approx(1.0)


SAME_MODEL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import hubel
    from hubel import datasets, layers as L
    from hubel.train.distributed import launch

    def build(batchnorm):
        hubel.set_seed(0)
        middle = [L.BatchNormalization()] if batchnorm else []
        model = hubel.Sequential([L.Input((8, 8, 1)), L.Rescaling(1 / 16), L.Conv2D(8, 3, activation="relu"),
                                  *middle, L.Conv2D(8, 3, activation="relu"), L.Flatten(),
                                  L.Dense(10, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def work(batch_size, distributed, batchnorm, sync):
        (x, y), _ = datasets.load("digits")
        model = build(batchnorm)
        history = model.fit(x[:303, ..., None], y[:303], batch_size=batch_size, epochs=2, verbose=0,
                            validation_split=0.2, distributed=distributed, sync_batchnorm=sync)
        weights = {name: value.detach().numpy() for name, value in model.state_dict().items()}
        return weights, history.history, history.params, history.steps

    if __name__ == "__main__":
        batchnorm, out = sys.argv[1] == "batchnorm", sys.argv[2]
        one = work(16, False, batchnorm, False)
        runs = {"one": one, "two": launch(work, 2, 8, True, batchnorm, batchnorm)}
        if batchnorm:
            runs["two_local"] = launch(work, 2, 8, True, batchnorm, False)
        for name, (weights, history, params, steps) in runs.items():
            np.savez(f"{out}-{name}.npz", **weights)
            json.dump({"history": history, "params": params, "steps": steps}, open(f"{out}-{name}.json", "w"))
    """
)


def run_same_model_script(tmp_path, kind):
    script = tmp_path / "same.py"
    script.write_text(SAME_MODEL_SCRIPT)
    out = tmp_path / kind
    done = subprocess.run([sys.executable, str(script), kind, str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    names = ("one", "two", "two_local") if kind == "batchnorm" else ("one", "two")
    return {name: (dict(np.load(f"{out}-{name}.npz")), json.load(open(f"{out}-{name}.json"))) for name in names}, done


def test_two_processes_with_half_batches_train_the_same_model_as_one(tmp_path):
    runs, done = run_same_model_script(tmp_path, "plain")
    (one, one_log), (two, two_log) = runs["one"], runs["two"]
    # 242 training examples in batches of 16 (2 x 8): the last batch holds 2, one per process
    assert two_log["params"]["steps"] == one_log["params"]["steps"] == 16
    assert two_log["params"]["world_size"] == 2
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-5, atol=1e-6, err_msg=name)
    for key, values in one_log["history"].items():  # loss, accuracy and validation over all processes
        np.testing.assert_allclose(two_log["history"][key], values, rtol=1e-5, err_msg=key)
    for key in ("loss", "accuracy"):  # each step's value of the whole batch
        np.testing.assert_allclose(two_log["steps"][key], one_log["steps"][key], rtol=1e-5, atol=1e-6)
    assert done.stdout == ""  # verbose=0: nothing, and no process printed a warning either


def test_sync_batchnorm_normalises_over_the_global_batch(tmp_path):
    runs, _ = run_same_model_script(tmp_path, "batchnorm")
    (one, _), (synced, _), (local, _) = runs["one"], runs["two"], runs["two_local"]
    for name in one:
        np.testing.assert_allclose(synced[name], one[name], rtol=1e-4, atol=1e-5, err_msg=name)
    # per-process statistics (the default) are another training
    assert max(np.abs(local[name] - one[name]).max() for name in one) > 1e-3


def test_an_image_folder_on_a_budget_over_two_processes(tmp_path):
    for split, count in (("train", 24), ("validation", 8)):
        for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
            folder = tmp_path / "photos" / split / label
            folder.mkdir(parents=True)
            for index in range(count):
                Image.new("RGB", (20, 16), tuple(min(255, c + index) for c in colour)).save(folder / f"{index}.jpg")
    env = {**os.environ, "HUBEL_CACHE_DIR": str(tmp_path / "cache")}
    command = [*HUBEL, "train", str(tmp_path / "photos"), "--model", "mnist_one_conv", "--image-size", "16,16",
               "--batch-size", "8", "--budget", "20s", "--nproc", "2", "--out", str(tmp_path / "run")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("Decoded 64 images into the cache") == 1  # process 0 alone reports
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    plan = result["budget"]
    assert result["world_size"] == 2 and result["test_accuracy"] > 0.9  # red against blue
    assert plan["steps_per_epoch"] == 6  # 48 images in global batches of 8 (4 per process)
    # stopped where process 0's plan said, in both processes (or by the deadline guard, on a slow machine)
    assert plan["stopped_by"] == "seconds" or plan["steps_taken"] == plan["total_steps"] > 6
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(result["epochs_trained"]))  # one line per epoch, from process 0 alone


def test_two_nodes_meet_on_localhost_through_torchrun(tmp_path):
    port, run = free_port(), tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "two-nodes",
        "-m", "hubel", "train", "digits", "--epochs", "1", "--out", str(run),
    ]  # fmt: skip
    nodes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    assert sum(out.count("Test accuracy") for out, _ in outputs) == 1  # one of them wrote the run
    result = json.loads((run / "result.json").read_text())
    assert result["world_size"] == 2 and result["test_accuracy"] > 0.5


def test_hubel_train_nproc_killed_and_resumed_trains_the_run_of_one_process(tmp_path):
    run = tmp_path / "run"
    # float32: in bf16 (--precision auto on CPUs with AMX or AVX512-BF16) the two processes' gradients,
    # rounded apart and then averaged, ended 0.3 points away from one process's
    command = [*HUBEL, "train", "digits", "--epochs", "6", "--batch-size", "8", "--nproc", "2",
               "--precision", "float32", "--out", str(run)]  # fmt: skip
    launcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint, deadline, killed = run / "checkpoints" / "last.ckpt", time.time() + 200, None
    while time.time() < deadline and launcher.poll() is None and killed is None:
        if checkpoint.exists() and torch.load(checkpoint, weights_only=True)["epoch"] >= 2:
            workers = subprocess.run(["pgrep", "-P", str(launcher.pid), "-f", "spawn_main"], capture_output=True)
            pids = [int(pid) for pid in workers.stdout.split()]
            killed = pids[-1] if pids else None
            if killed:
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    output, errors = launcher.communicate(timeout=120)
    assert killed is not None, "the run ended before a process could be killed"
    assert launcher.returncode == 2
    assert "was killed by SIGKILL; the others were stopped" in errors and "--resume" in errors
    assert output.count("Epoch 1/6") == 1  # process 0 alone prints
    assert not (run / "model.hubel").exists()
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(6))  # each epoch once, none lost, none twice
    # the batch is the run's, split over the processes: one process trains the same model
    one = train("digits", epochs=6, batch_size=8, precision="float32", out=tmp_path / "one")
    result = json.loads((run / "result.json").read_text())
    assert result["world_size"] == 2 and result["test_accuracy"] == pytest.approx(one.test_accuracy, abs=2e-3)
    first = hubel.load_model(tmp_path / "one" / "model.hubel").state_dict()
    second = hubel.load_model(run / "model.hubel").state_dict()
    for name in first:
        torch.testing.assert_close(second[name], first[name], rtol=1e-4, atol=1e-5)


def test_ctrl_c_stops_every_process_at_one_step_and_saves(tmp_path):
    run = tmp_path / "run"
    command = [*HUBEL, "train", "digits", "--epochs", "30", "--batch-size", "8", "--nproc", "2", "--out", str(run)]
    # a session of its own: the signal goes to the whole group, as a terminal's Ctrl-C does
    launcher = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    checkpoint, deadline = run / "checkpoints" / "last.ckpt", time.time() + 200
    while time.time() < deadline and launcher.poll() is None:
        if checkpoint.exists() and torch.load(checkpoint, weights_only=True)["epoch"] >= 1:
            os.killpg(launcher.pid, signal.SIGINT)
            break
        time.sleep(0.05)
    output, errors = launcher.communicate(timeout=120)
    assert launcher.returncode == 0, errors[-3000:]
    assert errors.count("Interrupted: saved") == 1 and "Traceback" not in errors  # process 0 speaks for both
    state = torch.load(checkpoint, weights_only=True)
    assert state["world_size"] == 2 and len(state["ranks"]) == 2  # both processes' states, at one step
    assert json.loads((run / "result.json").read_text())["epochs_trained"] < 30
    assert "Test accuracy" in output


def test_a_ctrl_c_that_lands_while_the_processes_agree_is_not_lost():
    class SignalDuringTheCollective(World):
        calls = 0

        def any(self, *flags):
            SignalDuringTheCollective.calls += 1
            if SignalDuringTheCollective.calls == 1:
                signal.raise_signal(signal.SIGINT)  # its handler runs now, after the flags were read
            return [bool(flag) for flag in flags]  # the answer of a collective no Ctrl-C had reached

    trainer = Trainer(torch.nn.Linear(2, 2), device="cpu")
    trainer._world = SignalDuringTheCollective(size=2)
    with _interrupts_between_steps(trainer):
        trainer._agree_to_stop()
        assert not trainer._interrupted  # the step under way when it landed goes on, in every process
        trainer._agree_to_stop()
        assert trainer._interrupted  # and at the next step they all stop


def test_bad_distributed_input_gets_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match="positive number of processes"):
        train("digits", nproc=0, out=tmp_path / "zero")
    with pytest.raises(ConfigError, match="--sync-bn shares batch statistics between processes"):
        train("digits", sync_batchnorm=True, out=tmp_path / "sync")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} on this machine is in use"):
            train("digits", nproc=2, port=port, out=tmp_path / "port")
    # raised inside the processes, raised again by the launcher
    with pytest.raises(ConfigError, match="a batch of 33 does not split evenly over 2 processes"):
        train("digits", nproc=2, batch_size=33, out=tmp_path / "odd")
    assert World().main and init() == World()  # no process group in the environment: one process


def test_a_process_that_waits_for_others_in_vain_says_so(tmp_path):
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "HUBEL_JOIN_TIMEOUT": "2"}  # fmt: skip
    done = subprocess.run(
        [*HUBEL, "train", "digits", "--out", str(tmp_path / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "process 0 of 2 could not join the others at 127.0.0.1" in done.stderr and "within 2 s" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_more_processes_than_examples_is_refused(tmp_path):
    script = textwrap.dedent(
        """
        import numpy as np, hubel
        from hubel import layers as L
        from hubel.train.distributed import launch

        def work():
            model = hubel.Sequential([L.Input((2,)), L.Dense(1)])
            model.compile(optimizer="sgd", loss="mse")
            model.fit(np.ones((1, 2)), np.ones((1, 1)), verbose=0, distributed=True)

        if __name__ == "__main__":
            launch(work, 2)
        """
    )
    (tmp_path / "one.py").write_text(script)  # spawned processes import the script's functions from its file
    done = subprocess.run([sys.executable, str(tmp_path / "one.py")], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "DataError: 2 processes but 1 training examples" in done.stderr


def test_launch_reports_a_dead_process(tmp_path):
    with pytest.raises(DistributedError, match=r"process \d of 2 exited with code 3"):
        hubel.train.distributed.launch(os._exit, 2, 3)
