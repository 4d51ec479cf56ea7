"""Serving: the HTTP app behind `hubel serve` (FastAPI; uvicorn runs it), its engines and page."""

from hubel.serve.app import DEFAULT_MAX_UPLOAD_BYTES, create_app, serve
from hubel.serve.engine import ENGINES, Engine, MicroBatcher, choose_engine

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "ENGINES", "Engine", "MicroBatcher", "choose_engine", "create_app", "serve"]
