"""Export: ONNX graphs checked against the model before they are written (hubel export)."""

from hubel.export.onnx import DEFAULT_TOLERANCE, ExportError, ExportResult, export_onnx

__all__ = ["DEFAULT_TOLERANCE", "ExportError", "ExportResult", "export_onnx"]
