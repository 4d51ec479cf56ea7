"""Models: Model (the functional graph), Sequential (its linear case), the summary, the
.hubel model file and the zoo."""

from hubel.models import applications, zoo
from hubel.models.io import load_model, model_from_config, model_from_json, save_model
from hubel.models.model import Model, walk_layers
from hubel.models.sequential import Sequential
from hubel.models.summary import ModelSummary, render_summary, summarize

__all__ = [
    "Model",
    "ModelSummary",
    "Sequential",
    "applications",
    "load_model",
    "model_from_config",
    "model_from_json",
    "render_summary",
    "save_model",
    "summarize",
    "walk_layers",
    "zoo",
]
