"""The Keras half of the differential tester: a worker that runs in .venv-keras (Keras 3 on
TensorFlow), never beside hubel's torch.

Protocol: one JSON request per line on stdin, {"case": {...}, "data": "in.npz", "out": "out.npz"}
(or {"text_vectorization": {config}, "data": "texts.json", "out": "out.json"}: adapt on the texts'
"adapt" list, vectorize its "apply" list, write the vocabulary and the ids);
one JSON reply per line on stdout, {"ok": true} or {"ok": false, "error": "..."}. For each case it
builds the model (cases.py's spec), records per layer the name, output shape, parameter counts,
initial weights and inference outputs, then compiles, fits a few steps without shuffling, and
records the history and the weights after training.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np


def build(case: dict) -> keras.Model:
    spec = case["input"]
    layers = [getattr(keras.layers, entry["class_name"])(**entry["config"]) for entry in case["layers"]]
    return keras.Sequential([keras.Input(shape=tuple(spec["shape"]), dtype=spec["dtype"]), *layers])


def run(case: dict, data_path: str, out_path: str) -> None:
    keras.backend.clear_session()
    keras.utils.set_random_seed(case["seed"])
    data = np.load(data_path)
    x, y = data["x"], data["y"]
    model = build(case)
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for index, layer in enumerate(model.layers):
        weights = layer.get_weights()
        for number, weight in enumerate(weights):
            arrays[f"init/{index}/{number}"] = weight
        layers.append(
            {
                "name": layer.name,
                "class_name": type(layer).__name__,
                "output_shape": list(layer.output.shape[1:]),
                "params": int(layer.count_params()),
                "trainable_params": int(sum(np.prod(w.shape) for w in layer.trainable_weights)),
                "weights": len(weights),
            }
        )
    probe = keras.Model(model.inputs, [layer.output for layer in model.layers])
    outputs = probe(x, training=False)
    for index, output in enumerate(outputs if len(model.layers) > 1 else [outputs]):
        arrays[f"output/{index}"] = np.asarray(output)
    model.compile(
        optimizer=getattr(keras.optimizers, case["optimizer"]["class_name"])(**case["optimizer"]["config"]),
        loss=getattr(keras.losses, case["loss"]["class_name"])(**case["loss"]["config"]),
        metrics=list(case["metrics"]),
    )
    fit = case["fit"]
    class_weight = None if fit["class_weight"] is None else {int(k): v for k, v in fit["class_weight"].items()}
    history = model.fit(
        x,
        y,
        batch_size=fit["batch_size"],
        epochs=fit["epochs"],
        validation_split=fit["validation_split"],
        class_weight=class_weight,
        shuffle=False,
        verbose=0,
    )
    for index, layer in enumerate(model.layers):
        for number, weight in enumerate(layer.get_weights()):
            arrays[f"trained/{index}/{number}"] = weight
    meta = {
        "layers": layers,
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
        "keras": keras.__version__,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(out_path, **arrays)


def vectorize_texts(config: dict, data_path: str, out_path: str) -> None:
    with open(data_path) as file:
        texts = json.load(file)
    if isinstance(config.get("ngrams"), list):
        config = {**config, "ngrams": tuple(config["ngrams"])}
    layer = keras.layers.TextVectorization(**config)
    layer.adapt(texts["adapt"])
    with open(out_path, "w") as file:
        json.dump({"vocabulary": layer.get_vocabulary(), "ids": np.asarray(layer(texts["apply"])).tolist()}, file)


def main() -> None:
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever TensorFlow prints goes to stderr
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if "text_vectorization" in request:
                vectorize_texts(request["text_vectorization"], request["data"], request["out"])
            else:
                run(request["case"], request["data"], request["out"])
            reply = {"ok": True}
        except Exception as error:  # a case Keras refuses is an answer, not a crash of the worker
            reply = {
                "ok": False,
                "error": f"{type(error).__name__}: {error}".splitlines()[0][:500],
                "traceback": traceback.format_exc()[-2000:],
            }
        protocol.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
