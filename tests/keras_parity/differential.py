"""The hubel half of the differential tester: runs a case (cases.py) in hubel, asks the Keras
worker for the same case, and compares the two, check by check.

    with KerasWorker() as keras_worker:
        outcome = compare_case(generate(7), keras_worker)
        outcome.failures      # {"updates": "dense_1 kernel: update differs by 97% of its size", ...}

Checks, in order: build (hubel builds what Keras builds), names, shapes, params (per layer,
trainable and all, and the weight list), init (each weight's initial distribution: constants
equal, random ones the same distribution by a two-sample Kolmogorov-Smirnov test), outputs
(every layer's inference output with Keras's initial weights copied into hubel), history
(the keys and values of fit's History), updates (every weight after a few training steps,
BN moving statistics included, relative to the size of Keras's update). Training checks are
"n/a" for cases whose training draws random numbers (dropout).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cases import has_randomness, known_differences, shrink

import hubel
from hubel import layers as L
from hubel.layers.base import layer_from_entry
from hubel.train import losses

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KERAS_PYTHON = Path(os.environ.get("HUBEL_KERAS_VENV", ROOT / ".venv-keras")) / "bin" / "python"
CHECKS = ("build", "names", "shapes", "params", "init", "outputs", "history", "updates")

OUTPUT_RTOL, OUTPUT_ATOL = 1e-4, 1e-5  # float32 kernels differ in summation order
UPDATE_RTOL = 2e-3  # of the largest change Keras made to the weight
# Adam and RMSprop divide by the gradient's own size, so float noise in a gradient that is zero in
# exact arithmetic (a shift that a later BatchNormalization removes) becomes a step: allow 10% of lr.
ADAPTIVE_ATOL = 0.1
HISTORY_RTOL = 1e-3
KS_ALPHA = 1e-3  # false alarm rate of one distribution comparison


class KerasUnavailable(RuntimeError):
    pass


class KerasWorker:
    """A long-lived .venv-keras process answering cases (TensorFlow imports once)."""

    def __init__(self, python: Path = KERAS_PYTHON) -> None:
        if not python.exists():
            raise KerasUnavailable(f"no Keras venv at {python.parent.parent}: run `make keras-venv` (or make parity).")
        self.folder = tempfile.TemporaryDirectory(prefix="hubel-parity-")
        self.process = subprocess.Popen(
            [str(python), str(HERE / "keras_side.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONPATH": str(HERE), "CUDA_VISIBLE_DEVICES": ""},
        )
        self.calls = 0

    def run(self, case: dict[str, Any], x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        """Keras's record of a case, or {"error": ...} when Keras refuses it."""
        self.calls += 1
        data, out = Path(self.folder.name) / "in.npz", Path(self.folder.name) / "out.npz"
        np.savez(data, x=x, y=y)
        reply = self._request({"case": case, "data": str(data), "out": str(out)})
        if not reply["ok"]:
            return {"error": reply["error"]}
        with np.load(out) as arrays:
            record = {key: arrays[key] for key in arrays.files}
        meta = json.loads(str(record.pop("meta")))
        return {**meta, "arrays": record}

    def text_vectorization(self, config: dict[str, Any], adapt: list[str], apply: list[str]) -> dict[str, Any]:
        """Keras's TextVectorization(**config) adapted on `adapt`: its vocabulary and the ids of `apply`."""
        data, out = Path(self.folder.name) / "texts.json", Path(self.folder.name) / "vectorized.json"
        data.write_text(json.dumps({"adapt": adapt, "apply": apply}))
        reply = self._request({"text_vectorization": config, "data": str(data), "out": str(out)})
        if not reply["ok"]:
            return {"error": reply["error"]}
        return json.loads(out.read_text())

    def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(
                f"the Keras worker exited; run it by hand to see why: {KERAS_PYTHON} {HERE / 'keras_side.py'}"
            )
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=30)
        self.folder.cleanup()

    def __enter__(self) -> KerasWorker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def make_data(case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The case's inputs and targets, from its seed."""
    rng = np.random.default_rng(case["seed"])
    n, spec = case["examples"], case["input"]
    if spec["dtype"].startswith("int"):
        x = rng.integers(0, spec["vocabulary"], (n, *spec["shape"])).astype(np.int32)
    else:
        x = (rng.standard_normal((n, *spec["shape"])) * case.get("x_scale", 1.0)).astype(np.float32)
    classes = case["num_classes"]
    labels = rng.integers(0, classes, n)
    y = {
        "sparse": lambda: labels.astype(np.int32),
        "onehot": lambda: np.eye(classes, dtype=np.float32)[labels],
        "binary": lambda: labels.reshape(-1, 1).astype(np.float32),
        "regression": lambda: rng.standard_normal((n, classes)).astype(np.float32),
    }[case["targets"]]()
    return x, y


@dataclass
class Outcome:
    case: dict[str, Any]
    status: dict[str, str] = field(default_factory=dict)  # check -> "pass" | "fail" | "known" | "n/a"
    failures: dict[str, str] = field(default_factory=dict)  # check -> what differed
    keras_error: str | None = None

    def record(self, check: str, problem: str | None) -> None:
        if problem is not None and any(check in checks for checks in known_differences(self.case).values()):
            self.status[check] = "known"  # a difference the README states (cases.KNOWN_DIFFERENCES)
            return
        self.status[check] = "pass" if problem is None else "fail"
        if problem is not None:
            self.failures[check] = problem

    @property
    def first_failure(self) -> str | None:
        return next(iter(self.failures), None)


def build_hubel(case: dict[str, Any]) -> hubel.Sequential:
    spec = case["input"]
    layers = [layer_from_entry(entry, f"layer {index}") for index, entry in enumerate(case["layers"])]
    return hubel.Sequential([L.Input(tuple(spec["shape"]), dtype=spec["dtype"]), *layers])


def compile_hubel(model: hubel.Sequential, case: dict[str, Any]) -> None:
    optimizer = getattr(hubel.train, case["optimizer"]["class_name"])(**case["optimizer"]["config"])
    loss = getattr(losses, case["loss"]["class_name"])(**case["loss"]["config"])
    model.compile(optimizer=optimizer, loss=loss, metrics=list(case["metrics"]), device="cpu")


def layer_outputs(model: hubel.Sequential, x: np.ndarray) -> list[np.ndarray]:
    """Every layer's inference output, in Keras's layout."""
    model.eval()
    outputs = []
    with torch.no_grad():
        value = model._boundary_in(x)[0]
        for layer in model.layers:
            value = layer(value)
            outputs.append(L.base.internal_to_keras(value).numpy().copy())
    return outputs


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.sort(a.ravel()), np.sort(b.ravel())
    values = np.concatenate([a, b])
    return float(
        np.max(np.abs(np.searchsorted(a, values, "right") / a.size - np.searchsorted(b, values, "right") / b.size))
    )


def ks_critical(n: int, m: int, alpha: float = KS_ALPHA) -> float:
    return float(np.sqrt(-np.log(alpha / 2) / 2) * np.sqrt((n + m) / (n * m)))


def _init_problem(name: str, number: int, ours: np.ndarray, theirs: np.ndarray) -> str | None:
    if theirs.size > 1 and np.all(theirs == theirs.flat[0]):
        if not np.all(ours == theirs.flat[0]):
            return f"{name} weight {number}: Keras starts at the constant {theirs.flat[0]:g}, hubel does not"
        return None
    if theirs.size < 50:
        return None  # too few values to tell distributions apart
    statistic, critical = ks_statistic(ours, theirs), ks_critical(ours.size, theirs.size)
    if statistic > critical:
        return (
            f"{name} weight {number} {theirs.shape}: initial values differ in distribution "
            f"(KS {statistic:.3f} > {critical:.3f}; std {ours.std():.4g} vs Keras {theirs.std():.4g}, "
            f"max |w| {np.abs(ours).max():.4g} vs {np.abs(theirs).max():.4g})"
        )
    return None


def _max_relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    scale = max(1.0, float(np.abs(theirs).max(initial=0.0)))
    return float(np.abs(ours.astype(np.float64) - theirs).max(initial=0.0)) / scale


def compare_case(case: dict[str, Any], worker: KerasWorker) -> Outcome:
    """Run the case in both libraries and record every check."""
    outcome = Outcome(case)
    x, y = make_data(case)
    keras = worker.run(case, x, y)
    if "error" in keras:
        outcome.keras_error = keras["error"]
        return outcome
    arrays = keras["arrays"]
    L.clear_session()
    hubel.train.set_seed(case["seed"])
    try:
        model = build_hubel(case)
    except Exception as error:
        outcome.record("build", f"hubel refuses what Keras builds: {type(error).__name__}: {error}")
        return outcome
    outcome.record("build", None)
    layers, records = model.layers, keras["layers"]
    names = [layer.name for layer in layers]
    outcome.record(
        "names",
        None if names == [r["name"] for r in records] else f"hubel {names} vs Keras {[r['name'] for r in records]}",
    )
    shapes = [list(layer.output_shape[1:]) for layer in layers]
    wrong = [(n, s, r["output_shape"]) for n, s, r in zip(names, shapes, records) if s != r["output_shape"]]
    outcome.record("shapes", None if not wrong else f"{wrong[0][0]}: hubel {wrong[0][1]} vs Keras {wrong[0][2]}")
    problem = None
    for layer, record in zip(layers, records):
        ours = (layer.count_params(), layer.count_trainable_params(), len(layer.get_weights()))
        theirs = (record["params"], record["trainable_params"], record["weights"])
        if ours != theirs:
            problem = f"{layer.name}: (params, trainable, weights) hubel {ours} vs Keras {theirs}"
            break
    outcome.record("params", problem)
    if problem or wrong:
        return outcome

    init = [
        _init_problem(layer.name, number, weight, arrays[f"init/{index}/{number}"])
        for index, layer in enumerate(layers)
        for number, weight in enumerate(layer.get_weights())
    ]
    outcome.record("init", next((p for p in init if p), None))

    for index, layer in enumerate(layers):
        layer.set_weights([arrays[f"init/{index}/{n}"] for n in range(records[index]["weights"])])
    problem = None
    for index, (layer, output) in enumerate(zip(layers, layer_outputs(model, x))):
        theirs = arrays[f"output/{index}"]
        scale = max(1.0, float(np.nanmax(np.abs(theirs), initial=0.0)))
        if not np.allclose(output, theirs, rtol=OUTPUT_RTOL, atol=OUTPUT_ATOL * scale, equal_nan=True):
            largest, differs = np.nanmax(np.abs(theirs), initial=0.0), np.nanmax(np.abs(output - theirs))
            problem = f"{layer.name}: max |diff| {differs:.3g} (Keras's max |y| {largest:.3g})"  # NaN = NaN agrees
            break
    outcome.record("outputs", problem)

    if has_randomness(case):
        outcome.status.update(history="n/a", updates="n/a")
        return outcome
    fit = case["fit"]
    class_weight = None if fit["class_weight"] is None else {int(k): v for k, v in fit["class_weight"].items()}
    try:
        compile_hubel(model, case)
        history = model.fit(
            x,
            y,
            batch_size=fit["batch_size"],
            epochs=fit["epochs"],
            shuffle=False,
            verbose=0,
            validation_split=fit["validation_split"],
            class_weight=class_weight,
        ).history
    except Exception as error:
        outcome.record("history", f"hubel's fit failed: {type(error).__name__}: {error}")
        outcome.status["updates"] = "n/a"
        return outcome
    outcome.record("history", _history_problem(history, keras["history"]))
    problem = None
    adaptive = case["optimizer"]["class_name"] in ("Adam", "AdamW", "RMSprop")
    atol = ADAPTIVE_ATOL * case["optimizer"]["config"].get("learning_rate", 0.001) if adaptive else 1e-6
    for index, layer in enumerate(layers):
        for number, weight in enumerate(layer.get_weights()):
            start, trained = arrays[f"init/{index}/{number}"], arrays[f"trained/{index}/{number}"]
            theirs, ours = trained - start, weight - start
            size = float(np.abs(theirs).max(initial=0.0))
            error = float(np.abs(ours - theirs).max(initial=0.0))
            if error > UPDATE_RTOL * size + atol:
                problem = (
                    f"{layer.name} weight {number} {start.shape}: hubel's change differs from Keras's by "
                    f"{error:.3g} (Keras changed it by up to {size:.3g}, {100 * error / max(size, 1e-12):.0f}%)"
                )
                break
        if problem:
            break
    outcome.record("updates", problem)
    return outcome


def _history_problem(ours: dict[str, list[float]], theirs: dict[str, list[float]]) -> str | None:
    ours = {key: values for key, values in ours.items() if key != "learning_rate"}  # hubel's addition (README)
    if set(ours) != set(theirs):
        return f"History keys: hubel {sorted(ours)} vs Keras {sorted(theirs)}"
    for key, values in theirs.items():
        if not np.allclose(ours[key], values, rtol=HISTORY_RTOL, atol=1e-6):
            return f"History[{key!r}]: hubel {np.round(ours[key], 6).tolist()} vs Keras {np.round(values, 6).tolist()}"
    return None


def shrink_failure(outcome: Outcome, worker: KerasWorker, budget: int = 150) -> Outcome:
    """The smallest variant of a failing case that still fails the same check (greedy)."""
    check, smallest = outcome.first_failure, outcome
    tried = 0
    progress = True
    while progress and tried < budget:
        progress = False
        for candidate in shrink(smallest.case):
            tried += 1
            result = compare_case(candidate, worker)
            if result.keras_error is None and result.first_failure == check:
                smallest, progress = result, True
                break
            if tried >= budget:
                break
    return smallest


def reproducer(case: dict[str, Any]) -> str:
    """The case as hubel code a person can paste."""

    def call(entry: dict[str, Any], module: str) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in entry["config"].items())
        return f"{module}.{entry['class_name']}({arguments})"

    spec, fit = case["input"], case["fit"]
    data = f"examples={case['examples']}, targets={case['targets']!r}"
    if case.get("x_scale", 1.0) != 1.0:
        data += f", x_scale={case['x_scale']}"
    lines = [
        f"# case seed={case['seed']} ({case['kind']}; {data}; make_data(case) in tests/keras_parity)",
        "model = hubel.Sequential([",
        f"    L.Input({tuple(spec['shape'])!r}, dtype={spec['dtype']!r}),",
        *[f"    {call(entry, 'L')}," for entry in case["layers"]],
        "])",
        f"model.compile(optimizer={call(case['optimizer'], 'hubel.train')}, "
        f"loss={call(case['loss'], 'hubel.train.losses')}, metrics={case['metrics']!r})",
        f"model.fit(x, y, batch_size={fit['batch_size']}, epochs={fit['epochs']}, shuffle=False, "
        f"validation_split={fit['validation_split']}, class_weight={fit['class_weight']!r})",
    ]
    return "\n".join(lines)
