"""A fixed-seed slice of the differential tester against real Keras 3 (`make parity` runs
hundreds of cases): every probe and every random case must agree on every check."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from cases import generate
from differential import CHECKS, KerasWorker, compare_case, reproducer
from probes import PROBES

from hubel import layers as L

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

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


def imdb_reviews(count: int) -> list[str]:
    """The first `count` training reviews of the shared IMDB copy, as text."""
    texts = []
    with tarfile.open(SHARED_DATA / "imdb" / "aclImdb_v1_labeled.tar.xz") as archive:
        for member in archive:
            if "/train/" in member.name and member.name.endswith(".txt") and "/urls_" not in member.name:
                texts.append(archive.extractfile(member).read().decode("utf-8"))
                if len(texts) == count:
                    break
    return texts


EDGE_TEXTS = [
    "Ünïcode CAFÉ café\u00a0nbsp tab\there\nnew it's don't",
    "",
    "   ",
    "a-b a_b a.b 3.14 #tag @who <br />",
    "one",
]


@pytest.mark.parametrize(
    "config",
    [
        {"max_tokens": 2000, "output_sequence_length": 40},
        {"max_tokens": 3000, "output_sequence_length": 60, "ngrams": 2},
        {"output_sequence_length": 30, "ngrams": [1, 3]},
        {"max_tokens": 50, "output_sequence_length": 12, "standardize": "lower", "split": "character"},
        {"max_tokens": 500, "output_sequence_length": 20, "standardize": None},
    ],
    ids=str,
)
def test_text_vectorization_agrees_with_keras(config, keras_worker):
    texts = imdb_reviews(200) + EDGE_TEXTS
    theirs = keras_worker.text_vectorization(config, texts, texts[-8:])
    ours = L.TextVectorization(**config)
    ours.adapt(texts)
    assert ours.get_vocabulary() == theirs["vocabulary"]
    assert ours(texts[-8:]).tolist() == theirs["ids"]
