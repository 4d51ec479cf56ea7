"""Serving under load: `hubel serve`'s app in its own process, 200 keep-alive clients on loopback
for a bounded time, each POSTing one 28x28 PNG at a time as multipart (the README's curl form).

    .venv/bin/python benchmarks/serve_load.py                       # fashion_cnn, 200 clients, 10 s a row
    .venv/bin/python benchmarks/serve_load.py --clients 50 --seconds 5 --model runs/fashion/model.hubel

Rows: the engines (ONNX Runtime, PyTorch), micro-batching off (--max-batch 1) and on, the event
loop / HTTP parser uvicorn runs on (asyncio + h11, or uvloop + httptools, which uvicorn picks
itself when they are installed), and `hubel serve --workers 2`. Each row is a fresh server.
Reported: requests/s, p50/p99 latency, errors, the mean batch the engine saw (one process only),
the server's resident memory (all its processes) after the load and after 400 bad requests (not
images, truncated files, a 40,000x40,000 PNG bomb), and
requests/s as a fraction of ONNX Runtime's raw throughput at batch 256 on the same model,
measured first in this process. The load generator is plain asyncio over raw sockets with the
requests built once, so the client costs little; it shares the 2 cores with the server.
Traffic goes to 127.0.0.1 only, and every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import hubel
from hubel.models.zoo import create_model

SERVER = """
import sys, json, uvicorn
from hubel.serve import create_app
settings = json.loads(sys.argv[1])
app = create_app(settings["model"], engine=settings["engine"], max_batch=settings["max_batch"],
                 max_wait_ms=settings["max_wait_ms"])
@app.get("/stats")
def stats():
    batcher = app.state.predictor.batcher
    return {"batches": batcher.batches_run, "examples": batcher.examples_run}
uvicorn.run(app, host="127.0.0.1", port=settings["port"], log_level="error", loop=settings["loop"],
            http=settings["http"])
"""

ROWS = [  # (engine, max_batch, loop, http, workers); workers > 1 runs `hubel serve --workers N` itself
    ("onnxruntime", 1, "asyncio", "h11", 1),
    ("onnxruntime", 64, "asyncio", "h11", 1),
    ("onnxruntime", 1, "uvloop", "httptools", 1),
    ("onnxruntime", 64, "uvloop", "httptools", 1),
    ("torch", 64, "uvloop", "httptools", 1),
    ("onnxruntime", 64, "uvloop", "httptools", 2),
]


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def json_request(port: int, images: list[bytes]) -> bytes:
    body = json.dumps({"images": [base64.b64encode(image).decode() for image in images]}).encode()
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def multipart_request(port: int, body_file: bytes, name: str = "item.png", kind: str = "image/png") -> bytes:
    boundary = "hubelloadboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {kind}\r\n\r\n".encode()
        + body_file
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; "
        f"boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    return status, await reader.readexactly(length)


async def load(port: int, requests: list[bytes], clients: int, seconds: float, limit: int) -> dict:
    """`clients` connections, each sending requests back to back until `seconds` or `limit` requests."""
    latencies: list[float] = []
    errors = {"count": 0}
    sent = {"count": 0}
    stop_at = time.perf_counter() + seconds

    async def client(number: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            index = number
            while time.perf_counter() < stop_at and sent["count"] < limit:
                sent["count"] += 1
                started = time.perf_counter()
                writer.write(requests[index % len(requests)])
                status, _ = await read_response(reader)
                latencies.append(time.perf_counter() - started)
                errors["count"] += status != 200
                index += clients
        except (ConnectionError, asyncio.IncompleteReadError):
            errors["count"] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(number) for number in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else float("nan"),
        "errors": errors["count"],
        "requests": len(latencies),
    }


def get_json(port: int, path: str) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def resident_mb(pid: int) -> float:
    """The resident memory of a process and its children, in MB (Linux's /proc)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
        pending += [int(child) for child in children]
    return total / 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bad_requests(port: int) -> list[bytes]:
    bomb = io.BytesIO()
    Image.new("1", (40_000, 40_000)).save(bomb, format="PNG")
    truncated = png(np.zeros((28, 28), np.uint8))[:50]
    files = [b"not an image", truncated, bomb.getvalue()]
    return [multipart_request(port, data) for data in files]


def onnx_throughput(model: hubel.Model, shape: tuple[int, ...], seconds: float = 3.0) -> float:
    import onnxruntime

    with tempfile.TemporaryDirectory() as folder:
        path = model.export(Path(folder) / "model.onnx").path
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).integers(0, 256, (256, *shape)).astype(np.float32)
    session.run(None, {"input": batch})
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(None, {"input": batch})
        count += len(batch)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", help="a .hubel file with a 28x28x1 input (default: the zoo's fashion_cnn, untrained)"
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-requests", type=int, default=500_000, help="a bound on each row's requests")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hubel-load-"))
    if args.model:
        model = hubel.load_model(args.model)
        model_path = Path(args.model)
    else:
        hubel.set_seed(0)
        model = create_model("fashion_cnn")
        model_path = model.save(work / "fashion_cnn.hubel", metadata={"class_names": [str(d) for d in range(10)]})
    shape = tuple(model.input_shape[1:])
    raw = onnx_throughput(model, shape)
    (x_test, _) = hubel.datasets.load("fashion_mnist")[1]
    images = [png(pixels) for pixels in x_test[:256]]
    print(f"model {model_path.name} {shape}; ONNX Runtime alone at batch 256: {raw:,.0f} img/s")
    print(f"{args.clients} clients, {args.seconds:g} s a row, multipart PNG uploads of Fashion-MNIST test images\n")
    print("| engine | max batch | loop + parser | processes | requests/s | p50 ms | p99 ms | errors | mean batch "
          "| RSS after load MB | RSS after 400 bad MB | of ONNX Runtime's batch throughput |")  # fmt: skip
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for engine, max_batch, loop, http, workers in ROWS:
        port = free_port()
        if workers == 1:
            settings = {"model": str(model_path), "engine": engine, "max_batch": max_batch, "max_wait_ms": 2.0,
                        "port": port, "loop": loop, "http": http}  # fmt: skip
            command = [sys.executable, "-c", SERVER, json.dumps(settings)]
        else:
            command = [sys.executable, "-m", "hubel", "serve", str(model_path), "--port", str(port), "--engine",
                       engine, "--max-batch", str(max_batch), "--workers", str(workers)]  # fmt: skip
        server = subprocess.Popen(command, env=os.environ.copy())
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    get_json(port, "/health")
                    break
                except (ConnectionError, OSError, json.JSONDecodeError, IndexError):
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit(f"the server for {engine} did not start") from None
                    time.sleep(0.2)
            if workers == 1 and engine == "onnxruntime" and max_batch == 64 and http == "httptools":
                batches = [json_request(port, images[i : i + 64]) for i in range(0, len(images), 64)]
                asyncio.run(load(port, batches, 4, 2.0, 1_000))  # warm-up
                batched = asyncio.run(load(port, batches, 8, args.seconds, args.max_requests))
                json_rate = 64 * batched["requests_per_second"]
                print(f"(JSON batches of 64 base64 PNGs, 8 clients, same server: {json_rate:,.0f} images/s, "
                      f"{json_rate / raw:.1%} of ONNX Runtime's, {batched['errors']} errors)")  # fmt: skip
            requests = [multipart_request(port, image) for image in images]
            asyncio.run(load(port, requests, 8, 3.0, 4_000))  # warm-up (every worker started)
            before = get_json(port, "/stats") if workers == 1 else None
            result = asyncio.run(load(port, requests, args.clients, args.seconds, args.max_requests))
            after = get_json(port, "/stats") if workers == 1 else None
            loaded_mb = resident_mb(server.pid)
            asyncio.run(load(port, bad_requests(port) * 134, 4, 60.0, 400))
            flooded_mb = resident_mb(server.pid)
            mean_batch = "–"
            if before is not None and after is not None:
                batches = max(1, after["batches"] - before["batches"])
                mean_batch = f"{(after['examples'] - before['examples']) / batches:.1f}"
            print(
                f"| {engine} | {max_batch} | {loop} + {http} | {workers} | {result['requests_per_second']:,.0f} | "
                f"{result['p50_ms']:.1f} | {result['p99_ms']:.1f} | {result['errors']} | {mean_batch} | "
                f"{loaded_mb:.0f} | {flooded_mb:.0f} | {result['requests_per_second'] / raw:.1%} |",
                flush=True,
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
