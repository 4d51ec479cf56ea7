"""ONNX export with a parity check: the graph takes what model.predict takes and must give the same
outputs under ONNX Runtime before the file appears.

    result = hubel.export.export_onnx(model, "model.onnx", sample=x_test[:64])
    result.max_difference  # the largest |ONNX Runtime − hubel| over the sample, ≤ 1e-4

Image models take raw NHWC pixels (float32 0–255, or uint8 with input_dtype="uint8"): the
preprocessing layers are inside the graph. Text models take token ids (int64, what their
TextVectorization gives; its vocabulary is in the metadata). The batch axis is dynamic. The
metadata holds the class names, the input shape and dtype, and the versions.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hubel import __version__
from hubel.errors import ConfigError, HubelError
from hubel.models.model import Model
from hubel.train.trainer import test_time_forward

__all__ = ["DEFAULT_TOLERANCE", "ExportError", "ExportResult", "export_onnx"]

DEFAULT_TOLERANCE = 1e-4


class ExportError(HubelError):
    """The exported graph does not reproduce the model (or ONNX cannot hold it)."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_difference: float
    examples: int
    seconds: float


class _Graph(nn.Module):
    """What is exported: the model on float32 (or uint8 pixels cast to float inside the graph)."""

    def __init__(self, model: Model, cast: bool) -> None:
        super().__init__()
        self.model, self.cast = model, cast

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # with the model's test-time augmentation, as predict
        return test_time_forward(self.model, self.model, x.float() if self.cast else x)


def _input_spec(model: Model, input_dtype: str) -> tuple[tuple[int, ...], Any, Any]:
    """(per-example shape, numpy dtype, the vectorizer or None)."""
    vectorizer = getattr(model, "_vectorizers", [None])[0]
    if vectorizer is not None:
        return tuple(vectorizer.output_shape[1:]), np.int64, vectorizer
    if not isinstance(model.input_shape, tuple):
        raise ConfigError(f"{model.name}: export takes a model with one input; this one has {len(model.input_shape)}.")
    if input_dtype not in ("float32", "uint8"):
        raise ConfigError(f"export: expected input_dtype 'float32' or 'uint8'. Received: input_dtype={input_dtype!r}")
    return tuple(model.input_shape[1:]), np.dtype(input_dtype), None


def _default_sample(shape: tuple[int, ...], dtype: Any, vectorizer: Any) -> np.ndarray:
    rng = np.random.default_rng(0)
    if vectorizer is not None:
        return rng.integers(0, max(vectorizer.vocabulary_size(), 2), (16, *shape)).astype(np.int64)
    return rng.integers(0, 256, (16, *shape)).astype(dtype)


def export_onnx(
    model: Model,
    path: str | Path,
    sample: Any = None,
    *,
    input_dtype: str = "float32",
    tolerance: float = DEFAULT_TOLERANCE,
    opset: int = 17,
) -> ExportResult:
    """Write `model` as ONNX to `path`, after checking ONNX Runtime against hubel on `sample`
    (real inputs; default: 16 random ones). Above `tolerance`, ExportError and no file."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ConfigError("ONNX export needs onnx and onnxruntime: pip install onnx onnxruntime") from None
    started = time.perf_counter()
    shape, dtype, vectorizer = _input_spec(model, input_dtype)
    if sample is None:
        sample = _default_sample(shape, dtype, vectorizer)
    elif vectorizer is not None:
        sample = np.asarray(model.encode_inputs(sample), dtype=np.int64)
    sample = np.asarray(sample).astype(dtype, copy=False)
    if sample.ndim == len(shape) and sample.shape == shape:
        sample = sample[None]
    if len(shape) == 3 and shape[-1] == 1 and sample.shape[1:] == shape[:-1]:
        sample = sample[..., None]  # (N, H, W) grayscale, as predict takes it
    if sample.shape[1:] != shape or len(sample) == 0:
        raise ConfigError(f"export: the sample must be examples of shape {shape}. Received: {sample.shape}")
    graph = _Graph(model, cast=np.dtype(dtype) == np.uint8).eval()
    was_training = model.training
    model.eval()
    with torch.no_grad():
        expected = graph(torch.from_numpy(np.ascontiguousarray(sample))).float().numpy()
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on tracing; the parity check is the test
            torch.onnx.export(
                graph, (torch.from_numpy(np.ascontiguousarray(sample[:2])),), str(temporary),
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=opset, dynamo=False,
            )  # fmt: skip
        document = onnx.load(str(temporary))
        metadata = {
            "class_names": json.dumps(model.metadata.get("class_names") or []),
            "input_shape": json.dumps(list(shape)),
            "input_dtype": str(np.dtype(dtype)),
            "input": "token ids (int64) from the vocabulary" if vectorizer is not None else "raw NHWC pixels, 0-255",
            "hubel": __version__,
            "torch": str(torch.__version__),
        }
        if vectorizer is not None:
            metadata["vocabulary"] = json.dumps(vectorizer.get_vocabulary())
            metadata["text_vectorization"] = json.dumps(vectorizer.get_config())
        for key, value in metadata.items():
            entry = document.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(document, str(temporary))
        session = onnxruntime.InferenceSession(str(temporary), providers=["CPUExecutionProvider"])
        produced = np.concatenate(
            [session.run(None, {"input": sample[i : i + 7]})[0] for i in range(0, len(sample), 7)]
        )
        difference = float(np.abs(produced - expected).max())
        if not difference <= tolerance:
            raise ExportError(
                f"ONNX Runtime's outputs differ from hubel's by up to {difference:.3g} (tolerance {tolerance:g}) on "
                f"{len(sample)} examples; no file written. Report it with the model's summary."
            )
        os.replace(temporary, path)
    except ExportError:
        raise
    except (RuntimeError, ValueError, TypeError, OSError) as error:  # the exporter or ONNX Runtime refused it
        raise ExportError(
            f"{model.name}: ONNX export failed ({type(error).__name__}: {error}); no file written."
        ) from None
    finally:
        temporary.unlink(missing_ok=True)
        model.train(was_training)
    return ExportResult(path, difference, len(sample), time.perf_counter() - started)
