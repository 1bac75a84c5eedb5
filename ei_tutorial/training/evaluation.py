"""Held-out evaluation: loss, accuracy and per-layer activity of a model on a data loader."""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ei_tutorial.data import direct_encode
from ei_tutorial.models.probes import record_activity
from ei_tutorial.training.distributed import DistributedContext, all_reduce_sum


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    time_steps: int,
    device: torch.device,
    *,
    context: DistributedContext | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, Any]:
    """Evaluate ``model`` on every batch of ``loader`` in eval mode.

    Images are repeated over ``time_steps`` steps (direct encoding). Across processes,
    each evaluates its own shard and the sums are added, so the result covers the
    whole held-out set on every process.

    Args:
        model: An unwrapped model built by :func:`~ei_tutorial.models.build_model`.
        loader: Batches ``(images [B, C, H, W], labels [B])``.
        time_steps: ``T``.
        device: Device of the model.
        context: The process context; None for a single process.
        autocast: Returns the mixed-precision context to run the forward pass in.

    Returns:
        ``{"loss", "acc", "count", "firing_rate", "current_mean", "current_std"}``: mean
        cross-entropy, accuracy as a fraction, number of images, and per-layer activity
        (see :func:`~ei_tutorial.models.record_activity`). Loss and accuracy are NaN for
        an empty loader.
    """
    context = context or DistributedContext(device=device)
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    try:
        with record_activity(model) as activity:
            for images, labels in loader:
                images = images.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)
                with autocast():
                    logits = model(direct_encode(images, time_steps))
                logits = logits.float()
                sums[0] += F.cross_entropy(logits, labels, reduction="sum").double()
                sums[1] += (logits.argmax(dim=1) == labels).sum()
                sums[2] += labels.numel()
        all_reduce_sum(sums, context)
        if context.distributed:
            activity.all_reduce_()
    finally:
        model.train(was_training)
    loss_sum, correct, count = (float(value) for value in sums)
    result: dict[str, Any] = {
        "loss": loss_sum / count if count else float("nan"),
        "acc": correct / count if count else float("nan"),
        "count": int(count),
    }
    result.update(activity.summary())
    return result


def load_trained_model(path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in a training checkpoint and load its weights.

    Args:
        path: A ``last.pt`` or ``best.pt`` written by :func:`~ei_tutorial.training.train`.
        device: Device to load the model onto.

    Returns:
        ``(model, checkpoint)``: the model in eval mode and the checkpoint dict.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ei_tutorial.training.checkpoint.CheckpointError: If the file is corrupt or does
            not fit the model its config describes.
    """
    from ei_tutorial.data import dataset_info
    from ei_tutorial.models import build_model
    from ei_tutorial.training.checkpoint import CheckpointError, load_checkpoint, load_model_state
    from ei_tutorial.training.config import config_from_dict

    checkpoint = load_checkpoint(path, map_location=device)
    try:
        config = config_from_dict(checkpoint["config"], f"config stored in {path}")
    except ValueError as error:
        raise CheckpointError(str(error)) from error
    info = dataset_info(config.dataset)
    model = build_model(
        config.arch, config.variant, num_classes=info.num_classes, in_channels=info.channels,
        image_size=info.image_size, widths=config.widths, neuron=config.neuron,
        neuron_kwargs=config.neuron_kwargs, layer_kwargs=config.layer_kwargs,
    )
    load_model_state(model, checkpoint, path)
    return model.to(device).eval(), checkpoint


def evaluate_checkpoint(
    path, *, device: str = "auto", batch_size: int = 512, limit: int | None = None
) -> dict[str, Any]:
    """Evaluate a training checkpoint on its dataset's held-out data.

    Args:
        path: A checkpoint written by :func:`~ei_tutorial.training.train`.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        batch_size: Images per batch.
        limit: Evaluate the first ``limit`` held-out images only; None for all.

    Returns:
        As :func:`evaluate`, plus ``"epoch"`` (epochs the checkpoint was trained for),
        ``"checkpoint"`` (the path) and ``"config"`` (the stored config).
    """
    from torch.utils.data import Subset

    from ei_tutorial.data import load_datasets
    from ei_tutorial.training.distributed import choose_device

    torch_device = choose_device(device)
    model, checkpoint = load_trained_model(path, torch_device)
    config = checkpoint["config"]
    _, heldout = load_datasets(config["dataset"])
    if limit is not None:
        heldout = Subset(heldout, range(min(limit, len(heldout))))
    loader = DataLoader(heldout, batch_size=batch_size, shuffle=False)
    result = evaluate(model, loader, config["time_steps"], torch_device)
    result.update({"epoch": checkpoint["epoch"], "checkpoint": str(path), "config": config})
    return result
