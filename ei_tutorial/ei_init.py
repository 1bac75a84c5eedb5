r"""E-I Init: data-dependent initialisation of E-I layers from the statistics of their input.

For a layer with fan-in :math:`d` whose input :math:`x \ge 0` has mean :math:`E[x]`
(over all values), variance :math:`Var[x]` (over the batch, for each input feature, then
averaged over features) and mean square :math:`E[x^2]`, E-I Init (Liu, Ding and Yu,
arXiv:2509.23253) sets

.. math::

    W_{EE}, W_{IE} &\sim \text{Exponential}(\text{scale } \lambda), \qquad
        \lambda = \sqrt{\frac{Var[x]}{d\,(E[x^2] + Var[x])}}, \\
    W_{EI} &= 1 / n_I, \qquad
    g_I = \frac{\sqrt{E[x^2] + Var[x]}}{\sqrt{d}\, E[x]}, \qquad g_E = 1, \qquad b_E = 0.

Each row of :math:`W_{EI}` sums to one, so :math:`E[I_{sub}] = E[I_{EE}]` (balance), and
:math:`E[I_{div}]` matches the standard deviation of :math:`I_{EE}` predicted for
independent input features (gain control). The current :math:`I` then has mean near 0
and a standard deviation of order one, as batch normalization would produce. For
independent inputs that standard deviation is :math:`\sqrt{E[x^2] / (E[x^2] + Var[x])}`,
and on spike inputs from MNIST it measures 0.75 to 0.9 per layer.

:func:`ei_init_` initialises the layers of a model in forward order, each from the input
that it receives from the already-initialised layers before it, in one forward pass.
Any module with the methods ``input_statistics(x) -> InputStatistics`` and
``init_from_statistics_(stats, generator)`` takes part, so new layer types join by
implementing those two methods.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class InputStatistics:
    """Statistics of a layer's input that E-I Init needs.

    Attributes:
        mean: :math:`E[x]`, the mean of all input values.
        var: :math:`Var[x]`, the variance over the batch of each input feature,
            averaged over features.
        mean_sq: :math:`E[x^2]`, the mean of the squared input values.
    """

    mean: float
    var: float
    mean_sq: float

    @classmethod
    def from_features(cls, features: Tensor) -> "InputStatistics":
        """Measure the statistics of ``features`` shaped ``[N, F]`` (N samples)."""
        x = features.detach().to(torch.float64)
        return cls(
            mean=float(x.mean()),
            var=float(x.var(dim=0, unbiased=False).mean()),
            mean_sq=float((x * x).mean()),
        )

    def weight_scale(self, fan_in: int) -> float:
        """Return :math:`\\lambda`, the scale (mean) of the exponential weights."""
        return math.sqrt(self.var / (fan_in * (self.mean_sq + self.var)))

    def inhibitory_gain(self, fan_in: int) -> float:
        """Return :math:`g_I`, the gain of every inhibitory neuron."""
        return math.sqrt(self.mean_sq + self.var) / (math.sqrt(fan_in) * self.mean)


def _exponential_(param: Tensor, scale: float, generator: Optional[torch.Generator]) -> None:
    """Fill ``param`` with i.i.d. exponential samples of mean ``scale``."""
    if generator is None or generator.device == param.device:
        param.exponential_(1.0 / scale, generator=generator)
        return
    sample = torch.empty(param.shape, device=generator.device, dtype=param.dtype)
    param.copy_(sample.exponential_(1.0 / scale, generator=generator))


def check_statistics(stats: InputStatistics, layer_name: str) -> None:
    """Raise ``ValueError`` if E-I Init cannot use ``stats`` for the layer ``layer_name``."""
    if not stats.mean > 0:
        raise ValueError(
            f"E-I Init: the input of layer {layer_name!r} is all zeros (E[x] = {stats.mean:.4g}); "
            "the layers before it are silent. Initialise from a batch that drives every "
            "layer, and keep inputs non-negative and not all zero"
        )
    if not stats.var > 0:
        raise ValueError(
            f"E-I Init: the input of layer {layer_name!r} does not vary over the batch "
            f"(Var[x] = {stats.var:.4g}); use a batch of at least two different samples"
        )


@torch.no_grad()
def init_ei_parameters_(
    layer: nn.Module, stats: InputStatistics, generator: Optional[torch.Generator] = None
) -> None:
    """Set the parameters of one E-I layer in place by the E-I Init formulas.

    Args:
        layer: A layer with ``weight_ee``, ``weight_ie``, ``weight_ei``, ``gain_e``,
            ``gain_i``, optional ``bias``, and ``fan_in`` and ``n_i`` attributes.
        stats: Statistics of the layer's input.
        generator: Random-number generator for the exponential weights.

    Raises:
        ValueError: If ``stats`` has a non-positive mean or variance.
    """
    check_statistics(stats, type(layer).__name__)
    scale = stats.weight_scale(layer.fan_in)
    _exponential_(layer.weight_ee, scale, generator)
    _exponential_(layer.weight_ie, scale, generator)
    layer.weight_ei.fill_(1.0 / layer.n_i)
    layer.gain_i.fill_(stats.inhibitory_gain(layer.fan_in))
    layer.gain_e.fill_(1.0)
    if getattr(layer, "bias", None) is not None:
        layer.bias.zero_()


def is_ei_initialisable(module: nn.Module) -> bool:
    """Return True if ``module`` takes part in :func:`ei_init_`."""
    return callable(getattr(module, "input_statistics", None)) and callable(
        getattr(module, "init_from_statistics_", None)
    )


def _first_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def ei_init_(
    model: nn.Module,
    batch: Any,
    *,
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
) -> nn.Module:
    """Initialise every E-I layer of ``model`` by E-I Init, in forward order, from data.

    Runs ``model(batch)`` once without gradients. A forward pre-hook initialises each
    E-I layer from the statistics of the input it receives, before the layer computes
    its output, so later layers see the activity of the initialised earlier ones. Time
    steps count as batch samples. A layer called several times in one forward pass is
    initialised from its first call.

    Args:
        model: A module containing E-I layers (or an E-I layer itself).
        batch: What ``model`` takes: a tensor, or a tuple of positional arguments.
        generator: Random-number generator for the weights.
        seed: Seed for a new generator on the model's device (ignored if ``generator``
            is given).

    Returns:
        ``model``, initialised in place.

    Raises:
        ValueError: If the model has no E-I layer, or a layer receives negative input,
            an all-zero input or an input that does not vary over the batch.
    """
    layers = {module: name or type(module).__name__ for name, module in model.named_modules()
              if is_ei_initialisable(module)}
    if not layers:
        raise ValueError(
            f"ei_init_ found no E-I layer in {type(model).__name__}; it initialises modules "
            "with input_statistics() and init_from_statistics_() such as EILinear and EIConv2d"
        )
    if generator is None and seed is not None:
        generator = torch.Generator(device=_first_device(model)).manual_seed(seed)
    done: set[nn.Module] = set()

    def initialise(module: nn.Module, args: tuple) -> None:
        if module in done:
            return
        x = args[0]
        name = layers[module]
        if isinstance(x, Tensor) and x.numel() and float(x.min()) < 0:
            raise ValueError(
                f"E-I Init: layer {name!r} received a negative input value ({float(x.min()):.4g}); "
                "E-I layers need non-negative inputs, so do not normalise images to zero mean"
            )
        stats = module.input_statistics(x)
        check_statistics(stats, name)
        module.init_from_statistics_(stats, generator)
        done.add(module)

    handles = [module.register_forward_pre_hook(initialise) for module in layers]
    try:
        with torch.no_grad():
            model(*batch) if isinstance(batch, tuple) else model(batch)
    finally:
        for handle in handles:
            handle.remove()
    missed = [name for module, name in layers.items() if module not in done]
    if missed:
        warnings.warn(
            f"ei_init_ left these E-I layers at their previous values because the forward "
            f"pass never called them: {missed}",
            stacklevel=2,
        )
    return model
