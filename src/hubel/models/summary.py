"""model.summary(): Keras's table (Layer (type) | Output Shape | Param # [| Connected to]) with
the same numbers, plus multiply-accumulates and activation memory per example. A functional
model lists its InputLayers, and a graph that is not a chain gets Keras's "Connected to"
column (`conv2d[0][0]`: layer, call, output). The rows are data (ModelSummary) for the CLI and
reports; render_summary is the one printer."""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from hubel.layers.core import InputLayer
from hubel.models.model import Model, class_name
from hubel.models.sequential import Sequential

__all__ = ["LayerRow", "ModelSummary", "readable_bytes", "readable_count", "render_summary", "summarize"]


@dataclass(frozen=True)
class LayerRow:
    name: str
    class_name: str
    output_shape: tuple[int | None, ...]
    params: int
    trainable_params: int
    macs: int  # multiply-accumulates per example
    output_bytes: int  # activation memory per example
    connected_to: tuple[str, ...] = ()  # the layers' outputs this one takes, as Keras prints them
    trainable: bool | None = None  # layer.trainable; None for a layer without weights ("-" in Keras)


@dataclass(frozen=True)
class ModelSummary:
    name: str
    input_shape: tuple[int | None, ...]
    rows: tuple[LayerRow, ...]
    total_params: int
    trainable_params: int
    non_trainable_params: int
    macs: int
    param_bytes: int
    activation_bytes: int
    show_connections: bool = False  # a graph that is not a chain
    test_time_augmentation: str | None = None  # predict's views of each input ("flip"), hubel's own

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(model: Model) -> ModelSummary:
    """The summary's numbers as data."""
    input_shape = model.input_shape
    connections = _connections(model)
    rows = []
    for layer in model.layers:
        output_shape = layer.output_shape
        element = next((p.element_size() for p in layer.parameters()), 4)
        shapes = output_shape if isinstance(output_shape, list) else [output_shape]
        rows.append(
            LayerRow(
                name=layer.name,
                class_name=class_name(layer),
                output_shape=output_shape,
                params=layer.count_params(),
                trainable_params=layer.count_trainable_params(),
                macs=layer.macs(),
                output_bytes=0 if isinstance(layer, InputLayer) else sum(math.prod(s[1:]) for s in shapes) * element,
                connected_to=connections.get(layer.name, ()),
                trainable=layer.trainable if layer.count_params() else None,
            )
        )
    total, trainable = model.count_params(), model.count_trainable_params()
    tensors = [*model.parameters(), *model.buffers()]
    return ModelSummary(
        name=model.name,
        input_shape=input_shape,
        rows=tuple(rows),
        total_params=total,
        trainable_params=trainable,
        non_trainable_params=total - trainable,
        macs=model.macs(),
        param_bytes=sum(t.numel() * t.element_size() for t in tensors),
        activation_bytes=sum(row.output_bytes for row in rows),
        show_connections=bool(connections) and not _is_chain(model),
        test_time_augmentation=model.test_time_augmentation,
    )


def _connections(model: Model) -> dict[str, tuple[str, ...]]:
    """For each layer of a functional model, the outputs it is called on: `name[node][tensor]`."""
    if isinstance(model, Sequential):
        return {}
    indices = model._node_indices()
    found: dict[str, tuple[str, ...]] = {tensor.layer_name: ("-",) for tensor in model.inputs}
    for node in model._nodes:
        names = tuple(f"{t.layer_name}[{indices[id(t.producer)]}][{t.index}]" for t in node.inputs)
        found[node.layer.name] = found.get(node.layer.name, ()) + names
    return found


def _is_chain(model: Model) -> bool:
    """Keras's "sequential-like": one input, every call takes one tensor, no layer called twice,
    no output used twice."""
    if len(model.inputs) != 1:
        return False
    layers, used = set(), set()
    for node in model._nodes:
        if len(node.inputs) != 1 or id(node.layer) in layers or id(node.inputs[0]) in used:
            return False
        layers.add(id(node.layer))
        used.add(id(node.inputs[0]))
    return True


def readable_bytes(size: float) -> str:
    """Keras's memory format (powers of 1024).

    Example:
        >>> readable_bytes(975144), readable_bytes(0)
        ('952.29 KB', '0.00 B')
    """
    units = ("B", "KB", "MB", "GB", "TB")
    index = 0
    while size >= 1024 and index < len(units) - 1:
        size, index = size / 1024, index + 1
    return f"{size:.2f} {units[index]}"


def readable_count(count: float) -> str:
    """Short count: 6.03 M, 1.25 G.

    Example:
        >>> readable_count(6_028_288), readable_count(950)
        ('6.03 M', '950')
    """
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count:g}"


def _shape(shape: Any) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(_shape(item) for item in shape) + "]"
    return (
        "("
        + ", ".join("None" if size is None else str(size) for size in shape)
        + ("," if len(shape) == 1 else "")
        + ")"
    )


def render_summary(summary: ModelSummary, show_trainable: bool = False, line_length: int | None = None) -> str:
    """The summary as plain text: the Keras table and footer, with hubel's extra columns;
    show_trainable adds Keras's "Trainable" column (Y, N, or - for a layer without weights)."""
    table = Table(box=box.HEAVY_HEAD, show_lines=True, pad_edge=True)
    table.add_column("Layer (type)", no_wrap=True)
    table.add_column("Output Shape", no_wrap=True)
    table.add_column("Param #", justify="right", no_wrap=True)
    table.add_column("MACs", justify="right", no_wrap=True)
    table.add_column("Output memory", justify="right", no_wrap=True)
    if summary.show_connections:
        table.add_column("Connected to", no_wrap=True)
    if show_trainable:
        table.add_column("Trainable", justify="center", no_wrap=True)
    for row in summary.rows:
        cells = [
            f"{row.name} ({row.class_name})",
            _shape(row.output_shape),
            f"{row.params:,}",
            f"{row.macs:,}",
            readable_bytes(row.output_bytes),
        ]
        if summary.show_connections:
            cells.append(",\n".join(row.connected_to))
        if show_trainable:
            cells.append("-" if row.trainable is None else "Y" if row.trainable else "N")
        table.add_row(*cells)
    buffer = io.StringIO()
    console = Console(file=buffer, width=line_length or 200, color_system=None, force_terminal=False, highlight=False)
    console.print(f'Model: "{summary.name}"')
    console.print(table)
    per_param = summary.param_bytes / summary.total_params if summary.total_params else 4
    footer = [
        f" Total params: {summary.total_params:,} ({readable_bytes(summary.total_params * per_param)})",
        f" Trainable params: {summary.trainable_params:,} ({readable_bytes(summary.trainable_params * per_param)})",
        f" Non-trainable params: {summary.non_trainable_params:,} "
        f"({readable_bytes(summary.non_trainable_params * per_param)})",
        f" MACs per example: {summary.macs:,} ({readable_count(summary.macs)})",
        f" Activation memory per example: {readable_bytes(summary.activation_bytes)}",
        f" Parameter memory: {summary.param_bytes / 2**20:.2f} MB",
    ]
    if summary.test_time_augmentation == "flip":
        footer.append(" Test-time augmentation: flip (predict and evaluate average each image with its mirror image)")
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n" + "\n".join(footer)
