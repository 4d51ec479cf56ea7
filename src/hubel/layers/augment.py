"""Keras-style augmentation layers: random transforms of whole batches while training, the
identity in evaluate/predict (model.eval()).

Each image of a batch gets its own random parameters. With seed=None a layer draws from
torch's global generator (so torch.manual_seed makes a run repeatable); with a seed it owns
a generator of its own. Pixel-value layers assume Keras's value_range=(0, 255): put them
before a Rescaling layer, as the Keras tutorials do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from hubel.errors import ConfigError
from hubel.layers.args import choice, number, positive_int
from hubel.layers.base import Layer, Shape, canonical_channels_last, register_layer
from hubel.registry import Registry

__all__ = [
    "RandomBrightness",
    "RandomContrast",
    "RandomCrop",
    "RandomFlip",
    "RandomRotation",
    "RandomTranslation",
    "RandomZoom",
    "augmentation",
    "list_augmentations",
]

_LAYOUT = "(height, width, channels)"
_FILL_MODES = ("reflect", "constant", "nearest", "wrap")


def factor_range(owner: str, name: str, value: Any, low: float | None = None) -> tuple[float, float]:
    """Keras's factor argument: a number f means (-f, f); a pair is (lower, upper)."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lower, upper = (number(owner, name, item) for item in value)
    else:
        magnitude = number(owner, name, value, low=0.0)
        lower, upper = -magnitude, magnitude
    if lower > upper or (low is not None and lower < low):
        bound = f" and no lower than {low}" if low is not None else ""
        raise ConfigError(
            f"{owner}: expected `{name}` to be a number or a (lower, upper) pair with lower <= upper{bound}. "
            f"Received: {name}={value!r}"
        )
    return lower, upper


def _keep_format(original: Tensor, result: Tensor) -> Tensor:
    """`result` in channels_last memory, with its standard strides, where `original` was."""
    if original.dim() == 4 and original.is_contiguous(memory_format=torch.channels_last):
        return canonical_channels_last(result.contiguous(memory_format=torch.channels_last))
    return result


class _RandomLayer(Layer):
    """Draws per-image random numbers; acts only in training mode."""

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ConfigError(
                f"{type(self).__name__}: expected `seed` to be an integer or None. Received: seed={seed!r}"
            )
        self.seed = seed
        self._generator: torch.Generator | None = None

    def uniform(self, count: int, bounds: tuple[float, float], like: Tensor) -> Tensor:
        """`count` numbers uniform in [lower, upper], on `like`'s device and dtype."""
        if self.seed is not None and self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        values = torch.rand(count, generator=self._generator)
        lower, upper = bounds
        return (lower + (upper - lower) * values).to(device=like.device, dtype=like.dtype)

    def get_rng_state(self) -> Tensor | None:
        """The state of this layer's own generator (None without a seed), for checkpoints."""
        return None if self._generator is None else self._generator.get_state()

    def set_rng_state(self, state: Tensor) -> None:
        if self.seed is not None:
            self._generator = torch.Generator().manual_seed(self.seed)
            self._generator.set_state(state)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return self.expect_rank(input_shape, 3, _LAYOUT)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W) -> (N, C, H', W')
        return _keep_format(x, self.augment(x) if self.training else self.inference(x))

    def augment(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def inference(self, x: Tensor) -> Tensor:
        return x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed}


@register_layer
class RandomFlip(_RandomLayer):
    """Flip each image left-right and/or up-down with probability 1/2.

    Example:
        >>> RandomFlip("horizontal").mode
        'horizontal'
    """

    def __init__(self, mode: str = "horizontal_and_vertical", seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed, **kwargs)
        self.mode = choice("RandomFlip", "mode", mode, ("horizontal", "vertical", "horizontal_and_vertical"))

    def augment(self, x: Tensor) -> Tensor:
        for axis, active in ((-1, "horizontal" in self.mode), (-2, "vertical" in self.mode)):
            if active:
                flip = self.uniform(x.shape[0], (0.0, 1.0), x) < 0.5
                x = torch.where(flip.view(-1, 1, 1, 1), x.flip(axis), x)
        return x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


class _AffineLayer(_RandomLayer):
    """Shared resampling for rotation, zoom and translation (bilinear by default)."""

    def __init__(
        self,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        fill_value: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed, **kwargs)
        owner = type(self).__name__
        self.fill_mode = choice(owner, "fill_mode", fill_mode, _FILL_MODES)
        self.interpolation = choice(owner, "interpolation", interpolation, ("bilinear", "nearest"))
        self.fill_value = number(owner, "fill_value", fill_value)

    def matrices(self, x: Tensor) -> Tensor:
        """(N, 2, 3) maps from output to input coordinates, in affine_grid's normalised units."""
        raise NotImplementedError

    def augment(self, x: Tensor) -> Tensor:
        grid = F.affine_grid(self.matrices(x), list(x.shape), align_corners=False)
        if self.fill_mode == "wrap":
            grid = torch.remainder(grid + 1.0, 2.0) - 1.0
        padding = {"reflect": "reflection", "nearest": "border"}.get(self.fill_mode, "zeros")
        out = F.grid_sample(x, grid, mode=self.interpolation, padding_mode=padding, align_corners=False)
        if self.fill_mode == "constant" and self.fill_value:
            inside = F.grid_sample(torch.ones_like(x[:, :1]), grid, mode=self.interpolation, align_corners=False)
            out = out + self.fill_value * (1.0 - inside)
        return out

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "fill_mode": self.fill_mode,
            "interpolation": self.interpolation,
            "fill_value": self.fill_value,
        }


@register_layer
class RandomRotation(_AffineLayer):
    """Rotate each image by factor × 2π radians (a number f means ±f; positive is counter-clockwise).

    Example:
        >>> RandomRotation(0.1).factor  # up to ±36 degrees
        (-0.1, 0.1)
    """

    def __init__(self, factor: Any, fill_mode: str = "reflect", interpolation: str = "bilinear", **kwargs: Any) -> None:
        super().__init__(fill_mode, interpolation, **kwargs)
        self.factor = factor_range("RandomRotation", "factor", factor)

    def matrices(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        angle = self.uniform(x.shape[0], self.factor, x) * (2 * math.pi)
        cos, sin = torch.cos(angle), torch.sin(angle)
        zero = torch.zeros_like(angle)
        # rotation in pixel space, written in coordinates normalised by half the width and height
        return torch.stack(
            [
                torch.stack([cos, -sin * height / width, zero], dim=1),
                torch.stack([sin * width / height, cos, zero], dim=1),
            ],
            dim=1,
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": list(self.factor)}


@register_layer
class RandomZoom(_AffineLayer):
    """Zoom each image: factor h in (lower, upper) shows (1 + h) times the height; positive zooms
    out, negative zooms in, as in Keras. width_factor=None keeps the aspect ratio.

    Example:
        >>> RandomZoom(0.2).height_factor
        (-0.2, 0.2)
    """

    def __init__(
        self,
        height_factor: Any,
        width_factor: Any = None,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        **kwargs: Any,
    ) -> None:
        super().__init__(fill_mode, interpolation, **kwargs)
        self.height_factor = factor_range("RandomZoom", "height_factor", height_factor, low=-1.0)
        self.width_factor = (
            None if width_factor is None else factor_range("RandomZoom", "width_factor", width_factor, low=-1.0)
        )

    def matrices(self, x: Tensor) -> Tensor:
        count = x.shape[0]
        zoom_y = 1.0 + self.uniform(count, self.height_factor, x)
        zoom_x = zoom_y if self.width_factor is None else 1.0 + self.uniform(count, self.width_factor, x)
        zero = torch.zeros_like(zoom_y)
        return torch.stack([torch.stack([zoom_x, zero, zero], 1), torch.stack([zero, zoom_y, zero], 1)], 1)

    def get_config(self) -> dict[str, Any]:
        width = None if self.width_factor is None else list(self.width_factor)
        return {**super().get_config(), "height_factor": list(self.height_factor), "width_factor": width}


@register_layer
class RandomTranslation(_AffineLayer):
    """Shift each image by a fraction of its height and width (positive: down and right).

    Example:
        >>> RandomTranslation(0.1, (-0.2, 0.3)).width_factor
        (-0.2, 0.3)
    """

    def __init__(
        self,
        height_factor: Any,
        width_factor: Any,
        fill_mode: str = "reflect",
        interpolation: str = "bilinear",
        **kwargs: Any,
    ) -> None:
        super().__init__(fill_mode, interpolation, **kwargs)
        self.height_factor = factor_range("RandomTranslation", "height_factor", height_factor)
        self.width_factor = factor_range("RandomTranslation", "width_factor", width_factor)

    def matrices(self, x: Tensor) -> Tensor:
        count = x.shape[0]
        shift_y = -2.0 * self.uniform(count, self.height_factor, x)  # output(y) = input(y − dy)
        shift_x = -2.0 * self.uniform(count, self.width_factor, x)
        one, zero = torch.ones_like(shift_x), torch.zeros_like(shift_x)
        return torch.stack([torch.stack([one, zero, shift_x], 1), torch.stack([zero, one, shift_y], 1)], 1)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "height_factor": list(self.height_factor),
            "width_factor": list(self.width_factor),
        }


@register_layer
class RandomCrop(_RandomLayer):
    """Crop a random height × width window, after padding each side by `padding` pixels (the
    CIFAR-10 recipe: RandomCrop(32, 32, padding=4)). In evaluate/predict: the centre window.

    Example:
        >>> RandomCrop(32, 32, padding=4).compute_output_shape((32, 32, 3))
        (32, 32, 3)
    """

    def __init__(
        self,
        height: int,
        width: int,
        padding: int = 0,
        fill_mode: str = "constant",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(seed, **kwargs)
        self.height = positive_int("RandomCrop", "height", height)
        self.width = positive_int("RandomCrop", "width", width)
        if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
            raise ConfigError(f"RandomCrop: expected `padding` to be an integer >= 0. Received: padding={padding!r}")
        self.padding = padding
        self.fill_mode = choice("RandomCrop", "fill_mode", fill_mode, ("constant", "reflect"))

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        height, width, channels = self.expect_rank(input_shape, 3, _LAYOUT)
        if self.height > height + 2 * self.padding or self.width > width + 2 * self.padding:
            raise self.shape_error(
                input_shape,
                f"a {self.height}x{self.width} crop does not fit in {height}x{width} padded by {self.padding}",
                "Crop less, or pad more with padding=...",
            )
        return (self.height, self.width, channels)

    def augment(self, x: Tensor) -> Tensor:
        if self.padding:
            mode = "constant" if self.fill_mode == "constant" else "reflect"
            x = F.pad(x, [self.padding] * 4, mode=mode)
        count, height, width = x.shape[0], x.shape[-2], x.shape[-1]
        top = (self.uniform(count, (0.0, 1.0), x) * (height - self.height + 1)).long().clamp(max=height - self.height)
        left = (self.uniform(count, (0.0, 1.0), x) * (width - self.width + 1)).long().clamp(max=width - self.width)
        rows = (top[:, None] + torch.arange(self.height, device=x.device))[:, None, :, None]  # (N, 1, h, 1)
        cols = (left[:, None] + torch.arange(self.width, device=x.device))[:, None, None, :]  # (N, 1, 1, w)
        batch = torch.arange(count, device=x.device)[:, None, None, None]
        channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        return x[batch, channel, rows, cols]

    def inference(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        if (height, width) == (self.height, self.width):
            return x
        if self.height > height or self.width > width:
            x = F.pad(x, [self.padding] * 4)
            height, width = x.shape[-2:]
        top, left = (height - self.height) // 2, (width - self.width) // 2
        return x[..., top : top + self.height, left : left + self.width]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "height": self.height,
            "width": self.width,
            "padding": self.padding,
            "fill_mode": self.fill_mode,
        }


class _ValueLayer(_RandomLayer):
    def __init__(self, factor: Any, value_range: Any = (0, 255), seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed, **kwargs)
        owner = type(self).__name__
        if not isinstance(value_range, (list, tuple)) or len(value_range) != 2:
            raise ConfigError(
                f"{owner}: expected `value_range` to be (low, high). Received: value_range={value_range!r}"
            )
        low, high = (number(owner, "value_range", item) for item in value_range)
        if low >= high:
            raise ConfigError(f"{owner}: expected `value_range` low < high. Received: value_range={value_range!r}")
        self.value_range = (low, high)
        self.factor = self.parse_factor(factor)

    def parse_factor(self, factor: Any) -> tuple[float, float]:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": list(self.factor), "value_range": list(self.value_range)}


@register_layer
class RandomContrast(_ValueLayer):
    """Scale each image's deviation from its per-channel mean by a factor in [1 − lower, 1 + upper],
    clipped to value_range.

    Example:
        >>> RandomContrast(0.2).factor
        (0.2, 0.2)
    """

    def parse_factor(self, factor: Any) -> tuple[float, float]:
        if isinstance(factor, (list, tuple)) and len(factor) == 2:
            lower, upper = (number("RandomContrast", "factor", item, low=0.0) for item in factor)
        else:
            lower = upper = number("RandomContrast", "factor", factor, low=0.0)
        if lower > 1.0:
            raise ConfigError(f"RandomContrast: expected `factor` lower bound <= 1. Received: factor={factor!r}")
        return lower, upper

    def augment(self, x: Tensor) -> Tensor:
        lower, upper = self.factor
        scale = self.uniform(x.shape[0], (1.0 - lower, 1.0 + upper), x).view(-1, 1, 1, 1)
        mean = x.mean(dim=(-2, -1), keepdim=True)
        return ((x - mean) * scale + mean).clamp(*self.value_range)


@register_layer
class RandomBrightness(_ValueLayer):
    """Add to each image a delta in factor × (value_range width), clipped to value_range.

    Example:
        >>> RandomBrightness(0.2).factor
        (-0.2, 0.2)
    """

    def parse_factor(self, factor: Any) -> tuple[float, float]:
        lower, upper = factor_range("RandomBrightness", "factor", factor)
        if lower < -1.0 or upper > 1.0:
            raise ConfigError(f"RandomBrightness: expected `factor` within [-1, 1]. Received: factor={factor!r}")
        return lower, upper

    def augment(self, x: Tensor) -> Tensor:
        low, high = self.value_range
        delta = self.uniform(x.shape[0], self.factor, x).view(-1, 1, 1, 1) * (high - low)
        return (x + delta).clamp(low, high)


_PRESETS: Registry[Callable[[], Layer]] = Registry("augmentation", "hubel.layers.augment.list_augmentations()")
for _name, _make in {
    "flip": lambda: RandomFlip("horizontal"),
    "shift": lambda: RandomTranslation(1 / 16, 1 / 16, interpolation="nearest"),  # whole pixels: no blur
    "rotate": lambda: RandomRotation(0.05),
    "zoom": lambda: RandomZoom(0.1),
    "contrast": lambda: RandomContrast(0.2),
}.items():
    _PRESETS.register(_name)(_make)


def list_augmentations() -> list[str]:
    """The names augmentation() accepts."""
    return _PRESETS.names()


def augmentation(names: str) -> list[Layer]:
    """Augmentation layers from comma-separated names (what `hubel train --augment` takes):
    flip (left-right), shift (by whole pixels, up to 1/16 of the height and width, reflected at
    the border, as the fast CIFAR-10 trainers crop), rotate (up to 18°), zoom (±10%), contrast (±20%).

    Example:
        >>> [type(layer).__name__ for layer in augmentation("flip,shift")]
        ['RandomFlip', 'RandomTranslation']
    """
    chosen = [name.strip().lower() for name in names.split(",") if name.strip()]
    if not chosen:
        raise ConfigError(f"expected augmentation names, comma-separated (e.g. flip,shift). Received: {names!r}")
    return [_PRESETS.get(name)() for name in dict.fromkeys(chosen)]
