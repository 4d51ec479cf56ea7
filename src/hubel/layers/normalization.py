"""BatchNormalization with Keras's defaults and Keras's parameter accounting."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from hubel.errors import ConfigError
from hubel.layers.args import number
from hubel.layers.base import Layer, Shape, register_layer
from hubel.layers.initializers import INITIALIZERS

__all__ = ["BatchNormalization"]


@register_layer
class BatchNormalization(Layer):
    """Normalise each channel (Keras's last axis) by batch statistics while training and by
    moving statistics otherwise.

    momentum is Keras's: moving = moving·momentum + batch·(1 − momentum), with the batch's biased
    variance (Keras's, where torch's running_var takes the unbiased one); a batch with one value
    per channel trains too (mean = the value, variance 0), as in Keras. The moving mean and
    variance are non-trainable weights and count in count_params(), as in Keras. A layer set
    to trainable=False runs in inference mode, as Keras does for fine-tuning.

    `synchronized` (set by fit(..., sync_batchnorm=True) for the length of a distributed fit):
    while training on several processes, the batch statistics are those of the whole global
    batch, summed over the processes with torch.distributed's differentiable all_reduce (torch's
    own SyncBatchNorm runs on GPUs only; this runs on CPUs too).

    Example:
        >>> bn = BatchNormalization()
        >>> bn.build((26, 26, 64)); bn.count_params(), bn.count_trainable_params()
        (256, 128)
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer: str = "zeros",
        gamma_initializer: str = "ones",
        moving_mean_initializer: str = "zeros",
        moving_variance_initializer: str = "ones",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if axis != -1:
            raise ConfigError(
                "BatchNormalization: only axis=-1 (the channels axis, channels last) is supported. "
                f"Received: axis={axis!r}"
            )
        self.axis = axis
        self.synchronized = False
        self.momentum = number("BatchNormalization", "momentum", momentum, 0.0, 1.0)
        self.epsilon = number("BatchNormalization", "epsilon", epsilon, low=0.0)
        self.center, self.scale = bool(center), bool(scale)
        for initializer in (beta_initializer, gamma_initializer, moving_mean_initializer, moving_variance_initializer):
            INITIALIZERS.get(initializer)
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer

    def create_weights(self, input_shape: Shape) -> None:
        channels = (input_shape[-1],)
        self.register_parameter("gamma", None)
        self.register_parameter("beta", None)
        if self.scale:
            self.add_weight("gamma", channels, self.gamma_initializer)
        if self.center:
            self.add_weight("beta", channels, self.beta_initializer)
        self.add_state("moving_mean", channels, self.moving_mean_initializer)
        self.add_state("moving_variance", channels, self.moving_variance_initializer)

    def forward(self, x: Tensor) -> Tensor:  # (N, C, ...) -> same
        if not (self.training and self.trainable):
            return F.batch_norm(
                x, self.moving_mean, self.moving_variance, self.gamma, self.beta, False, 0.0, self.epsilon
            )
        if self.synchronized and torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            return self._forward_synchronized(x)
        count = x.numel() // x.shape[1]  # values per channel in this batch
        if count == 1:  # one value per channel: Keras's mean is the value, its variance 0 (torch refuses)
            with torch.no_grad():
                self.moving_mean.mul_(self.momentum).add_(x.reshape(-1).float(), alpha=1.0 - self.momentum)
                self.moving_variance.mul_(self.momentum)
            # x − mean(x) is 0 with a zero gradient, as in Keras (a detached mean would pass x's
            # gradient back, scaled by 1/√ε)
            shape = (1, -1) + (1,) * (x.dim() - 2)
            y = (x - x.mean(dim=0, keepdim=True)) / math.sqrt(self.epsilon)
            if self.gamma is not None:
                y = y * self.gamma.view(shape)
            return y + self.beta.view(shape) if self.beta is not None else y
        variance = self.moving_variance.clone()  # torch updates this copy; the autograd graph keeps it
        y = F.batch_norm(x, self.moving_mean, variance, self.gamma, self.beta, True, 1.0 - self.momentum, self.epsilon)
        with torch.no_grad():
            # torch moved the variance towards the unbiased batch variance, Keras towards the biased
            # one ((count − 1) / count of it): take the difference back out, exactly.
            self.moving_variance.copy_(variance - (variance - self.momentum * self.moving_variance) / count)
        return y

    def _forward_synchronized(self, x: Tensor) -> Tensor:  # (N, C, ...) -> same
        """Normalise by the global batch's mean and biased variance: each process's per-channel
        sums of x and x² and its count, summed over the processes (gradients flow back through the
        sum), then the moving statistics move towards them as Keras's do."""
        from torch.distributed.nn.functional import all_reduce

        axes = [0, *range(2, x.dim())]
        values = x.float()
        local = torch.cat(
            [values.sum(axes), (values * values).sum(axes), values.new_full((1,), x.numel() / x.shape[1])]
        )
        total = all_reduce(local)
        channels, count = x.shape[1], total[-1]
        mean = total[:channels] / count
        variance = (total[channels : 2 * channels] / count - mean * mean).clamp(min=0.0)
        with torch.no_grad():
            self.moving_mean.mul_(self.momentum).add_(mean.detach(), alpha=1.0 - self.momentum)
            self.moving_variance.mul_(self.momentum).add_(variance.detach(), alpha=1.0 - self.momentum)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        y = (values - mean.view(shape)) * torch.rsqrt(variance.view(shape) + self.epsilon)
        if self.gamma is not None:
            y = y * self.gamma.view(shape)
        y = y + self.beta.view(shape) if self.beta is not None else y
        return y.to(x.dtype)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": self.beta_initializer,
            "gamma_initializer": self.gamma_initializer,
            "moving_mean_initializer": self.moving_mean_initializer,
            "moving_variance_initializer": self.moving_variance_initializer,
        }
