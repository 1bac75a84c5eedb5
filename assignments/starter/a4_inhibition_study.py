r"""Assignment 4: a small study of inhibition strength or the E:I ratio.

How much inhibition does an E-I network need, and how many inhibitory neurons? This
assignment sweeps one setting of the E-I layers, trains one small network per value
(and per seed) with :func:`ei_tutorial.training.train`, and reports the held-out
accuracy and the firing rates in a figure.

Two settings can be swept, both passed to every E-I layer through ``layer_kwargs``:

- ``"inhibition_scale"`` (:math:`s`): multiplies :math:`W_{EI}` in both inhibition
  paths, so :math:`I_{sub}` and :math:`I_{div}` grow with it. E-I Init balances the
  layers for :math:`s = 1`. Far from 1 a layer saturates (small :math:`s`) or falls
  silent (large :math:`s`). E-I Init of the next layer then raises ``ValueError``,
  and so does :func:`run_sweep`. For an MLP on MNIST, values from about 0.85 to 1.15
  train.
- ``"ei_ratio"``: :math:`n_E / n_I`, the number of E neurons per I neuron. It must
  divide every hidden width.

What to write (the starter raises ``NotImplementedError`` in each part):

1. :func:`sweep_configs`, one training config per swept value.
2. :func:`run_sweep`, which trains them and collects one :class:`SweepPoint` per run.
3. :func:`summarise`, the mean and standard deviation over seeds for each value.
4. :func:`plot_sweep`, the figure of accuracy and firing rate against the value.
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from matplotlib.figure import Figure

from ei_tutorial.models.builder import DEFAULT_MLP_WIDTHS
from ei_tutorial.training import train

SWEEP_PARAMETERS = ("inhibition_scale", "ei_ratio")


@dataclass(frozen=True)
class SweepPoint:
    """The outcome of one training run of a sweep.

    Attributes:
        parameter: The swept setting, ``"inhibition_scale"`` or ``"ei_ratio"``.
        value: Its value in this run.
        seed: The run's seed.
        heldout_acc: Held-out accuracy (fraction) after the last epoch.
        firing_rates: Firing rate of each spiking layer on the held-out data after the
            last epoch, by layer name (``"hidden.0"``, ...).
    """

    parameter: str
    value: float
    seed: int
    heldout_acc: float
    firing_rates: dict[str, float]

    @property
    def mean_firing_rate(self) -> float:
        """The unweighted mean of the layers' firing rates."""
        return sum(self.firing_rates.values()) / len(self.firing_rates)


def sweep_configs(parameter: str, values: Sequence[float], base: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Build one training config per value of ``parameter``.

    Each config is a deep copy of ``base`` with ``layer_kwargs[parameter]`` set to the
    value (other ``layer_kwargs`` are kept) and ``name`` set to
    ``"<base name>-<parameter>-<value>"`` (base name ``"sweep"`` when ``base`` has none).
    ``base`` is not changed.

    Args:
        parameter: One of :data:`SWEEP_PARAMETERS`.
        values: The values to sweep, at least one.
        base: A training config as a mapping (see :class:`ei_tutorial.training.TrainConfig`).

    Returns:
        The configs, in the order of ``values``.

    Raises:
        ValueError: If ``parameter`` is not one of :data:`SWEEP_PARAMETERS`, ``values``
            is empty, or an ``ei_ratio`` value does not divide every hidden width
            (``base["widths"]``, or the MLP's default widths when it is missing or None).
    """
    # TODO(A4 part 1): sweep_configs. Replace the raise below with your code.
    raise NotImplementedError("A4 part 1 (sweep_configs) is not implemented yet")


def run_sweep(
    parameter: str,
    values: Sequence[float],
    base: Mapping[str, Any],
    *,
    seeds: Sequence[int] = (0,),
) -> list[SweepPoint]:
    """Train one network per value and seed and collect the results.

    Uses :func:`sweep_configs`, sets ``seed`` in each config, appends ``-seed<seed>`` to
    its ``name`` and trains it with ``train(config, overwrite=True)``, so a rerun
    replaces earlier runs of the same name.

    Args:
        parameter, values, base: As for :func:`sweep_configs`.
        seeds: One run per seed and value.

    Returns:
        One :class:`SweepPoint` per run, values in the outer loop and seeds in the inner.
    """
    # TODO(A4 part 2): run_sweep. Replace the raise below with your code.
    raise NotImplementedError("A4 part 2 (run_sweep) is not implemented yet")


def summarise(points: Sequence[SweepPoint]) -> list[dict[str, float]]:
    """Average the runs of each value over seeds.

    Args:
        points: Results of :func:`run_sweep`.

    Returns:
        One dict per distinct value, sorted by value, with keys ``value``, ``runs``
        (number of seeds), ``acc_mean``, ``acc_std``, ``rate_mean`` and ``rate_std``
        (of each run's mean firing rate). Standard deviations are the sample standard
        deviation over seeds, 0.0 for a single run.
    """
    # TODO(A4 part 3): summarise. Replace the raise below with your code.
    raise NotImplementedError("A4 part 3 (summarise) is not implemented yet")


def plot_sweep(points: Sequence[SweepPoint]) -> Figure:
    """Plot held-out accuracy and firing rates against the swept value.

    Args:
        points: Results of :func:`run_sweep` (one parameter).

    Returns:
        A Figure with two axes. The first shows the mean held-out accuracy against the
        value, with the standard deviation over seeds as error bars, y-label
        ``"held-out accuracy"``. The second shows the firing rate of each layer (mean
        over seeds) against the value, one line per layer labelled with its name,
        y-label ``"firing rate"``. Both x-labels are the parameter name. The x-axes
        are logarithmic (base 2) for ``"ei_ratio"`` and linear for
        ``"inhibition_scale"``.
    """
    # TODO(A4 part 4): plot_sweep. Replace the raise below with your code.
    raise NotImplementedError("A4 part 4 (plot_sweep) is not implemented yet")


def describe(rows: Sequence[Mapping[str, float]]) -> str:
    """Format :func:`summarise`'s rows as a Markdown table."""
    lines = [
        "| value | runs | held-out accuracy | mean firing rate |",
        "|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['value']:g} | {row['runs']} | {row['acc_mean']:.3f} ± {row['acc_std']:.3f} "
            f"| {row['rate_mean']:.3f} ± {row['rate_std']:.3f} |"
        )
    return "\n".join(lines)
