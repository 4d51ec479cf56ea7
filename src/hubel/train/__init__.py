"""The training engine (any torch.nn.Module): losses, metrics, optimizers, callbacks, history,
checkpoints and resume."""

from hubel.train.callbacks import (
    Callback,
    CallbackError,
    CSVLogger,
    EarlyStopping,
    FreezeWeights,
    LearningRateScheduler,
    Lookahead,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TrainingBudget,
)
from hubel.train.checkpoint import CheckpointError
from hubel.train.history import History
from hubel.train.losses import Loss, get_loss, list_losses
from hubel.train.metrics import Metric, get_metric, list_metrics
from hubel.train.optimizers import SGD, Adam, AdamW, Optimizer, RMSprop, get_optimizer, list_optimizers
from hubel.train.trainer import Trainer, resolve_device, set_seed

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CSVLogger",
    "Callback",
    "CallbackError",
    "CheckpointError",
    "EarlyStopping",
    "FreezeWeights",
    "History",
    "LearningRateScheduler",
    "Lookahead",
    "Loss",
    "Metric",
    "ModelCheckpoint",
    "Optimizer",
    "RMSprop",
    "ReduceLROnPlateau",
    "Trainer",
    "TrainingBudget",
    "get_loss",
    "get_metric",
    "get_optimizer",
    "list_losses",
    "list_metrics",
    "list_optimizers",
    "resolve_device",
    "set_seed",
]
