"""The HTTP app behind `hubel serve`: a trained model answering over FastAPI.

    app = hubel.serve.create_app("runs/photos")      # then: uvicorn.run(app, host="127.0.0.1")

    GET  /health                 {"status": "ok"}
    GET  /model                  class names, input, training metrics, versions
    POST /predict?top=3          multipart field `file` (an image; a text file or field `text` for a text model)
    POST /predict (JSON)         {"texts": [...]} or {"images": [base64, ...]}: one answer per item
    GET  /docs                   the OpenAPI page

Answers: {"predictions": [{"class": ..., "probability": ...}], "model": ..., "ms": ...}. Every bad
request is a 4xx JSON {"error": "..."}; the server keeps serving. Uploads larger than
max_upload_bytes are refused before they are read whole; images past Pillow's pixel limit are
refused as decompression bombs. With a token, every endpoint but /health wants
`Authorization: Bearer TOKEN`. Nothing the client names is read or written on the server.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hubel import __version__
from hubel.data.images import DecodeOptions, UnreadableImage, decode_image
from hubel.data.text import decode_text
from hubel.errors import HubelError
from hubel.models.io import load_model
from hubel.models.model import Model, top_classes

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "create_app"]

DEFAULT_MAX_UPLOAD_BYTES = 20 * 2**20
_MAX_BATCH = 256


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Predictor:
    """The model and how requests become its inputs."""

    def __init__(self, model: Model, name: str) -> None:
        self.model, self.name = model, name
        self.names = list(model.metadata.get("class_names") or [])
        self.text = getattr(model, "_vectorizers", [None])[0] is not None
        if not self.text:
            height, width, channels = model.input_shape[1:]
            self.options = DecodeOptions((height, width), "grayscale" if channels == 1 else "rgb")
        self.model.eval()

    def image(self, data: bytes) -> np.ndarray:
        if self.text:
            raise _BadRequest(415, 'this model reads text: send a text file, a `text` field, or JSON {"texts": [...]}.')
        if not data:
            raise _BadRequest(400, "the uploaded file is empty.")
        try:
            return decode_image(io.BytesIO(data), self.options)
        except UnreadableImage as reason:
            raise _BadRequest(422, f"the upload is not a usable image: {reason}.") from None

    def text_of(self, data: bytes) -> str:
        if not self.text:
            raise _BadRequest(415, "this model reads images: send an image file (JPEG, PNG, ...) in the `file` field.")
        text, _ = decode_text(data)
        if not text.strip():
            raise _BadRequest(400, "the text is empty.")
        return text

    def answer(self, inputs: Any, top: int) -> list[list[dict[str, Any]]]:
        with torch.no_grad():
            scores = self.model.predict(inputs if self.text else np.stack(inputs))
        return [top_classes(row, self.names, top) for row in scores]


def _metadata(model: Model, name: str) -> dict[str, Any]:
    history = model.metadata.get("history") or {}
    return {
        "model": name,
        "classes": list(model.metadata.get("class_names") or []),
        "input": "text" if getattr(model, "_vectorizers", [None])[0] is not None else list(model.input_shape[1:]),
        "parameters": model.count_params(),
        "data": model.metadata.get("data"),
        "final_metrics": {key: values[-1] for key, values in history.items() if values},
        "versions": {"hubel": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
    }


def create_app(
    model: str | Path | Model, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, token: str | None = None
) -> Any:
    """The FastAPI app serving `model` (a Model, a .hubel file, or a run directory)."""
    if isinstance(model, Model):
        network, name = model, model.name
    else:
        path = Path(model) / "model.hubel" if Path(model).is_dir() else Path(model)
        network, name = load_model(path), (path.parent.name if path.name == "model.hubel" else path.stem)
    predictor = _Predictor(network, name)
    app = FastAPI(title=f"hubel: {name}", version=__version__)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if token is not None and request.url.path != "/health":
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return error(401, "missing or wrong token: send `Authorization: Bearer TOKEN`.")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_upload_bytes:
            return error(413, f"the request is {int(length):,} bytes; the limit is {max_upload_bytes:,}.")
        return await call_next(request)

    @app.exception_handler(_BadRequest)
    async def bad_request(request: Request, problem: _BadRequest) -> JSONResponse:
        return error(problem.status, str(problem))

    @app.exception_handler(HubelError)
    async def hubel_error(request: Request, problem: HubelError) -> JSONResponse:
        return error(422, str(problem))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model")
    def describe() -> dict[str, Any]:
        return _metadata(network, name)

    @app.post("/predict")
    async def predict(request: Request, top: int = 3) -> dict[str, Any]:
        started = time.perf_counter()
        if not 1 <= top <= 1000:
            raise _BadRequest(422, f"top must be between 1 and 1000. Received: top={top}")
        body = await _read_body(request, max_upload_bytes)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            items = _json_items(body, predictor)
            answers = predictor.answer(items, top)
            return {"results": [{"predictions": a} for a in answers], "model": name, "ms": _ms(started)}
        if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
            raise _BadRequest(
                415, f"send multipart/form-data (field `file`) or application/json. Received: {kind or 'none'}"
            )
        form = await request.form()
        upload = form.get("file")
        if upload is None and predictor.text and isinstance(form.get("text"), str):
            item: Any = predictor.text_of(str(form["text"]).encode())
        elif upload is None or isinstance(upload, str):
            fields = ", ".join(sorted(form.keys())) or "none"
            raise _BadRequest(422, f"expected the upload in the multipart field `file`. Received fields: {fields}")
        else:
            data = await upload.read()
            item = predictor.text_of(data) if predictor.text else predictor.image(data)
        answers = predictor.answer([item], top)
        return {"predictions": answers[0], "model": name, "ms": _ms(started)}

    return app


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def _read_body(request: Any, limit: int) -> bytes:
    """The body, refused as soon as it passes the limit (a missing or false Content-Length does not help)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BadRequest(413, f"the request passed the limit of {limit:,} bytes.")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # starlette parses the form from this
    return body


def _json_items(body: bytes, predictor: _Predictor) -> list[Any]:
    try:
        document = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _BadRequest(400, "the body is not valid JSON.") from None
    key = "texts" if predictor.text else "images"
    values = document.get(key) if isinstance(document, dict) else None
    if not isinstance(values, list) or not values:
        raise _BadRequest(422, f'expected JSON {{"{key}": [...]}} with at least one item for this model.')
    if len(values) > _MAX_BATCH:
        raise _BadRequest(413, f"at most {_MAX_BATCH} items per request. Received: {len(values)}")
    if predictor.text:
        if not all(isinstance(value, str) for value in values):
            raise _BadRequest(422, '"texts" must be a list of strings.')
        return [predictor.text_of(value.encode()) for value in values]
    images = []
    for index, value in enumerate(values):
        try:
            images.append(predictor.image(base64.b64decode(value, validate=True)))
        except (binascii.Error, TypeError, ValueError):
            raise _BadRequest(422, f"images[{index}] is not base64-encoded image bytes.") from None
    return images
