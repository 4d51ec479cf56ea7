"""The cats-vs-dogs transfer-learning tutorial in Keras 3 (TensorFlow), against `hubel train FOLDER`.

    .venv/bin/python benchmarks/keras_transfer.py                 # about 10 minutes on 2 cores
    .venv/bin/python benchmarks/keras_transfer.py --epochs 2      # a quick look

The Keras side is TensorFlow's transfer-learning tutorial as written (image_dataset_from_directory
at 160x160 in batches of 32, RandomFlip("horizontal") and RandomRotation(0.2), MobileNetV2
without its top and frozen, called with training=False, GlobalAveragePooling2D, Dropout(0.2),
Dense(1) on logits, Adam at 1e-4, binary cross-entropy from logits, 10 epochs), with one change
that the weights demand: Keras downloads its ImageNet weights, which cannot be reached here, so
its MobileNetV2 gets torchvision's ImageNet weights (the file hubel's mobilenet_v2 loads), with
torchvision's BatchNormalization epsilon (1e-5) and input normalisation (ImageNet mean and
standard deviation, where the tutorial scales to [-1, 1]). Keras pads its stride-2
convolutions at the bottom and right where torchvision pads every side, so its features differ
a little from the weights' own; the script prints how much (cosine similarity of the pooled
features of the first 16 validation photos, Keras's network against hubel's).

The hubel side is `hubel train FOLDER` without --model (transfer learning from mobilenet_v2 at
224x224), and with --image-size 160,160, the tutorial's size; each from a cold cache. Each side
runs in a fresh process; the Keras side runs this file in .venv-keras (`make keras-venv`) with
--side keras. Prints one table: wall time of the whole command or script, and validation accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "cats_and_dogs"
KERAS_PYTHON = Path(__file__).resolve().parents[1] / ".venv-keras" / "bin" / "python"
MEAN, STD = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255
SIDE = 160  # the tutorial's IMG_SIZE
PROBE = 16  # validation photos whose features the two networks are compared on


def keras_weights(path: Path) -> None:
    """torchvision's MobileNetV2 weights as {Keras layer/weight name: array in Keras's layout}."""
    from hubel.applications import mobilenet_v2
    from hubel.models.applications.backbones import package_file, read_torch_weights

    state = read_torch_weights(
        package_file(mobilenet_v2.WEIGHTS_PACKAGE, mobilenet_v2._WEIGHTS_FILE, mobilenet_v2.PIP_LINE, "weights")
    )
    arrays = {}
    for ours, theirs in mobilenet_v2.weights_table(include_top=False).items():
        layer, weight = ours.rsplit(".", 1)
        array = state[theirs].numpy()
        if weight == "kernel":  # torch (out, in, h, w); a depthwise kernel (channels, 1, h, w)
            array = array.transpose(2, 3, 0, 1) if layer.endswith("depthwise") else array.transpose(2, 3, 1, 0)
        arrays[f"{layer}/{weight}"] = array
    np.savez(path, **arrays)


def keras_side(root: Path, weights: Path, probe_photos: Path, epochs: int, seed: int) -> dict:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    started = time.perf_counter()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    size = (SIDE, SIDE)
    train = keras.utils.image_dataset_from_directory(root / "train", shuffle=True, batch_size=32, image_size=size)
    validation = keras.utils.image_dataset_from_directory(
        root / "validation", shuffle=True, batch_size=32, image_size=size
    )
    train, validation = train.prefetch(tf.data.AUTOTUNE), validation.prefetch(tf.data.AUTOTUNE)
    layers = keras.layers
    augmentation = keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.2)])
    base = keras.applications.MobileNetV2(input_shape=(*size, 3), include_top=False, weights=None)
    arrays = dict(np.load(weights))
    for layer in base.layers:
        names = [weight.path.split("/")[-1] for weight in layer.weights]
        if not names:
            continue
        layer.set_weights([arrays.pop(f"{layer.name}/{name}") for name in names])
        if isinstance(layer, layers.BatchNormalization):
            layer.epsilon = 1e-5
    if arrays:
        raise SystemExit(f"weights left unused: {sorted(arrays)[:5]}")
    base.trainable = False
    normalize = layers.Normalization(mean=MEAN.tolist(), variance=(STD**2).tolist())
    inputs = keras.Input(shape=(*size, 3))
    x = augmentation(inputs)
    x = normalize(x)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-4),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
    )
    ends = []
    timer = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ends.append(time.perf_counter() - started))
    fit_started = time.perf_counter()
    history = model.fit(train, epochs=epochs, validation_data=validation, callbacks=[timer], verbose=0)
    fit_seconds = time.perf_counter() - fit_started
    probe = np.load(probe_photos).astype(np.float32)
    pooled = keras.Sequential([normalize, base, layers.GlobalAveragePooling2D()])
    features = np.asarray(pooled(probe, training=False))
    return {"val_accuracy": [float(a) for a in history.history["val_accuracy"]], "epoch_ends": ends,
            "fit_seconds": fit_seconds, "seconds": time.perf_counter() - started,
            "features": features.tolist()}  # fmt: skip


def _probe_photos(root: Path, size: tuple[int, int]) -> np.ndarray:
    """The first PROBE validation photos, resized bilinearly by Pillow: the same pixels for both networks."""
    from PIL import Image

    files = sorted((root / "validation").rglob("*.jpg"))[:PROBE]
    return np.stack([np.asarray(Image.open(f).convert("RGB").resize(size[::-1], Image.BILINEAR)) for f in files])


def hubel_side(root: Path, image_size: str | None) -> dict:
    with tempfile.TemporaryDirectory() as work:
        command = [sys.executable, "-m", "hubel", "train", str(root), "--out", f"{work}/run"]
        command += ["--image-size", image_size] if image_size else []
        environment = {**os.environ, "HUBEL_CACHE_DIR": f"{work}/cache"}
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=environment)
        seconds = time.perf_counter() - started
        result = json.loads(Path(f"{work}/run/result.json").read_text())
    label = f"hubel train {root.name}" + (f" --image-size {image_size}" if image_size else "")
    return {"seconds": seconds, "val_accuracy": result["test_accuracy"], "command": label}


def similarity(keras_features: np.ndarray, root: Path) -> tuple[float, float]:
    """(lowest, mean) cosine similarity of Keras's pooled features and hubel's on the probe photos."""
    import hubel

    shape = (SIDE, SIDE, 3)
    base = hubel.applications.MobileNetV2(input_shape=shape, include_top=False, weights="imagenet", pooling="avg")
    photos = _probe_photos(root, (SIDE, SIDE))
    ours = base.predict(hubel.applications.mobilenet_v2.preprocess_input(photos), verbose=0)
    cosine = (ours * keras_features).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(keras_features, axis=1))
    return float(cosine.min()), float(cosine.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["keras"])
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--probe", type=Path)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, default=ROOT)
    arguments = parser.parse_args()
    if arguments.side == "keras":
        result = keras_side(arguments.root, arguments.weights, arguments.probe, arguments.epochs, arguments.seed)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as work:
        weights = Path(work) / "mobilenet_v2_keras.npz"
        keras_weights(weights)
        probe = Path(work) / "probe.npy"
        np.save(probe, _probe_photos(arguments.root, (SIDE, SIDE)))
        command = [str(KERAS_PYTHON), __file__, "--side", "keras", "--weights", str(weights), "--probe", str(probe),
                   "--epochs", str(arguments.epochs), "--seed", str(arguments.seed),
                   "--root", str(arguments.root)]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        keras_wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the Keras side failed:\n{done.stderr[-3000:]}")
    keras_result = json.loads(done.stdout.strip().splitlines()[-1])
    lowest, mean = similarity(np.asarray(keras_result.pop("features"), dtype=np.float32), arguments.root)
    rows = [(f"Keras tutorial, {arguments.epochs} epochs at {SIDE}x{SIDE} (python script)", keras_wall,
             keras_result["val_accuracy"][-1])]  # fmt: skip
    for image_size in (None, f"{SIDE},{SIDE}"):
        ours = hubel_side(arguments.root, image_size)
        rows.append((f"`{ours['command']}`", ours["seconds"], ours["val_accuracy"]))
    similar = f"cosine similarity mean {mean:.4f}, lowest {lowest:.4f}"
    print(f"Keras's features against hubel's, {PROBE} photos at {SIDE}x{SIDE}: {similar}")
    epochs = ", ".join(f"{a:.2%} ({t:.0f} s)" for a, t in zip(keras_result["val_accuracy"], keras_result["epoch_ends"]))
    print(f"Keras, validation accuracy after each epoch (seconds since the script began): {epochs}")
    print("| run | wall s | validation accuracy |\n|---|---:|---:|")
    for name, seconds, accuracy in rows:
        print(f"| {name} | {seconds:.1f} | {accuracy:.2%} |")


if __name__ == "__main__":
    main()
