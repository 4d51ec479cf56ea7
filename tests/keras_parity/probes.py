"""Hand-written cases: the divergences reported against hubel, kept as regression probes, and
the tutorial loose ends (metrics=["acc"], binary cross-entropy on a linear Dense(1), ...)."""

from __future__ import annotations

from typing import Any


def probe(
    name: str,
    shape: list[int],
    layers: list[Any],
    *,
    dtype: str = "float32",
    vocabulary: int = 0,
    optimizer: tuple[str, dict[str, Any]] = ("SGD", {"learning_rate": 0.1}),
    loss: tuple[str, dict[str, Any]] = ("MeanSquaredError", {}),
    targets: str = "regression",
    num_classes: int = 2,
    metrics: list[str] | None = None,
    examples: int = 8,
    batch_size: int = 4,
    epochs: int = 1,
    validation_split: float = 0.0,
    class_weight: dict[str, float] | None = None,
    x_scale: float = 1.0,
    seed: int = 0,
) -> dict[str, Any]:
    entries = [
        {"class_name": entry, "config": {}} if isinstance(entry, str) else {"class_name": entry[0], "config": entry[1]}
        for entry in layers
    ]
    spec: dict[str, Any] = {"shape": shape, "dtype": dtype}
    if vocabulary:
        spec["vocabulary"] = vocabulary
    return {
        "probe": name,
        "seed": seed,
        "kind": "probe",
        "input": spec,
        "layers": entries,
        "optimizer": {"class_name": optimizer[0], "config": optimizer[1]},
        "loss": {"class_name": loss[0], "config": loss[1]},
        "metrics": metrics or [],
        "targets": targets,
        "num_classes": num_classes,
        "examples": examples,
        "x_scale": x_scale,
        "fit": {
            "batch_size": batch_size,
            "epochs": epochs,
            "validation_split": validation_split,
            "class_weight": class_weight,
        },
    }


PROBES = [
    probe(
        "BN moving variance is the biased batch variance",
        [1],
        [("BatchNormalization", {}), ("Dense", {"units": 1})],
        num_classes=1,
        epochs=2,
    ),
    probe(
        "BN trains on a batch of one example",
        [3],
        [("BatchNormalization", {}), ("Dense", {"units": 1})],
        num_classes=1,
        batch_size=1,
        examples=2,
    ),
    probe(
        "BN on a batch of one passes no gradient back",
        [7],
        [("Dense", {"units": 8}), ("BatchNormalization", {}), ("Dense", {"units": 2})],
        num_classes=2,
        batch_size=1,
        examples=4,
        optimizer=("SGD", {"learning_rate": 0.1, "momentum": 0.9}),
    ),
    probe(
        "ReLU with max_value and slope at exactly 0",
        [11],
        [
            ("Dense", {"units": 2, "kernel_initializer": "zeros"}),
            ("ReLU", {"max_value": 6.0, "negative_slope": 0.1}),
            ("Dense", {"units": 2}),
        ],
        optimizer=("SGD", {"learning_rate": 0.01}),
        examples=16,
    ),
    probe("a frozen Dense predicts and fits", [3], [("Dense", {"units": 1, "trainable": False})], num_classes=1),
    probe("GlobalMaxPooling2D alone", [4, 4, 2], ["GlobalMaxPooling2D"], num_classes=2),
    probe(
        "Embedding fans (lecun_uniform)",
        [5],
        [
            ("Embedding", {"input_dim": 54, "output_dim": 2, "embeddings_initializer": "lecun_uniform"}),
            "Flatten",
            ("Dense", {"units": 2}),
        ],
        dtype="int32",
        vocabulary=54,
    ),
    probe(
        "bias fans (he_uniform)", [3], [("Dense", {"units": 100, "bias_initializer": "he_uniform"})], num_classes=100
    ),
    probe(
        "Adam on gradients of 1e-5",
        [4],
        [("Dense", {"units": 2})],
        optimizer=("Adam", {"learning_rate": 0.01}),
        x_scale=1e-5,
        epochs=2,
    ),
    probe(
        "Adam amsgrad on small gradients",
        [4],
        [("Dense", {"units": 2})],
        optimizer=("Adam", {"learning_rate": 0.01, "amsgrad": True}),
        x_scale=1e-4,
        epochs=2,
    ),
    probe(
        "RMSprop on gradients of 1e-3",
        [4],
        [("Dense", {"units": 2})],
        optimizer=("RMSprop", {"learning_rate": 0.01}),
        x_scale=1e-3,
        epochs=2,
    ),
    probe(
        "RMSprop centered with momentum",
        [4],
        [("Dense", {"units": 2})],
        optimizer=("RMSprop", {"learning_rate": 0.01, "centered": True, "momentum": 0.9}),
        epochs=2,
    ),
    probe(
        "SGD weight decay is decoupled",
        [4],
        [("Dense", {"units": 2})],
        optimizer=("SGD", {"learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
        epochs=2,
    ),
    probe(
        "Adam weight decay",
        [4],
        [("Dense", {"units": 2})],
        optimizer=("Adam", {"learning_rate": 0.01, "weight_decay": 0.1}),
        epochs=2,
    ),
    probe(
        "RMSprop weight decay",
        [4],
        [("Dense", {"units": 2})],
        optimizer=("RMSprop", {"learning_rate": 0.01, "weight_decay": 0.1}),
        epochs=2,
    ),
    probe(
        "ReLU threshold at the threshold",
        [4],
        [("Rescaling", {"scale": 0.0, "offset": 0.5}), ("ReLU", {"threshold": 0.5}), ("Dense", {"units": 1})],
        num_classes=1,
    ),
    probe(
        "DepthwiseConv2D strides and dilation",
        [11, 11, 2],
        [("DepthwiseConv2D", {"kernel_size": 3, "strides": 2, "dilation_rate": 2}), "Flatten", ("Dense", {"units": 2})],
    ),
    probe(
        "log_softmax, BN, GAP keepdims",
        [4, 4, 3],
        [
            ("Activation", {"activation": "log_softmax"}),
            ("BatchNormalization", {}),
            ("GlobalAveragePooling2D", {"keepdims": True}),
            "Flatten",
            ("Dense", {"units": 2}),
        ],
    ),
    probe(
        "metrics=['acc'] gives History['acc']",
        [4],
        [("Dense", {"units": 3, "activation": "softmax"})],
        loss=("SparseCategoricalCrossentropy", {}),
        targets="sparse",
        num_classes=3,
        metrics=["acc"],
    ),
    probe(
        "binary cross-entropy on a linear Dense(1) (the IMDB tutorial)",
        [4],
        [("Dense", {"units": 1})],
        loss=("BinaryCrossentropy", {}),
        targets="binary",
        metrics=["accuracy"],
        epochs=2,
    ),
    probe(
        "validation_split takes the last fraction",
        [4],
        [("Dense", {"units": 3, "activation": "softmax"})],
        loss=("SparseCategoricalCrossentropy", {}),
        targets="sparse",
        num_classes=3,
        metrics=["accuracy"],
        validation_split=0.25,
        examples=16,
    ),
    probe(
        "class weights scale the loss",
        [4],
        [("Dense", {"units": 2, "activation": "softmax"})],
        loss=("SparseCategoricalCrossentropy", {}),
        targets="sparse",
        metrics=["accuracy"],
        class_weight={"0": 0.5, "1": 2.0},
    ),
    probe(
        "Embedding input_length",
        [6],
        [
            ("Embedding", {"input_dim": 20, "output_dim": 4, "input_length": 6}),
            "GlobalAveragePooling1D",
            ("Dense", {"units": 2}),
        ],
        dtype="int32",
        vocabulary=20,
    ),
]
