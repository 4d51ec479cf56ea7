"""Run directories after the fact: list them, compare them, write a report again, export a model."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from hubel.errors import ConfigError
from hubel.runs.inference import _model_path
from hubel.runs.setup import _load_data
from hubel.runs.training import train


def list_runs(root: str | Path = "runs") -> list[dict[str, Any]]:
    """One row per run directory under root: data, model, epochs, best validation accuracy, test
    accuracy (None for a folder without a test/ split) and time (from config.yaml, metrics.jsonl
    and result.json)."""
    rows = []
    for directory in sorted(Path(root).glob("*/")):
        config_path = directory / "config.yaml"
        if not config_path.exists():
            continue
        config = yaml.safe_load(config_path.read_text()) or {}
        metrics = (
            [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
            if (directory / "metrics.jsonl").exists()
            else []
        )
        result = json.loads((directory / "result.json").read_text()) if (directory / "result.json").exists() else {}
        accuracies = [line["val_accuracy"] for line in metrics if "val_accuracy" in line]
        rows.append({
            "run": directory.name, "data": config.get("data"), "model": config.get("model"), "epochs": len(metrics),
            "best_val_accuracy": max(accuracies) if accuracies else None,
            "test_accuracy": result.get("test_accuracy") if result.get("measured_on", "test") == "test" else None,
            "seconds": result.get("seconds"),
            "state": "finished" if result else "unfinished (hubel train --resume continues it)",
        })  # fmt: skip
    return rows


def compare(
    data: str,
    models: list[str],
    *,
    epochs: int = 3,
    budget: float | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Train each model on the same data, split, seed and epochs (or the same time budget
    each), a run directory each under out/, then write comparison.md and validation_curves.png
    there; returns the table rows. batch_size None: each model's recipe. No augmentation: with a
    budget, `--augment auto` could give it to one model's plan and not another's."""
    from hubel.inspect.plots import plot_history
    from hubel.models.io import load_model
    from hubel.models.summary import summarize
    from hubel.train.history import History

    if len(models) < 2:
        raise ConfigError("compare needs at least two models: --model A --model B.")
    root = Path(out) if out else Path("runs") / f"compare-{Path(data).name}"
    rows, histories = [], []
    for name in models:
        result = train(
            data,
            name,
            epochs=epochs,
            budget=budget,
            batch_size=batch_size,
            augment="none",
            seed=seed,
            out=root / Path(name).stem,
        )
        network = load_model(result.model_path)
        loaded = _load_data(data, tuple(network.input_shape[1:3]), 256, seed)
        images, split = loaded["test"], loaded.get("test_split", "test")  # validation: a folder without test/
        sample = images[0][:256] if isinstance(images, tuple) else next(iter(images))[0]
        start = time.perf_counter()
        network.predict(sample)
        milliseconds = (time.perf_counter() - start) * 1000 / len(sample)
        summary = summarize(network)
        rows.append({
            "model": name, "test_accuracy": result.test_accuracy, "measured_on": split, "params": summary.total_params,
            "macs": summary.macs,
            "train_seconds": result.seconds, "inference_ms_per_image": milliseconds,
            "model_file_mb": result.model_path.stat().st_size / 2**20,
        })  # fmt: skip
        logged = network.metadata.get("history", {})
        histories.append(History(logged, list(range(len(logged.get("loss", []))))))
    each = f"a {budget:.0f} s budget" if budget is not None else f"{epochs} epochs"
    plot_history(histories, metrics=("accuracy",), labels=models, path=root / "validation_curves.png",
                 title=f"{data}: {each} each, seed {seed}")  # fmt: skip
    lines = [
        f"# {data}: {', '.join(models)}",
        "",
        f"Same data split, seed {seed} and {each} for every model.",
        "",
        f"| model | {rows[0]['measured_on']} accuracy | params | MACs | train time | inference ms/image "
        "| model file MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['model']} | {r['test_accuracy']:.4f} | {r['params']:,} | {r['macs']:,} | "
            f"{r['train_seconds']:.0f} s | {r['inference_ms_per_image']:.3f} | {r['model_file_mb']:.2f} |"
            for r in rows
        ),
        "",
        "![validation curves](validation_curves.png)",
    ]
    (root / "comparison.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[4:-2]))
    print(f"Table: {root / 'comparison.md'}  Curves: {root / 'validation_curves.png'}")
    return rows


def report_run(run: str | Path, out: str | Path | None = None) -> Path:
    """Write (again) the HTML report of a run directory, from its model file, its config and
    its test data."""
    from hubel.inspect.report import report
    from hubel.models.io import load_model
    from hubel.train.history import History

    directory = Path(run)
    config_path = directory / "config.yaml"
    if not config_path.exists() or not (directory / "model.hubel").exists():
        raise ConfigError(f"{directory}: not a finished run directory (config.yaml and model.hubel are needed).")
    config = yaml.safe_load(config_path.read_text()) or {}
    network = load_model(directory / "model.hubel")
    history_data = network.metadata.get("history") or {}
    epochs = list(range(len(next(iter(history_data.values()), []))))
    history = History(history_data, epochs, steps=network.metadata.get("history_steps"))
    loaded = _load_data(  # the run's own split: a folder without test/ is measured on its validation files
        config["data"], tuple(network.input_shape[1:3]), config.get("batch_size", 32), config.get("seed", 0),
        validation_split=config.get("validation_split"),
    )  # fmt: skip
    path = Path(out) if out else directory / "report.html"
    return report(network, history, loaded["test"], path=path, class_names=network.metadata.get("class_names"),
                  title=f"{config.get('model')} on {Path(config['data']).name}", seed=config.get("seed"),
                  split=loaded.get("test_split", "test"))  # fmt: skip


def export_model(
    model: str | Path, out: str | Path | None = None, format: str = "onnx", input_dtype: str = "float32"
) -> Any:
    """Export a .hubel file or a run directory (hubel export): ONNX, checked on real inputs (a run's
    test data, the first 64 examples; random inputs for a bare model file) before it is written
    (default: beside the model, model.onnx)."""
    from hubel.export.onnx import export_onnx
    from hubel.models.io import load_model

    if format != "onnx":
        raise ConfigError(f"hubel exports --format onnx. Received: {format!r}")
    path = _model_path(model)
    network = load_model(path)
    sample = None
    config_path = path.parent / "config.yaml"
    if config_path.exists():
        config = yaml.safe_load(config_path.read_text()) or {}
        text_model = network._vectorizers[0] is not None
        size = None if text_model else tuple(network.input_shape[1:3])
        test = _load_data(config["data"], size, 64, 0)["test"]
        sample = test[0][:64] if isinstance(test, tuple) else next(iter(test))[0]
    return export_onnx(network, Path(out) if out else path.with_suffix(".onnx"), sample, input_dtype=input_dtype)
