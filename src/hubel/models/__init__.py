"""Models: Sequential, its summary, and the .hubel model file."""

from hubel.models import zoo
from hubel.models.io import load_model, save_model
from hubel.models.sequential import Sequential
from hubel.models.summary import ModelSummary, render_summary, summarize

__all__ = ["ModelSummary", "Sequential", "load_model", "render_summary", "save_model", "summarize", "zoo"]
