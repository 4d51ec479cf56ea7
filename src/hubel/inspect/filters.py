"""What the convolution layers learned and what they see: kernel grids and feature maps.

show_filters(model)                       # the first Conv2D's kernels
show_feature_maps(model, image, "conv2d_1")
overlay(image, feature_maps(model, image)[..., 3])
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from hubel.errors import ConfigError
from hubel.inspect.plots import picture_axes, plt, save_figure
from hubel.layers.conv import Conv2D, DepthwiseConv2D
from hubel.models.model import walk_layers

__all__ = ["feature_maps", "find_layer", "overlay", "show_feature_maps", "show_filters"]


def find_layer(
    model: Any, layer: str | nn.Module | None, kind: type | tuple[type, ...] = nn.Module, last: bool = False
) -> Any:
    """A layer by name or object (inside nested models too); without one, the first (or last)
    layer of `kind`."""
    if isinstance(layer, nn.Module):
        return layer
    layers = walk_layers(model) if hasattr(model, "layers") else list(model.modules())  # nested models opened
    if isinstance(layer, str):
        found = next((candidate for candidate in layers if getattr(candidate, "name", None) == layer), None)
        return found if found is not None else model.get_layer(layer)  # get_layer's error suggests close names
    candidates = [module for module in layers if isinstance(module, kind)]
    if not candidates:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"the model has no {names} layer to show.")
    return candidates[-1] if last else candidates[0]


def _grid(count: int, columns: int | None = None) -> tuple[int, int]:
    columns = columns or min(8, math.ceil(math.sqrt(count)))
    return math.ceil(count / columns), columns


def _mosaic(tiles: np.ndarray, columns: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Tiles (n, h, w) or RGB (n, h, w, 3) laid out in rows of `columns`, a gap of a quarter tile
    (at least a pixel) between them, as one array to draw with one imshow: NaN in the gaps of a
    single-channel mosaic, alpha 0 in those of an RGBA one. Returns it and each tile's top-left
    (row, column). One image instead of one axes a tile drew the report's grids 3x as fast.

    Example:
        >>> picture, corners = _mosaic(np.ones((3, 4, 4)), columns=2)
        >>> picture.shape, corners
        ((9, 9), [(0, 0), (0, 5), (5, 0)])
    """
    count, height, width = tiles.shape[:3]
    rows = math.ceil(count / columns)
    gap = max(1, height // 4)
    shape = (rows * (height + gap) - gap, columns * (width + gap) - gap)
    picture = np.zeros((*shape, 4)) if tiles.ndim == 4 else np.full(shape, np.nan)
    corners = [((index // columns) * (height + gap), (index % columns) * (width + gap)) for index in range(count)]
    for tile, (top, left) in zip(tiles, corners):
        if tiles.ndim == 4:
            picture[top : top + height, left : left + width, :3] = tile
            picture[top : top + height, left : left + width, 3] = 1.0
        else:
            picture[top : top + height, left : left + width] = tile
    return picture, corners


def _draw_mosaic(axis: Any, tiles: np.ndarray, columns: int, **imshow: Any) -> Any:
    """The tiles as one mosaic on `axis`, each numbered above its top edge."""
    picture, corners = _mosaic(tiles, columns)
    shown = axis.imshow(picture, interpolation="nearest", **imshow)
    width = tiles.shape[2]
    for index, (top, left) in enumerate(corners):
        axis.text(left + (width - 1) / 2, top - 0.6, str(index), ha="center", va="bottom", fontsize=7)
    picture_axes(axis)
    return shown


def show_filters(
    model: Any, layer: str | nn.Module | None = None, max_filters: int = 64, path: str | Path | None = None
) -> Figure:
    """The kernels of a conv layer (the first by default) as a grid of small images: RGB kernels
    in colour, others averaged over their input channels; each scaled to its own range."""
    conv = find_layer(model, layer, (Conv2D, DepthwiseConv2D))
    kernels = conv.kernel.detach().float().cpu().numpy()[:max_filters]  # (filters, in, kh, kw)
    colour = kernels.shape[1] == 3
    images = kernels.transpose(0, 2, 3, 1) if colour else kernels.mean(axis=1)
    rows, columns = _grid(len(images))
    low = images.min(axis=tuple(range(1, images.ndim)), keepdims=True)
    spread = images.max(axis=tuple(range(1, images.ndim)), keepdims=True) - low
    scaled = np.divide(images - low, spread, out=np.zeros_like(images), where=spread > 0)  # each to its own range
    figure, axis = plt.subplots(figsize=(1.3 * columns, 1.3 * rows + 0.6))
    _draw_mosaic(axis, scaled, columns, **({} if colour else {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}))
    how = "RGB" if colour else f"mean over {conv.kernel.shape[1]} input channels"
    size = "x".join(str(k) for k in conv.kernel.shape[2:])
    axis.set_title(f"{conv.name}: {len(images)} of {conv.kernel.shape[0]} filters, {size}, {how}", pad=14)
    return save_figure(figure, path)


def feature_maps(model: Any, image: Any, layer: str | nn.Module | None = None) -> np.ndarray:
    """The activations of `layer` (the first conv layer by default) for one image, as (H, W, C)."""
    target = find_layer(model, layer, (Conv2D, DepthwiseConv2D))
    captured: list[torch.Tensor] = []
    handle = target.register_forward_hook(lambda module, inputs, output: captured.append(output.detach()))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(np.asarray(image)[None])
    finally:
        handle.remove()
        model.train(was_training)
    output = captured[0][0].float().cpu()  # (C, H, W)
    return output.permute(1, 2, 0).numpy() if output.dim() == 3 else output.numpy()


def show_feature_maps(
    model: Any, image: Any, layer: str | nn.Module | None = None, max_maps: int = 64, path: str | Path | None = None
) -> Figure:
    """Each channel of a layer's output for one image, as a heatmap grid (shared colour scale)."""
    maps = feature_maps(model, image, layer)
    target = find_layer(model, layer, (Conv2D, DepthwiseConv2D))
    count = min(max_maps, maps.shape[-1])
    rows, columns = _grid(count)
    figure, axis = plt.subplots(figsize=(1.5 * columns, 1.5 * rows + 0.7))
    tiles = maps[..., :count].transpose(2, 0, 1)  # (count, H, W)
    high = float(tiles.max()) or 1.0
    shown = _draw_mosaic(axis, tiles, columns, cmap="inferno", vmin=0 if maps.min() >= 0 else None, vmax=high)
    figure.colorbar(shown, ax=axis, shrink=0.6, label="activation")
    axis.set_title(f"{target.name}: {count} of {maps.shape[-1]} feature maps, {maps.shape[0]}x{maps.shape[1]}", pad=14)
    return save_figure(figure, path)


def overlay(
    image: Any, heatmap: Any, alpha: float = 0.45, path: str | Path | None = None, title: str | None = None
) -> Figure:
    """One heatmap (a feature map, a Grad-CAM) stretched over the image it came from."""
    picture = np.asarray(image)
    if picture.ndim == 3 and picture.shape[-1] == 1:
        picture = picture[..., 0]
    heat = np.asarray(heatmap, dtype=np.float32)
    figure, axis = plt.subplots(figsize=(4, 4))
    axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
    extent = (-0.5, picture.shape[1] - 0.5, picture.shape[0] - 0.5, -0.5)
    shown = axis.imshow(heat, cmap="jet", alpha=alpha, extent=extent, interpolation="bilinear")
    figure.colorbar(shown, ax=axis, shrink=0.8)
    picture_axes(axis)
    if title:
        axis.set_title(title)
    return save_figure(figure, path)
