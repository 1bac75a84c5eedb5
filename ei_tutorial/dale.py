"""Dale's law for E-I layers: every weight and gain keeps its sign (non-negative).

A neuron is either excitatory or inhibitory, so its outgoing weights all share a sign.
The E-I layers store magnitudes and put the sign into the circuit (inhibition is
subtracted or divides), so all their parameters but the bias ``b_E`` must stay >= 0.
:func:`attach_dale_projection` keeps them there by projecting onto the non-negative
orthant (clamping at zero) after every step of any ``torch.optim`` optimizer.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def constrained_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """Yield ``(qualified_name, parameter)`` for each sign-constrained parameter of ``model``.

    A module takes part by defining ``constrained_parameters()`` yielding
    ``(name, parameter)`` pairs, as the E-I layers do.
    """
    for prefix, module in model.named_modules():
        method = getattr(module, "constrained_parameters", None)
        if not callable(method):
            continue
        for name, param in method():
            yield (f"{prefix}.{name}" if prefix else name), param


@torch.no_grad()
def clamp_nonnegative_(model: nn.Module) -> int:
    """Clamp every sign-constrained parameter of ``model`` to >= 0 in place.

    Returns:
        The number of parameters clamped.
    """
    params = [param for _, param in constrained_parameters(model)]
    if params:
        torch._foreach_clamp_min_(params, 0.0)
    return len(params)


def attach_dale_projection(optimizer: torch.optim.Optimizer, model: nn.Module) -> RemovableHandle:
    """Keep Dale's law after every ``optimizer.step()`` by clamping ``model``'s weights.

    Registers an optimizer step post-hook, so the optimizer itself is unchanged. The
    parameters are clamped once right away as well.

    Args:
        optimizer: Any ``torch.optim`` optimizer.
        model: The model whose sign-constrained parameters are projected.

    Returns:
        A handle whose ``remove()`` detaches the projection.

    Raises:
        ValueError: If ``model`` has no sign-constrained parameter.
    """
    if next(constrained_parameters(model), None) is None:
        raise ValueError(
            f"{type(model).__name__} has no sign-constrained parameters; attach the Dale "
            "projection to a model that contains E-I layers"
        )
    clamp_nonnegative_(model)
    return optimizer.register_step_post_hook(lambda opt, args, kwargs: clamp_nonnegative_(model))


@torch.no_grad()
def dale_violations(model: nn.Module) -> dict[str, tuple[int, float]]:
    """Report sign-constrained parameters that hold negative or NaN values.

    Returns:
        A mapping from qualified parameter name to ``(number of entries that are not
        >= 0, smallest value)``; empty when Dale's law holds. The smallest value is NaN
        when the parameter holds a NaN.
    """
    report = {}
    for name, param in constrained_parameters(model):
        count = int((~(param >= 0)).sum())
        if count:
            report[name] = (count, float(param.min()))
    return report
