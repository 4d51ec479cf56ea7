"""Training runs: one call from a built-in dataset or a folder of images to a run directory
holding everything — what `hubel train` does.

    result = hubel.runs.train("fashion_mnist", model="fashion_cnn", epochs=5)

runs/NAME/ holds config.yaml (everything needed to rerun), metrics.jsonl (one line per epoch,
flushed), checkpoints/last.ckpt (atomic; `resume=True` continues after a crash or Ctrl-C),
model.hubel (weights, architecture, class names, preprocessing), report.html and train.log.
An existing run directory is never overwritten: resume it or choose another name.
"""

from hubel.runs.finished import compare, export_model, list_runs, report_run
from hubel.runs.inference import evaluate, predict_files
from hubel.runs.training import RunResult, train

__all__ = ["RunResult", "compare", "evaluate", "export_model", "list_runs", "predict_files", "report_run", "train"]
