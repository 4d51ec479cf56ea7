"""Hand-made convolution kernels over images, as the MNIST tutorials show them: a vertical-edge
filter lights up the vertical strokes of a digit.

    filtered = apply_kernel(x_train[:4], "vertical_edge")
    show_kernel(x_train[:4], "sobel_x", path="edges.png")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hubel.errors import DataError
from hubel.inspect.plots import picture_axes, plt, save_figure
from hubel.registry import Registry

__all__ = ["KERNELS", "apply_kernel", "list_kernels", "show_kernel"]

KERNELS: Registry[np.ndarray] = Registry("kernel", "hubel.inspect.list_kernels()")
for _name, _kernel in {
    "vertical_edge": [[1, 0, -1], [1, 0, -1], [1, 0, -1]],
    "horizontal_edge": [[1, 1, 1], [0, 0, 0], [-1, -1, -1]],
    "sobel_x": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "sobel_y": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "box_blur": np.full((3, 3), 1 / 9),
    "gaussian_blur": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16,
}.items():
    KERNELS.register(_name)(np.asarray(_kernel, dtype=np.float32))


def list_kernels() -> list[str]:
    """Names apply_kernel accepts."""
    return KERNELS.names()


def _kernel(kernel: str | Any) -> np.ndarray:
    array = KERNELS.get(kernel) if isinstance(kernel, str) else np.asarray(kernel, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] % 2 == 0 or array.shape[1] % 2 == 0:
        raise DataError(f"a kernel must be a 2-D array with odd sides, such as 3x3. Received: shape {array.shape}")
    return array


def apply_kernel(images: Any, kernel: str | Any) -> np.ndarray:
    """Convolve each image (and each channel) with `kernel`, 'same' padding: the output has the
    input's shape, as float32. images: (H, W), (H, W, C), (N, H, W) or (N, H, W, C).

    Like Keras's Conv2D (and unlike the textbook definition) the kernel is not flipped.

    Example:
        >>> bar = np.zeros((5, 5)); bar[:, 2] = 1.0
        >>> apply_kernel(bar, "vertical_edge")[2].tolist()  # dark-to-bright edge < 0, bright-to-dark > 0
        [0.0, -3.0, 0.0, 3.0, 0.0]
    """
    array = np.asarray(images, dtype=np.float32)
    weights = torch.from_numpy(_kernel(kernel))
    if array.ndim == 2:
        batch = array[None, ..., None]
    elif array.ndim == 3 and array.shape[-1] in (1, 3, 4) and array.shape[0] > 4:
        batch = array[None]  # one (H, W, C) image
    elif array.ndim == 3:
        batch = array[..., None]  # (N, H, W) grayscale
    elif array.ndim == 4:
        batch = array
    else:
        raise DataError(f"expected images shaped (H, W), (H, W, C), (N, H, W) or (N, H, W, C). Received: {array.shape}")
    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)  # (N, C, H, W)
    channels = x.shape[1]
    stacked = weights.expand(channels, 1, *weights.shape).contiguous()  # the same kernel for every channel
    out = F.conv2d(x, stacked, padding=(weights.shape[0] // 2, weights.shape[1] // 2), groups=channels)
    return out.permute(0, 2, 3, 1).numpy().reshape(array.shape)


def show_kernel(
    images: Any, kernel: str | Any, n: int = 4, path: str | Path | None = None, title: str | None = None
) -> Any:
    """Originals above, filtered below (with a diverging colour map centred at 0), like the tutorial."""
    array = np.asarray(images)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4)):
        array = array[None]
    array = array[:n]
    filtered = apply_kernel(array, kernel)
    name = kernel if isinstance(kernel, str) else "custom kernel"
    figure, axes = plt.subplots(2, len(array), figsize=(2.2 * len(array), 4.6), squeeze=False)
    for column in range(len(array)):
        original, response = array[column], filtered[column]
        if original.ndim == 3 and original.shape[-1] == 1:
            original, response = original[..., 0], response[..., 0]
        if response.ndim == 3:
            response = response.mean(axis=-1)  # colour images: the response summed over channels
        axes[0, column].imshow(original, cmap="gray" if original.ndim == 2 else None)
        limit = float(np.abs(response).max()) or 1.0
        shown = axes[1, column].imshow(response, cmap="RdBu_r", vmin=-limit, vmax=limit)
        picture_axes(axes[0, column], axes[1, column])
    axes[0, 0].set_title("original", fontsize=10, loc="left")
    axes[1, 0].set_title(name, fontsize=10, loc="left")
    figure.colorbar(shown, ax=axes[1, :].tolist(), shrink=0.8, label="response")
    figure.suptitle(title or f"{name} applied to {len(array)} image(s)")
    return save_figure(figure, path)
