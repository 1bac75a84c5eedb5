"""Forward hooks that measure firing rates and current statistics while a model runs.

Usage::

    with record_activity(model) as activity:
        model(inputs)
    activity.firing_rates()   # {"hidden.0": 0.12, ...}
    activity.current_stats()  # {"hidden.0": (mean, std), ..., "readout": (mean, std)}

A *spiking layer* is every :class:`~ei_tutorial.models.layers.SpikingLayer` in the
model. Its firing rate is the mean of its spikes over time steps, samples and neurons.
Its current is the output of its synaptic layer (for the E-I variant, the current
``I`` into the E neurons). The model's ``readout`` layer, when it has one, is measured
too (current only). Statistics accumulate over every forward pass inside the block,
weighted by element count, and stay on the model's device until read, so recording
adds no host-device synchronisation per step.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
from torch import Tensor, nn

from ei_tutorial.models.layers import SpikingLayer


def _accumulator_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


class ActivityRecorder:
    """Running sums of spikes and currents per layer, filled by forward hooks.

    Created by :func:`record_activity`; read it with :meth:`firing_rates`,
    :meth:`current_stats` or :meth:`summary`.
    """

    def __init__(self) -> None:
        # Per layer name: spikes as a tensor [sum, count], currents as [sum, sum of squares, count].
        self._spikes: dict[str, Tensor] = {}
        self._currents: dict[str, Tensor] = {}
        self.enabled = True

    def _add(self, store: dict[str, Tensor], name: str, values: Tensor, squares: bool) -> None:
        if not self.enabled:
            return
        values = values.detach()
        dtype = _accumulator_dtype(values.device)
        flat = values.to(dtype)
        parts = [flat.sum()]
        if squares:
            parts.append(flat.square().sum())
        parts.append(torch.tensor(float(flat.numel()), dtype=dtype, device=values.device))
        sums = torch.stack(parts)
        store[name] = sums if name not in store else store[name] + sums

    def record_spikes(self, name: str, spikes: Tensor) -> None:
        """Add a layer's output spikes to its running sums."""
        self._add(self._spikes, name, spikes, squares=False)

    def record_current(self, name: str, current: Tensor) -> None:
        """Add a layer's output current to its running sums."""
        self._add(self._currents, name, current, squares=True)

    def reset(self) -> None:
        """Forget everything recorded so far."""
        self._spikes.clear()
        self._currents.clear()

    def all_reduce_(self) -> None:
        """Sum the running sums over all processes of the default process group.

        Every rank must have recorded the same layer names, which holds when all ranks
        run the same model.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        for store in (self._spikes, self._currents):
            for name in sorted(store):
                dist.all_reduce(store[name])

    def firing_rates(self) -> dict[str, float]:
        """Return the mean spike count per neuron and time step of each spiking layer.

        Returns:
            ``{layer name: rate}`` in forward order, rates in [0, 1] for binary spikes.
        """
        return {name: float(sums[0] / sums[1]) for name, sums in self._spikes.items()}

    def current_stats(self) -> dict[str, tuple[float, float]]:
        """Return the mean and standard deviation (over all elements) of each layer's current.

        Returns:
            ``{layer name: (mean, std)}`` in forward order, population standard deviation.
        """
        stats = {}
        for name, sums in self._currents.items():
            total, total_sq, count = (float(value) for value in sums)
            mean = total / count
            stats[name] = (mean, math.sqrt(max(total_sq / count - mean * mean, 0.0)))
        return stats

    def mean_firing_rate(self) -> float:
        """Return the unweighted mean of the layers' firing rates, or NaN if none was recorded."""
        rates = self.firing_rates()
        return sum(rates.values()) / len(rates) if rates else float("nan")

    def summary(self) -> dict[str, dict[str, float]]:
        """Return ``{"firing_rate": {...}, "current_mean": {...}, "current_std": {...}}``."""
        stats = self.current_stats()
        return {
            "firing_rate": self.firing_rates(),
            "current_mean": {name: mean for name, (mean, _) in stats.items()},
            "current_std": {name: std for name, (_, std) in stats.items()},
        }


def spiking_layers(model: nn.Module) -> dict[str, SpikingLayer]:
    """Return the model's spiking layers by qualified name, in registration order."""
    return {name: module for name, module in model.named_modules() if isinstance(module, SpikingLayer)}


@contextlib.contextmanager
def record_activity(model: nn.Module) -> Iterator[ActivityRecorder]:
    """Record firing rates and current statistics of every spiking layer during forward passes.

    The hooks are removed when the block exits, also on an exception; the recorder
    keeps its numbers. Pass the unwrapped model (``ddp_model.module``) so that layer
    names carry no ``module.`` prefix.

    Args:
        model: A model built by :func:`~ei_tutorial.models.build_model`, or any module
            containing :class:`~ei_tutorial.models.layers.SpikingLayer` blocks.

    Yields:
        An :class:`ActivityRecorder` that fills up during forward passes.
    """
    recorder = ActivityRecorder()
    handles = []
    for name, block in spiking_layers(model).items():
        handles.append(
            block.layer.register_forward_hook(
                lambda _module, _inputs, output, name=name: recorder.record_current(name, output)
            )
        )
        handles.append(
            block.neuron.register_forward_hook(
                lambda _module, _inputs, output, name=name: recorder.record_spikes(name, output)
            )
        )
    readout = getattr(model, "readout", None)
    if isinstance(readout, nn.Module):
        handles.append(
            readout.register_forward_hook(
                lambda _module, _inputs, output: recorder.record_current("readout", output)
            )
        )
    try:
        yield recorder
    finally:
        for handle in handles:
            handle.remove()
