"""A fixed-seed slice of the differential tester against real Keras 3 (`make parity` runs
hundreds of cases): every probe and every random case must agree on every check."""

from __future__ import annotations

import pytest
from cases import generate
from differential import CHECKS, KerasWorker, compare_case, reproducer
from probes import PROBES

# Seeds whose cases the slice runs; each takes about a second in both libraries.
SLICE = range(0, 24)


@pytest.fixture(scope="module")
def keras_worker():
    with KerasWorker() as worker:  # fails (does not skip) without .venv-keras: `make test` creates it
        yield worker


@pytest.mark.parametrize("case", PROBES, ids=[case["probe"] for case in PROBES])
def test_probe_agrees_with_keras(case, keras_worker):
    outcome = compare_case(case, keras_worker)
    assert outcome.keras_error is None
    assert outcome.failures == {}, reproducer(case)
    assert outcome.status["outputs"] == "pass"


@pytest.mark.parametrize("seed", SLICE)
def test_random_case_agrees_with_keras(seed, keras_worker):
    case = generate(seed)
    outcome = compare_case(case, keras_worker)
    assert outcome.keras_error is None, outcome.keras_error
    assert outcome.failures == {}, f"{outcome.failures}\n{reproducer(case)}"
    assert set(outcome.status) == set(CHECKS)


def test_a_divergence_is_caught_and_shrunk(keras_worker, monkeypatch):
    """The tester itself: a deliberately wrong ReLU is reported on outputs and shrunk to it."""
    import torch
    from differential import shrink_failure

    from hubel.layers import ReLU

    monkeypatch.setattr(ReLU, "forward", lambda self, x: torch.relu(x) * 1.01)
    case = {
        **generate(3),
        "layers": [
            {"class_name": "Dense", "config": {"units": 4}},
            {"class_name": "ReLU", "config": {}},
            {"class_name": "Dense", "config": {"units": 2}},
        ],
        "kind": "mlp",
        "input": {"shape": [5], "dtype": "float32"},
        "loss": {"class_name": "MeanSquaredError", "config": {}},
        "targets": "regression",
        "num_classes": 2,
        "metrics": [],
    }
    outcome = compare_case(case, keras_worker)
    assert outcome.first_failure == "outputs" and "re_lu" in outcome.failures["outputs"]
    smallest = shrink_failure(outcome, keras_worker)
    assert [layer["class_name"] for layer in smallest.case["layers"]] == ["ReLU", "Dense"]
