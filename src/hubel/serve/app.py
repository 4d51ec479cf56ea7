"""The HTTP app behind `hubel serve`: a trained model answering over FastAPI.

    app = hubel.serve.create_app("runs/photos")      # then: uvicorn.run(app, host="127.0.0.1")

    GET  /                       a page to try the model: drop a photo (or type text), see the answer
    GET  /health                 {"status": "ok"}
    GET  /model                  the model's card: classes, input, data, metrics, date, engine, versions
    POST /predict?top=3          multipart field `file` (an image; a text file or field `text` for a text model)
    POST /predict?explain=true   the same, plus a Grad-CAM overlay (images) or each word's weight (text)
    POST /predict (JSON)         {"texts": [...]} or {"images": [base64, ...]}: one answer per item
    GET  /docs                   the OpenAPI page

Answers: {"predictions": [{"class": ..., "probability": ...}], "model": ..., "ms": ...}. Every bad
request is a 4xx JSON {"error": "..."}; the server keeps serving. Uploads larger than
max_upload_bytes are refused before they are read whole; images past Pillow's pixel limit are
refused as decompression bombs. With a token, every endpoint but / and /health wants
`Authorization: Bearer TOKEN`. Nothing the client names is read or written on the server.

Inference runs on ONNX Runtime when it is installed (engine.py says why and how), and concurrent
requests share engine calls through a micro-batcher.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import io
import json
import platform
import time
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from hubel import __version__
from hubel.data.images import DecodeOptions, UnreadableImage, decode_image
from hubel.data.text import decode_text
from hubel.errors import ConfigError, HubelError
from hubel.models.io import load_model
from hubel.models.model import Model, top_classes
from hubel.serve.engine import Engine, MicroBatcher, choose_engine

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "app_from_environment", "create_app", "serve"]

DEFAULT_MAX_UPLOAD_BYTES = 20 * 2**20
_MAX_BATCH = 256  # items in one JSON request
_DECODE_INLINE_BYTES = 256 * 2**10  # larger uploads are decoded off the event loop


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Predictor:
    """The model, its engine and batcher, and how requests become their inputs."""

    def __init__(self, model: Model, name: str, engine: Engine, batcher: MicroBatcher) -> None:
        self.model, self.name, self.engine, self.batcher = model, name, engine, batcher
        self.names = list(model.metadata.get("class_names") or [])
        self.vectorizer = getattr(model, "_vectorizers", [None])[0]
        self.text = self.vectorizer is not None
        if not self.text:
            height, width, channels = model.input_shape[1:]
            self.options = DecodeOptions((height, width), "grayscale" if channels == 1 else "rgb")
        self.model.eval()

    async def image(self, data: bytes) -> np.ndarray:
        """(H, W, C) uint8 pixels at the model's input size."""
        if self.text:
            raise _BadRequest(415, 'this model reads text: send a text file, a `text` field, or JSON {"texts": [...]}.')
        if not data:
            raise _BadRequest(400, "the uploaded file is empty.")
        if len(data) > _DECODE_INLINE_BYTES:  # a large photo would hold up every other request
            return await run_in_threadpool(self._decode, data)
        return self._decode(data)

    def _decode(self, data: bytes) -> np.ndarray:
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

    def example(self, item: Any) -> np.ndarray:
        """What the engine takes for one item: float32 pixels, or int64 token ids."""
        if self.text:
            return self.vectorizer.vectorize([item])[0]
        return item.astype(np.float32)

    async def answer(self, items: list[Any], top: int, explain: bool) -> list[dict[str, Any]]:
        scores = await asyncio.gather(*(self.batcher(self.example(item)) for item in items))
        answers = []
        for item, row in zip(items, scores):
            answer: dict[str, Any] = {"predictions": top_classes(row, self.names, top)}
            if explain:
                answer.update(await self.batcher.call_in_worker(self._explain, item, row))
            answers.append(answer)
        return answers

    def _explain(self, item: Any, scores: np.ndarray) -> dict[str, Any]:
        """Grad-CAM for an image, occlusion for a text, of the predicted class (on the torch model)."""
        from hubel.inspect.attribution import word_attributions
        from hubel.inspect.gradcam import GradCam, heatmap_overlay

        if self.text:
            words = word_attributions(self.model, item)
            return {"words": [{"text": word.text, "score": round(word.score, 5)} for word in words]}
        try:
            with GradCam(self.model) as cam:
                heatmap, _ = cam(item)
                layer = cam.layer.name
        except ConfigError as reason:
            return {"gradcam": None, "gradcam_error": str(reason)}
        buffer = io.BytesIO()
        Image.fromarray(heatmap_overlay(item, heatmap)).save(buffer, format="PNG")
        return {"gradcam": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(), "layer": layer}


class _Guard:
    """The token and the declared size, checked before the app sees a request. Plain ASGI, not
    @app.middleware: that wraps every request in tasks and streams, and halved the requests/s."""

    def __init__(self, app: Any, token: str | None, max_upload_bytes: int) -> None:
        self.app, self.max_upload_bytes = app, max_upload_bytes
        self.expected = None if token is None else f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            problem = self._problem(scope["path"], headers)
            if problem is not None:
                await JSONResponse({"error": problem[1]}, status_code=problem[0])(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _problem(self, path: str, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        if self.expected is not None and path not in ("/", "/health"):
            if not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
                return 401, "missing or wrong token: send `Authorization: Bearer TOKEN`."
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_upload_bytes:
            return 413, f"the request is {int(length):,} bytes; the limit is {self.max_upload_bytes:,}."
        return None


def _card(model: Model, name: str, path: Path | None, engine: Engine) -> dict[str, Any]:
    """The model's card: what it takes and answers, what it learned from, how well, and when."""
    history = model.metadata.get("history") or {}
    result: dict[str, Any] = {}
    if path is not None and path.name == "model.hubel" and (path.parent / "result.json").is_file():
        try:  # a run directory's test-set figures
            result = json.loads((path.parent / "result.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            result = {}
    saved = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds") if path else None
    return {
        "model": name,
        "classes": list(model.metadata.get("class_names") or []),
        "input": "text" if getattr(model, "_vectorizers", [None])[0] is not None else list(model.input_shape[1:]),
        "parameters": model.count_params(),
        "data": model.metadata.get("data"),
        "final_metrics": {key: values[-1] for key, values in history.items() if values},
        # a run on a folder without a test/ split measured its validation split: no test figures to show
        "test_metrics": {key: result[key] for key in ("test_accuracy", "test_loss") if key in result}
        if result.get("measured_on", "test") == "test"
        else {},
        "saved": saved,
        "engine": {"name": engine.name, "note": engine.note, "parity": engine.parity},
        "versions": {"hubel": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
    }


def create_app(
    model: str | Path | Model,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    token: str | None = None,
    engine: str = "auto",
    max_batch: int = 64,
    max_wait_ms: float = 2.0,
    threads: int | None = None,
) -> Any:
    """The FastAPI app serving `model` (a Model, a .hubel file, or a run directory).

    engine: "auto" (ONNX Runtime when installed and faithful, else PyTorch), "onnxruntime" or
    "torch". Concurrent requests are grouped into batches of up to max_batch examples, each
    waiting at most max_wait_ms for company. threads: ONNX Runtime's (default: one per core).
    """
    path: Path | None = None
    if isinstance(model, Model):
        network, name = model, model.name
    else:
        path = Path(model) / "model.hubel" if Path(model).is_dir() else Path(model)
        network, name = load_model(path), (path.parent.name if path.name == "model.hubel" else path.stem)
    chosen = choose_engine(network, engine, threads)
    predictor = _Predictor(network, name, chosen, MicroBatcher(chosen, max_batch, max_wait_ms))
    card = _card(network, name, path, chosen)
    page = resources.files("hubel.serve").joinpath("page.html").read_text(encoding="utf-8")
    app = FastAPI(title=f"hubel: {name}", version=__version__)
    app.state.predictor = predictor  # the batcher's batch sizes, for tests and the load benchmark
    app.router.on_shutdown.append(predictor.batcher.close)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    app.add_middleware(_Guard, token=token, max_upload_bytes=max_upload_bytes)

    @app.exception_handler(_BadRequest)
    async def bad_request(request: Request, problem: _BadRequest) -> JSONResponse:
        return error(problem.status, str(problem))

    @app.exception_handler(HubelError)
    async def hubel_error(request: Request, problem: HubelError) -> JSONResponse:
        return error(422, str(problem))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, problem: StarletteHTTPException) -> JSONResponse:
        """Starlette's own refusals (no such path, wrong method, a malformed form) in the same shape."""
        message = f"{str(problem.detail).rstrip('.')} ({request.method} {request.url.path})"
        if problem.status_code in (404, 405):
            message += ". The endpoints: GET /, GET /health, GET /model, POST /predict, GET /docs."
        return error(problem.status_code, message)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model")
    async def describe() -> dict[str, Any]:
        return card

    @app.post("/predict", openapi_extra=_PREDICT_OPENAPI, response_model=None)
    async def predict(request: Request) -> Response:
        """The top classes for one upload (multipart) or for each item of a JSON batch."""
        started = time.perf_counter()
        top, explain = _options(request.query_params)  # read here, not by FastAPI: a third of a request's time
        body = await _read_body(request, max_upload_bytes)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            items = await _json_items(body, predictor)
            answers = await predictor.answer(items, top, explain)
            return _json({"results": answers, "model": name, "ms": _ms(started)})
        if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
            raise _BadRequest(
                415, f"send multipart/form-data (field `file`) or application/json. Received: {kind or 'none'}"
            )
        form = await request.form(max_files=4, max_fields=16, max_part_size=max_upload_bytes)
        upload = form.get("file")
        if upload is None and predictor.text and isinstance(form.get("text"), str):
            item: Any = predictor.text_of(str(form["text"]).encode())
        elif upload is None or isinstance(upload, str):
            fields = ", ".join(sorted(form.keys())) or "none"
            raise _BadRequest(422, f"expected the upload in the multipart field `file`. Received fields: {fields}")
        else:
            data = await upload.read()
            item = predictor.text_of(data) if predictor.text else await predictor.image(data)
        (answer,) = await predictor.answer([item], top, explain)
        return _json({**answer, "model": name, "ms": _ms(started)})

    return app


def serve(
    model: str | Path | Model,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    token: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    engine: str = "auto",
    max_batch: int = 64,
    max_wait_ms: float = 2.0,
    workers: int = 1,
) -> None:
    """Serve `model` with uvicorn until interrupted (what `hubel serve` runs). The port is bound
    before the model loads, so a port in use is a ConfigError at once. workers > 1 runs that many
    processes on the one port, each with its model, batcher and share of the cores (a model
    file or run directory only: each process loads it)."""
    import os
    import socket
    import sys

    import uvicorn

    if not 0 <= port <= 65535:
        raise ConfigError(f"the port must be between 0 and 65535. Received: port={port}")
    if workers < 1 or (workers > 1 and isinstance(model, Model)):
        raise ConfigError(
            f"workers must be 1 or more, and more than 1 needs a model file or run directory (each process "
            f"loads it). Received: workers={workers}"
        )
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    settings = {"model": model if isinstance(model, Model) else str(model), "max_upload_bytes": max_upload_bytes,
                "token": token, "engine": engine, "max_batch": max_batch, "max_wait_ms": max_wait_ms,
                "threads": threads}  # fmt: skip
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({error.strerror or error}). Choose another --port or --host."
        ) from None
    try:
        app = create_app(**settings)  # in the parent too: a bad model fails here, once, before any worker starts
        chosen = app.state.predictor.engine
        parity = f", max |difference| from hubel {chosen.parity:.1e}" if chosen.parity is not None else ""
        shown = f"[{host}]" if ":" in host else host
        processes = f"{workers} processes, " if workers > 1 else ""
        print(f"Serving {app.state.predictor.name} on http://{shown}:{listener.getsockname()[1]}/ "
              f"({processes}inference: {chosen.note}{parity}; API docs at /docs)", file=sys.stderr)  # fmt: skip
        if workers == 1:
            uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listener])
            return
        del app
        os.environ[_WORKER_SETTINGS] = json.dumps(settings)
        uvicorn.run(f"{__name__}:app_from_environment", factory=True, workers=workers, fd=listener.fileno(),
                    log_level="warning")  # fmt: skip
    finally:
        listener.close()


_WORKER_SETTINGS = "HUBEL_SERVE_WORKER_SETTINGS"


def app_from_environment() -> Any:
    """The app of one `hubel serve --workers N` process, from the settings its parent left in the
    environment; the torch threads are that process's share of the cores."""
    import os

    settings = json.loads(os.environ[_WORKER_SETTINGS])
    torch.set_num_threads(settings["threads"] or torch.get_num_threads())
    return create_app(**settings)


_PREDICT_OPENAPI = {
    "parameters": [
        {"name": "top", "in": "query", "schema": {"type": "integer", "default": 3, "minimum": 1, "maximum": 1000},
         "description": "how many classes to return, best first"},
        {"name": "explain", "in": "query", "schema": {"type": "boolean", "default": False},
         "description": "add a Grad-CAM overlay (an image model) or each word's weight (a text model)"},
    ],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary", "description": "an image (a text file: text models)"},
                "text": {"type": "string", "description": "a text, for a text model"}}}},
            "application/json": {"schema": {"type": "object", "properties": {
                "images": {"type": "array", "items": {"type": "string", "format": "byte"}, "maxItems": _MAX_BATCH},
                "texts": {"type": "array", "items": {"type": "string"}, "maxItems": _MAX_BATCH}}}},
        },
    },
}  # fmt: skip


def _options(query: Any) -> tuple[int, bool]:
    """(top, explain) from the query string, or a 422 that says what was wrong."""
    given = query.get("top", "3")
    try:
        top = int(given)
    except ValueError:
        top = 0
    if not 1 <= top <= 1000:
        raise _BadRequest(422, f"top must be a whole number between 1 and 1000. Received: top={given!r}")
    flag = query.get("explain", "false").lower()
    if flag not in ("true", "false", "1", "0", "yes", "no", "on", "off", ""):
        raise _BadRequest(422, f"explain must be true or false. Received: explain={flag!r}")
    return top, flag in ("true", "1", "yes", "on")


def _json(content: dict[str, Any]) -> Response:
    return Response(json.dumps(content), media_type="application/json")


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


async def _json_items(body: bytes, predictor: _Predictor) -> list[Any]:
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
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise _BadRequest(422, f"images[{index}] is not base64-encoded image bytes.") from None
        images.append(await predictor.image(data))
    return images
