"""Training and evaluation of the spiking networks: config, loop, checkpoints, metrics, CLI.

:func:`train` runs a :class:`TrainConfig`; :func:`load_config` reads one from YAML.
"""

from ei_tutorial.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ei_tutorial.training.config import TrainConfig, config_from_dict, load_config, shipped_configs
from ei_tutorial.training.evaluation import evaluate, evaluate_checkpoint, load_trained_model
from ei_tutorial.training.loop import NonFiniteLossError, TrainResult, train
from ei_tutorial.training.metrics import append_metrics, read_metrics

__all__ = [
    "CheckpointError",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "append_metrics",
    "config_from_dict",
    "evaluate",
    "evaluate_checkpoint",
    "load_checkpoint",
    "load_config",
    "load_trained_model",
    "read_metrics",
    "save_checkpoint",
    "shipped_configs",
    "train",
]
