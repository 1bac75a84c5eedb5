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
    # BEGIN SOLUTION A4 part 1: sweep_configs
    if parameter not in SWEEP_PARAMETERS:
        raise ValueError(f"cannot sweep {parameter!r}; expected one of {', '.join(SWEEP_PARAMETERS)}")
    if len(values) == 0:
        raise ValueError("values is empty; give at least one value to sweep")
    if parameter == "ei_ratio":
        widths = base.get("widths") or DEFAULT_MLP_WIDTHS
        for value in values:
            bad = [width for width in widths if width % value]
            if bad:
                raise ValueError(
                    f"ei_ratio={value} does not divide the hidden widths {bad} of widths={list(widths)}; "
                    "choose ratios that divide every width"
                )
    configs = []
    for value in values:
        config = copy.deepcopy(dict(base))
        config["layer_kwargs"] = {**config.get("layer_kwargs", {}), parameter: value}
        config["name"] = f"{base.get('name', 'sweep')}-{parameter}-{value}"
        configs.append(config)
    return configs
    # END SOLUTION


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
    # BEGIN SOLUTION A4 part 2: run_sweep
    points = []
    for value, config in zip(values, sweep_configs(parameter, values, base)):
        for seed in seeds:
            run = {**config, "seed": seed, "name": f"{config['name']}-seed{seed}"}
            record = train(run, overwrite=True).history[-1]
            points.append(SweepPoint(parameter, value, seed, record["heldout_acc"], dict(record["firing_rate"])))
    return points
    # END SOLUTION


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
    # BEGIN SOLUTION A4 part 3: summarise
    by_value: dict[float, list[SweepPoint]] = {}
    for point in points:
        by_value.setdefault(point.value, []).append(point)

    def spread(numbers: list[float]) -> float:
        return statistics.stdev(numbers) if len(numbers) > 1 else 0.0

    rows = []
    for value in sorted(by_value):
        accs = [point.heldout_acc for point in by_value[value]]
        rates = [point.mean_firing_rate for point in by_value[value]]
        rows.append(
            {
                "value": value,
                "runs": len(accs),
                "acc_mean": statistics.fmean(accs),
                "acc_std": spread(accs),
                "rate_mean": statistics.fmean(rates),
                "rate_std": spread(rates),
            }
        )
    return rows
    # END SOLUTION


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
    # BEGIN SOLUTION A4 part 4: plot_sweep
    rows = summarise(points)
    parameter = points[0].parameter
    values = [row["value"] for row in rows]
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax_acc, ax_rate = fig.subplots(1, 2)
    ax_acc.errorbar(values, [row["acc_mean"] for row in rows], yerr=[row["acc_std"] for row in rows],
                    marker="o", capsize=3)
    ax_acc.set_ylabel("held-out accuracy")
    ax_acc.set_title(f"accuracy against {parameter}")

    layers = list(points[0].firing_rates)
    for layer in layers:
        rates = [statistics.fmean(p.firing_rates[layer] for p in points if p.value == value) for value in values]
        ax_rate.plot(values, rates, marker="o", label=layer)
    ax_rate.set_ylabel("firing rate")
    ax_rate.set_title(f"firing rate against {parameter}")
    ax_rate.legend(fontsize="small")
    for ax in (ax_acc, ax_rate):
        ax.set_xlabel(parameter)
        if parameter == "ei_ratio":
            ax.set_xscale("log", base=2)
    return fig
    # END SOLUTION


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
