"""Serving: the HTTP app behind `hubel serve` (FastAPI; uvicorn runs it)."""

from hubel.serve.app import DEFAULT_MAX_UPLOAD_BYTES, create_app

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "create_app"]
