"""Grad-CAM: which part of an image made the model choose a class (Selvaraju et al., 2017).

The target layer's activations are weighted by the mean gradient of the class score over each
channel, summed, passed through ReLU, upsampled to the image and scaled to [0, 1]. The layer
is chosen automatically — the last one whose output is still a spatial map larger than 1x1 —
or named. Hooks are always released, even when the forward pass fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from hubel.errors import ConfigError
from hubel.inspect.filters import find_layer, overlay
from hubel.layers.base import Layer
from hubel.models.model import walk_layers
from hubel.train.losses import logits_of

__all__ = ["GradCam", "grad_cam", "heatmap_overlay", "show_grad_cam"]


def _spatial_layer(model: Any) -> Layer:
    """The last layer whose output is a spatial map larger than 1x1 and depends on learned
    weights (so not a Rescaling or augmentation layer in front of the first conv)."""
    layers = walk_layers(model)  # the layers inside a nested (pretrained) model too
    first_weighted = next((i for i, layer in enumerate(layers) if any(True for _ in layer.parameters())), len(layers))
    candidates = [
        layer
        for layer in layers[first_weighted:]
        if len(layer.output_shape) == 4 and layer.output_shape[1] * layer.output_shape[2] > 1
    ]
    if not candidates:
        raise ConfigError(
            "Grad-CAM needs a layer with a spatial output (a conv or pooling layer); this model has none."
        )
    return candidates[-1]


class GradCam:
    """Hooks on one layer that capture its activations and their gradients; use as a context
    manager, or call release()."""

    def __init__(self, model: Any, layer: str | nn.Module | None = None) -> None:
        self.model = model
        self.layer = find_layer(model, layer) if isinstance(layer, str) else layer or _spatial_layer(model)
        self.activations: torch.Tensor | None = None
        self.gradients: torch.Tensor | None = None
        self._handles = [self.layer.register_forward_hook(self._keep)]

    def _keep(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self.activations = output
        if not output.requires_grad:
            name = getattr(module, "name", type(module).__name__)
            raise ConfigError(f"Grad-CAM: the output of {name!r} does not depend on any weight. Name a conv layer.")
        output.register_hook(self._keep_gradient)

    def _keep_gradient(self, gradient: torch.Tensor) -> None:
        self.gradients = gradient

    def release(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> GradCam:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __call__(self, image: Any, class_index: int | None = None) -> tuple[np.ndarray, int]:
        """(heatmap at the image's height x width in [0, 1], the class explained)."""
        was_training = self.model.training
        frozen = [p for p in self.model.parameters() if not p.requires_grad]
        for parameter in frozen:  # a frozen (transfer-learning) model still needs gradients to flow
            parameter.requires_grad_(True)
        self.model.eval()
        try:
            with torch.enable_grad():
                output = self.model(np.asarray(image)[None])
                scores = logits_of(output)
                scores = output if scores is None else scores  # explain the logit, not the probability
                if scores.shape[-1] == 1:  # one sigmoid unit: class 1 is the positive score, class 0 its negative
                    chosen = int(class_index if class_index is not None else int(scores.item() > 0))
                    score = scores[0, 0] if chosen == 1 else -scores[0, 0]
                else:
                    chosen = int(class_index if class_index is not None else scores[0].argmax())
                    score = scores[0, chosen]
                self.model.zero_grad(set_to_none=True)
                score.backward()
        finally:
            self.model.train(was_training)
            for parameter in frozen:
                parameter.requires_grad_(False)
            self.model.zero_grad(set_to_none=True)
        if self.activations is None or self.gradients is None:
            raise ConfigError(f"Grad-CAM: layer {getattr(self.layer, 'name', self.layer)!r} was not used by the model.")
        weights = self.gradients[0].mean(dim=(1, 2), keepdim=True)  # (C, 1, 1)
        cam = F.relu((weights * self.activations[0]).sum(dim=0)).detach()  # (H', W')
        height, width = np.asarray(image).shape[:2]
        cam = F.interpolate(cam[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
        peak = float(cam.max())
        return (cam / peak if peak > 0 else cam).cpu().numpy(), chosen


def grad_cam(
    model: Any, image: Any, class_index: int | None = None, layer: str | nn.Module | None = None
) -> np.ndarray:
    """The Grad-CAM heatmap (H, W) in [0, 1] for one image and a class (default: the predicted one)."""
    with GradCam(model, layer) as cam:
        return cam(image, class_index)[0]


def heatmap_overlay(image: Any, heatmap: Any, alpha: float = 0.45, min_side: int = 224) -> np.ndarray:
    """The image with a [0, 1] heatmap blended on top in the jet colours, as (H', W', 3) uint8
    pixels (no figure: for pages and files). Small images are enlarged, in whole pixels, until
    their shorter side reaches min_side, so a 28x28 digit stays sharp.

    Example:
        >>> heatmap_overlay(np.zeros((28, 28, 1), np.uint8), np.ones((28, 28))).shape
        (224, 224, 3)
    """
    from matplotlib import colormaps
    from PIL import Image

    picture = np.asarray(image)
    if picture.ndim == 3 and picture.shape[-1] == 1:
        picture = picture[..., 0]
    picture = np.clip(picture, 0, 255).astype(np.uint8)
    if picture.ndim == 2:
        picture = np.repeat(picture[..., None], 3, axis=-1)
    height, width = picture.shape[:2]
    scale = max(1, -(-min_side // max(1, min(height, width))))
    picture = np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1)
    heat = Image.fromarray(np.clip(np.asarray(heatmap, dtype=np.float32), 0, 1) * 255).convert("L")
    heat = np.asarray(heat.resize((width * scale, height * scale), Image.Resampling.BILINEAR))
    colours = colormaps["jet"](np.arange(256))[:, :3] * 255  # (256, 3)
    blended = (1 - alpha) * picture + alpha * colours[heat]
    return np.round(blended).astype(np.uint8)


def show_grad_cam(
    model: Any,
    image: Any,
    class_index: int | None = None,
    layer: str | nn.Module | None = None,
    class_names: Any = None,
    path: str | Path | None = None,
) -> Figure:
    """The image with its Grad-CAM heatmap on top, titled with the class explained."""
    with GradCam(model, layer) as cam:
        heatmap, chosen = cam(image, class_index)
        name = class_names[chosen] if class_names is not None else str(chosen)
        return overlay(image, heatmap, path=path, title=f"Grad-CAM for {name!r} ({cam.layer.name})")
