"""Optimizer, parameter groups and learning-rate schedule of a training run.

SGD with momentum over two parameter groups: weights with weight decay, everything else
without. Weights are the sign-constrained parameters of E-I layers (``W_EE``, ``W_IE``,
``W_EI``, ``g_E``, ``g_I``) and every other parameter with two or more dimensions
(convolution kernels, weight matrices); biases and batch-norm scales and shifts have
no weight decay.

The schedule is a linear warm-up from ``warmup_start_factor * lr`` to ``lr``
(:class:`torch.optim.lr_scheduler.LinearLR`) followed by a cosine decay to ``min_lr``
(:class:`~torch.optim.lr_scheduler.CosineAnnealingLR`), chained by
:class:`~torch.optim.lr_scheduler.SequentialLR`. It is stepped after every optimizer
step, not every epoch, so a warm-up of one or two epochs ramps smoothly; lengths given
in epochs are converted with the number of steps per epoch.
"""

from __future__ import annotations

from torch import nn
from torch.optim import SGD, Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from ei_tutorial.dale import constrained_parameters


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split the trainable parameters into a group with weight decay and one without.

    Args:
        model: The model (unwrapped from DistributedDataParallel).
        weight_decay: L2 penalty of the first group.

    Returns:
        One dict per non-empty group, in this order
        ``{"params": [...], "weight_decay": weight_decay, "name": "decay"}`` and
        ``{"params": [...], "weight_decay": 0.0, "name": "no_decay"}``.
    """
    constrained = {id(param) for _, param in constrained_parameters(model)}
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        if id(param) in constrained or param.dim() >= 2:
            decay.append(param)
        else:
            no_decay.append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]
    return [group for group in groups if group["params"]]


def build_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> Optimizer:
    """Return SGD with momentum over :func:`parameter_groups`."""
    return SGD(parameter_groups(model, weight_decay), lr=lr, momentum=momentum)


def build_scheduler(
    optimizer: Optimizer,
    *,
    total_steps: int,
    warmup_steps: int,
    warmup_start_factor: float,
    min_lr: float,
) -> LRScheduler:
    """Return the warm-up then cosine schedule, to be stepped once per optimizer step.

    Args:
        optimizer: The optimizer; its groups' ``lr`` is the peak learning rate.
        total_steps: Optimizer steps in the whole run.
        warmup_steps: Steps of the linear warm-up (0 for none); clipped to ``total_steps``.
        warmup_start_factor: Learning rate of the first step as a fraction of the peak.
        min_lr: Learning rate reached at the end of the cosine decay.

    Returns:
        A scheduler whose ``step()`` follows every ``optimizer.step()``.
    """
    warmup_steps = max(0, min(warmup_steps, total_steps))
    decay_steps = max(1, total_steps - warmup_steps)
    cosine = CosineAnnealingLR(optimizer, T_max=decay_steps, eta_min=min_lr)
    if warmup_steps == 0:
        return cosine
    warmup = LinearLR(optimizer, start_factor=warmup_start_factor, end_factor=1.0, total_iters=warmup_steps)
    if warmup_steps >= total_steps:
        # Warm-up only: stay at the peak after it (never reached within the run).
        return SequentialLR(
            optimizer, [warmup, ConstantLR(optimizer, factor=1.0, total_iters=0)], milestones=[warmup_steps]
        )
    return SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])
