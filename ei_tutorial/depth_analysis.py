r"""Measurements across the depth of spiking networks: activity, E-I balance, E-I Init, E-I Prop.

Every function here computes; none draws. :mod:`ei_tutorial.plots` turns the results into
figures. The models are those of :func:`ei_tutorial.models.build_model` (or any module
made of :class:`~ei_tutorial.models.SpikingLayer` blocks), with time-first inputs
``[T, B, ...]``.

The circuit symbols follow :mod:`ei_tutorial.circuit`: :math:`I_{EE} = W_{EE} x`,
:math:`r_I = W_{IE} x`, :math:`I_{sub} = s\, W_{EI} r_I`,
:math:`I_{div} = s\, W_{EI} (g_I \odot r_I)` with the inhibition scale :math:`s` (1 by
default), and the current :math:`I = g_E (I_{EE} - I_{sub}) / I_{div} + b_E`. E-I Init draws
:math:`W_{EE}, W_{IE} \sim \text{Exponential}` with mean :math:`\lambda` and sets
:math:`W_{EI} = 1/n_I`; :func:`init_check` compares a layer with the moments that these
choices predict.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ei_tutorial.analysis import circuit_currents
from ei_tutorial.circuit import EIConv2d, EILayer, EILinear
from ei_tutorial.dale import attach_dale_projection, constrained_parameters
from ei_tutorial.data import direct_encode, rate_encode
from ei_tutorial.ei_init import InputStatistics, ei_init_
from ei_tutorial.models import SpikingLayer, build_model, record_activity, spiking_layers
from ei_tutorial.models.layers import Flatten
from ei_tutorial.models.variants import readout_ei_ratio
from ei_tutorial.neurons import LIF

# ---------------------------------------------------------------------------
# Initialising plain networks at another scale
# ---------------------------------------------------------------------------


@torch.no_grad()
def rescale_init_(model: nn.Module, gain: float, *, seed: Optional[int] = None) -> nn.Module:
    r"""Re-initialise every ``nn.Linear`` and ``nn.Conv2d`` of ``model`` at a chosen scale.

    Weights are drawn from :math:`\mathcal{N}(0, \text{gain}^2 / d)` with :math:`d` the
    fan-in, and biases are set to zero. ``gain = sqrt(2)`` is He (Kaiming) initialisation;
    PyTorch's default for these layers has a standard deviation of :math:`1/\sqrt{3d}`,
    a gain of about 0.577. E-I layers and batch normalization are left as they are.

    Args:
        model: The model to change in place.
        gain: Weight standard deviation times :math:`\sqrt{d}`, > 0.
        seed: Seed of a new generator for the weights; None uses the global one.

    Returns:
        ``model``.

    Raises:
        ValueError: If ``gain`` is not positive or ``model`` has no linear or convolution layer.
    """
    if not gain > 0:
        raise ValueError(f"gain must be > 0, got {gain!r}")
    layers = [module for module in model.modules() if isinstance(module, (nn.Linear, nn.Conv2d))]
    if not layers:
        raise ValueError(
            f"rescale_init_ found no nn.Linear or nn.Conv2d in {type(model).__name__}; "
            "it re-initialises the plain and batch-norm variants, not E-I layers"
        )
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    for layer in layers:
        fan_in = layer.weight[0].numel()
        sample = torch.randn(layer.weight.shape, generator=generator) * (gain / math.sqrt(fan_in))
        layer.weight.copy_(sample)
        if layer.bias is not None:
            layer.bias.zero_()
    return model


# ---------------------------------------------------------------------------
# Activity and gradient flow layer by layer
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DepthProfile:
    """Activity of each spiking layer of a model, input side first.

    Attributes:
        names: Qualified names of the spiking layers, ``[L]``.
        firing_rate: Mean spikes per neuron and time step of each layer, ``[L]``.
        current_mean: Mean of the current into each layer's neurons, ``[L]``.
        current_std: Standard deviation of that current over all time steps, samples and
            neurons, ``[L]``.
        silent_fraction: Fraction of (sample, neuron) pairs of each layer that never spike
            in the ``T`` steps, ``[L]``.
        saturated_fraction: Fraction of (sample, neuron) pairs that spike at every step,
            ``[L]``.
        weight_grad_norm: Norm of the loss gradient of each layer's weight
            (:math:`W_{EE}` for E-I layers), ``[L]``; None when no labels were given.
    """

    names: tuple[str, ...]
    firing_rate: Tensor
    current_mean: Tensor
    current_std: Tensor
    silent_fraction: Tensor
    saturated_fraction: Tensor
    weight_grad_norm: Optional[Tensor] = None

    @property
    def depth(self) -> int:
        """The number of spiking layers :math:`L`."""
        return len(self.names)


def synaptic_weight(module: nn.Module) -> nn.Parameter:
    """Return a synaptic layer's main weight: ``weight_ee`` of an E-I layer, else the first matrix.

    Raises:
        ValueError: If ``module`` has no parameter with two or more dimensions.
    """
    if isinstance(module, EILayer):
        return module.weight_ee
    for param in module.parameters():
        if param.dim() >= 2:
            return param
    raise ValueError(f"{type(module).__name__} has no weight matrix or kernel")


def depth_profile(model: nn.Module, inputs: Tensor, labels: Optional[Tensor] = None) -> DepthProfile:
    """Measure firing rates and currents of every spiking layer, and optionally gradient norms.

    Without labels the model runs once without gradients. With labels it runs once with
    them and the cross-entropy loss of its logits is backpropagated, so that each layer's
    weight gradient shows how much training signal reaches it. The gradients stay in the
    parameters' ``.grad``. The model stays in the mode it is in (batch normalization
    in training mode normalises with the statistics of ``inputs``).

    Args:
        model: A model made of :class:`~ei_tutorial.models.SpikingLayer` blocks, returning logits.
        inputs: Time-first model input ``[T, B, ...]``.
        labels: Class labels ``[B]``, or None.

    Returns:
        The :class:`DepthProfile`.

    Raises:
        ValueError: If ``model`` has no spiking layer.
    """
    blocks = spiking_layers(model)
    if not blocks:
        raise ValueError(
            f"{type(model).__name__} has no SpikingLayer; build it with ei_tutorial.models.build_model"
        )
    # Per layer: [pairs that never spiked, pairs that spiked at every step, pairs seen].
    extremes: dict[str, Tensor] = {}

    def count_extremes(name: str):
        def hook(_module: nn.Module, _inputs: tuple, spikes: Tensor) -> None:
            counts = spikes.detach().sum(dim=0)
            steps = spikes.shape[0]
            totals = torch.stack([(counts == 0).sum(), (counts == steps).sum(), torch.tensor(counts.numel())])
            extremes[name] = totals if name not in extremes else extremes[name] + totals
        return hook

    handles = [block.neuron.register_forward_hook(count_extremes(name)) for name, block in blocks.items()]
    try:
        with record_activity(model) as activity:
            if labels is None:
                with torch.no_grad():
                    model(inputs)
            else:
                model.zero_grad(set_to_none=True)
                F.cross_entropy(model(inputs), labels).backward()
    finally:
        for handle in handles:
            handle.remove()
    rates = activity.firing_rates()
    stats = activity.current_stats()
    names = tuple(name for name in blocks if name in rates)
    grad_norms = None
    if labels is not None:
        norms = []
        for name in names:
            grad = synaptic_weight(blocks[name].layer).grad
            norms.append(float("nan") if grad is None else float(grad.norm()))
        grad_norms = torch.tensor(norms, dtype=torch.float64)
    return DepthProfile(
        names=names,
        firing_rate=torch.tensor([rates[name] for name in names], dtype=torch.float64),
        current_mean=torch.tensor([stats[name][0] for name in names], dtype=torch.float64),
        current_std=torch.tensor([stats[name][1] for name in names], dtype=torch.float64),
        silent_fraction=torch.tensor([float(extremes[name][0] / extremes[name][2]) for name in names], dtype=torch.float64),
        saturated_fraction=torch.tensor(
            [float(extremes[name][1] / extremes[name][2]) for name in names], dtype=torch.float64
        ),
        weight_grad_norm=grad_norms,
    )


def _image_shape(inputs: Tensor) -> tuple[int, int]:
    if inputs.dim() != 5 or inputs.shape[-1] != inputs.shape[-2]:
        raise ValueError(
            f"expected time-first square images [T, B, C, S, S], got shape {tuple(inputs.shape)}; "
            "encode images with ei_tutorial.data.direct_encode(images, T)"
        )
    return inputs.shape[2], inputs.shape[-1]


def ei_mlp_profile(
    inputs: Tensor, depth: int, *, width: int = 256, ei_ratio: int = 4, num_classes: int = 10, seed: int = 0
) -> DepthProfile:
    """Build an E-I MLP, initialise it by E-I Init on ``inputs`` and measure each layer's activity.

    The model is ``build_model("mlp", "ei", widths=[width] * depth, layer_kwargs={"ei_ratio": ei_ratio})``;
    :func:`ei_tutorial.ei_init_` with ``seed`` sets all its parameters, so the result
    does not depend on the global random state.

    Args:
        inputs: Time-first images ``[T, B, C, S, S]``, non-negative.
        depth: Number of hidden layers.
        width: Neurons per hidden layer; ``ei_ratio`` must divide it.
        ei_ratio: :math:`n_E / n_I` of the hidden layers.
        num_classes: Readout units.
        seed: Seed of E-I Init's weights.

    Returns:
        The model's :class:`DepthProfile` on ``inputs`` (without gradient norms).

    Raises:
        ValueError: If ``inputs`` are not square images over time, or as
            :func:`~ei_tutorial.models.build_model` and :func:`~ei_tutorial.ei_init_`.
    """
    channels, size = _image_shape(inputs)
    model = build_model(
        "mlp", "ei", num_classes=num_classes, in_channels=channels, image_size=size,
        widths=[width] * depth, layer_kwargs={"ei_ratio": ei_ratio},
    )
    ei_init_(model, inputs, seed=seed)
    return depth_profile(model, inputs)


def depth_variant_profiles(
    inputs: Tensor,
    depth: int,
    *,
    labels: Optional[Tensor] = None,
    width: int = 128,
    plain_gain: Optional[float] = 8.0,
    num_classes: int = 10,
    seed: int = 0,
) -> dict[str, DepthProfile]:
    """Measure activity and gradient flow of four spiking MLPs of the same depth.

    The four are built by :func:`~ei_tutorial.models.build_model` with ``depth`` hidden
    layers of ``width`` LIF neurons: ``"plain"`` with PyTorch's default initialisation,
    ``"plain"`` re-initialised by :func:`rescale_init_` at ``plain_gain``, ``"bn"``, and
    ``"ei"`` initialised by :func:`ei_tutorial.ei_init_` on ``inputs``. Every model's
    weights follow from ``seed``; the global random state is left as it was.

    Args:
        inputs: Time-first images ``[T, B, C, S, S]`` in [0, 1].
        depth: Number of hidden layers.
        labels: Their labels ``[B]``, to measure gradient norms; None measures activity only.
        width: Neurons per hidden layer.
        plain_gain: Gain of the re-initialised plain network; None leaves that network out.
        num_classes: Readout units.
        seed: Seed of the weights.

    Returns:
        ``{label: DepthProfile}`` in the order above.
    """
    channels, size = _image_shape(inputs)
    settings = [("plain, PyTorch default init", "plain", None)]
    if plain_gain is not None:
        settings.append((f"plain, gain {plain_gain:g}", "plain", plain_gain))
    settings += [("batch norm", "bn", None), ("E-I, E-I Init", "ei", None)]
    profiles = {}
    for label, variant, gain in settings:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(
                "mlp", variant, num_classes=num_classes, in_channels=channels, image_size=size,
                widths=[width] * depth,
            )
        if gain is not None:
            rescale_init_(model, gain, seed=seed)
        if variant == "ei":
            ei_init_(model, inputs, seed=seed)
        profiles[label] = depth_profile(model, inputs, labels)
    return profiles


# ---------------------------------------------------------------------------
# Excitation, inhibition and gains inside the E-I layers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceProfile:
    """Means of the circuit currents of each dividing E-I layer, input side first.

    All means run over time steps, samples, neurons (and positions of a convolution).

    Attributes:
        names: Qualified names of the layers, ``[L]``.
        i_ee_mean: Mean excitation :math:`I_{EE}`, ``[L]``.
        i_sub_mean: Mean subtractive inhibition :math:`I_{sub}`, ``[L]``.
        i_div_mean: Mean divisive inhibition :math:`I_{div}`, ``[L]``.
        net_std: Standard deviation of :math:`I_{EE} - I_{sub}`, ``[L]``.
        current_mean: Mean of the output current :math:`I`, ``[L]``.
        current_std: Standard deviation of :math:`I`, ``[L]``.
        i_div_zero_fraction: Fraction of values with :math:`I_{div} = 0` exactly, where
            E-I Prop has to stabilise the division, ``[L]``.
    """

    names: tuple[str, ...]
    i_ee_mean: Tensor
    i_sub_mean: Tensor
    i_div_mean: Tensor
    net_std: Tensor
    current_mean: Tensor
    current_std: Tensor
    i_div_zero_fraction: Tensor

    @property
    def inhibition_ratio(self) -> Tensor:
        r"""Mean inhibition over mean excitation, :math:`E[I_{sub}] / E[I_{EE}]`: 1 is balance."""
        return self.i_sub_mean / self.i_ee_mean


def _dividing_layers(model: nn.Module) -> dict[str, EILayer]:
    return {
        name: module for name, module in model.named_modules()
        if isinstance(module, EILayer) and module.divisive
    }


@torch.no_grad()
def balance_profile(model: nn.Module, inputs) -> BalanceProfile:
    """Measure excitation, both kinds of inhibition and the current of every dividing E-I layer.

    The model runs once without gradients. Each E-I layer that divides (all but a readout)
    records the input it receives, and :func:`ei_tutorial.analysis.circuit_currents` then
    computes its currents from that input.

    Args:
        model: A model containing E-I layers.
        inputs: What ``model`` takes: a tensor, or a tuple of positional arguments.

    Returns:
        The :class:`BalanceProfile`.

    Raises:
        ValueError: If ``model`` has no dividing E-I layer.
    """
    layers = _dividing_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no E-I layer with divisive inhibition")
    received: dict[str, Tensor] = {}

    def keep_input(name: str):
        def hook(_module: nn.Module, args: tuple) -> None:
            received.setdefault(name, args[0])
        return hook

    handles = [layer.register_forward_pre_hook(keep_input(name)) for name, layer in layers.items()]
    try:
        model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    finally:
        for handle in handles:
            handle.remove()

    columns: dict[str, list[float]] = {key: [] for key in BalanceProfile.__dataclass_fields__ if key != "names"}
    names = tuple(name for name in layers if name in received)
    for name in names:
        currents = circuit_currents(layers[name], received[name])
        net = (currents.i_ee - currents.i_sub).double()
        columns["i_ee_mean"].append(float(currents.i_ee.double().mean()))
        columns["i_sub_mean"].append(float(currents.i_sub.double().mean()))
        columns["i_div_mean"].append(float(currents.i_div.double().mean()))
        columns["net_std"].append(float(net.std(unbiased=False)))
        columns["current_mean"].append(float(currents.current.double().mean()))
        columns["current_std"].append(float(currents.current.double().std(unbiased=False)))
        columns["i_div_zero_fraction"].append(float((currents.i_div == 0).double().mean()))
    return BalanceProfile(
        names=names, **{key: torch.tensor(values, dtype=torch.float64) for key, values in columns.items()}
    )


@torch.no_grad()
def gain_values(model: nn.Module) -> dict[str, dict[str, Tensor]]:
    """Copy the gains :math:`g_E` and :math:`g_I` of every dividing E-I layer.

    Returns:
        ``{layer name: {"gain_e": [n_E], "gain_i": [n_I]}}`` in forward-registration order,
        detached copies on the CPU.
    """
    return {
        name: {"gain_e": layer.gain_e.detach().cpu().clone(), "gain_i": layer.gain_i.detach().cpu().clone()}
        for name, layer in _dividing_layers(model).items()
    }


@dataclass(frozen=True)
class Snapshot:
    """Measurements of an E-I model at one point of its training.

    Attributes:
        step: Optimizer steps taken before the measurement.
        activity: Firing rates and currents of every spiking layer.
        balance: Circuit currents of every dividing E-I layer.
        gains: :math:`g_E` and :math:`g_I` of every dividing E-I layer, as
            :func:`gain_values` returns them.
    """

    step: int
    activity: DepthProfile
    balance: BalanceProfile
    gains: dict[str, dict[str, Tensor]]


def take_snapshot(model: nn.Module, inputs: Tensor, step: int) -> Snapshot:
    """Measure activity, E-I balance and gains of ``model`` on ``inputs`` without changing it.

    Args:
        model: A model of :class:`~ei_tutorial.models.SpikingLayer` blocks with E-I layers.
        inputs: Time-first model input ``[T, B, ...]``, the same at every snapshot so that
            snapshots compare.
        step: Optimizer steps taken so far, stored with the measurements.

    Returns:
        The :class:`Snapshot`.
    """
    return Snapshot(
        step=step, activity=depth_profile(model, inputs), balance=balance_profile(model, inputs),
        gains=gain_values(model),
    )


# ---------------------------------------------------------------------------
# E-I Init: measured moments against the ones its formulas predict
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InitCheck:
    r"""Moments of one E-I layer's currents, measured and as E-I Init's derivation predicts.

    Means and variances run over all samples and neurons. Predictions use
    :math:`\lambda` and :math:`g_I` computed from the statistics of the input, so they
    describe a layer that E-I Init initialised from that same input.

    Attributes:
        stats: :math:`E[x]`, :math:`Var[x]` and :math:`E[x^2]` of the input.
        fan_in: Fan-in :math:`d`.
        n_i: Number of inhibitory neurons :math:`n_I`.
        weight_scale: :math:`\lambda`, the mean of the exponential weights.
        gain_i: :math:`g_I` from the formula.
        i_ee_mean: Measured :math:`E[I_{EE}]`.
        i_sub_mean: Measured :math:`E[I_{sub}]`.
        i_mean_predicted: :math:`d \lambda E[x]`, the prediction for both means.
        i_ee_var: Measured :math:`Var[I_{EE}]`.
        i_ee_var_predicted: :math:`d \lambda^2 (E[x^2] + Var[x])`, which equals :math:`Var[x]`;
            it assumes independent input features, whose correlations add to it.
        net_var: Measured :math:`Var[I_{EE} - I_{sub}]`.
        net_var_predicted: :math:`d \lambda^2 (1 + 1/n_I) E[x^2]`. The weights are
            independent of each other and of the input, so this holds for correlated
            input features too.
        i_div_mean: Measured :math:`E[I_{div}]`.
        i_div_mean_predicted: :math:`g_I d \lambda E[x]`, which equals :math:`\sqrt{Var[x]}`.
        current_mean: Measured mean of the current :math:`I`.
        current_std: Measured standard deviation of :math:`I`.
        current_std_predicted: ``sqrt(net_var_predicted) / i_div_mean_predicted``, which
            equals :math:`\sqrt{(1 + 1/n_I) E[x^2] / (E[x^2] + Var[x])}`. It ignores the
            fluctuations of :math:`I_{div}`, so it is an approximation.
    """

    stats: InputStatistics
    fan_in: int
    n_i: int
    weight_scale: float
    gain_i: float
    i_ee_mean: float
    i_sub_mean: float
    i_mean_predicted: float
    i_ee_var: float
    i_ee_var_predicted: float
    net_var: float
    net_var_predicted: float
    i_div_mean: float
    i_div_mean_predicted: float
    current_mean: float
    current_std: float
    current_std_predicted: float


@torch.no_grad()
def init_check(layer: EILayer, x: Tensor) -> InitCheck:
    """Compare the currents of an E-I layer on ``x`` with E-I Init's predictions for ``x``.

    Args:
        layer: An E-I layer initialised by :func:`ei_tutorial.ei_init_` from ``x`` (with
            ``inhibition_scale`` 1).
        x: Its input, non-negative.

    Returns:
        The :class:`InitCheck`.
    """
    stats = layer.input_statistics(x)
    d = layer.fan_in
    scale = stats.weight_scale(d)
    gain_i = stats.inhibitory_gain(d)
    currents = circuit_currents(layer, x)
    i_ee, i_sub = currents.i_ee.double(), currents.i_sub.double()
    net_var = float((i_ee - i_sub).var(unbiased=False))
    net_var_predicted = d * scale**2 * (1 + 1 / layer.n_i) * stats.mean_sq
    i_div_mean_predicted = gain_i * d * scale * stats.mean
    current = currents.current.double()
    return InitCheck(
        stats=stats,
        fan_in=d,
        n_i=layer.n_i,
        weight_scale=scale,
        gain_i=gain_i,
        i_ee_mean=float(i_ee.mean()),
        i_sub_mean=float(i_sub.mean()),
        i_mean_predicted=d * scale * stats.mean,
        i_ee_var=float(i_ee.var(unbiased=False)),
        i_ee_var_predicted=d * scale**2 * (stats.mean_sq + stats.var),
        net_var=net_var,
        net_var_predicted=net_var_predicted,
        i_div_mean=float(currents.i_div.double().mean()),
        i_div_mean_predicted=i_div_mean_predicted,
        current_mean=float(current.mean()),
        current_std=float(current.std(unbiased=False)),
        current_std_predicted=math.sqrt(net_var_predicted) / i_div_mean_predicted,
    )


# ---------------------------------------------------------------------------
# E-I Prop: switching its parts off, and measuring the gradients
# ---------------------------------------------------------------------------

_PROP_SWITCHES = ("stabilise", "straight_through", "scale_ei_grad", "fused")


def with_switches(model: nn.Module, **switches) -> nn.Module:
    """Return a deep copy of ``model`` whose E-I layers use other E-I Prop settings.

    The copy has the same parameter values, so it computes the same forward pass wherever
    the settings agree, and the two can be compared on the same input.

    Args:
        model: An E-I layer or a model containing E-I layers.
        **switches: New values of ``stabilise``, ``straight_through``, ``scale_ei_grad``
            and ``fused`` (booleans) and ``eps`` (> 0).

    Returns:
        The changed copy.

    Raises:
        ValueError: On an unknown switch name, a non-boolean switch, an ``eps`` that is
            not positive, or a model without E-I layers.
    """
    for name, value in switches.items():
        if name == "eps":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"eps must be a number > 0, got {value!r}")
        elif name not in _PROP_SWITCHES:
            raise ValueError(f"unknown E-I Prop setting {name!r}; expected one of {_PROP_SWITCHES + ('eps',)}")
        elif not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    copied = copy.deepcopy(model)
    layers = [module for module in copied.modules() if isinstance(module, EILayer)]
    if not layers:
        raise ValueError(f"{type(model).__name__} contains no E-I layer")
    for layer in layers:
        for name, value in switches.items():
            setattr(layer, name, float(value) if name == "eps" else value)
    return copied


def input_gradient(module: nn.Module, x: Tensor, *, seed: int = 0) -> Tensor:
    """Backpropagate a fixed random gradient through ``module`` and return the gradient of ``x``.

    The upstream gradient is drawn from a standard normal distribution with the output's
    shape, so two modules with the same output shape receive the same one and their
    input gradients compare directly. Parameter gradients are left in ``.grad``.

    Args:
        module: Maps ``x`` to one tensor.
        x: Its input; not modified.
        seed: Seed of the upstream gradient.

    Returns:
        The gradient with respect to ``x``, shaped like ``x``.
    """
    points = x.detach().clone().requires_grad_(True)
    out = module(points)
    generator = torch.Generator().manual_seed(seed)
    upstream = torch.randn(out.shape, generator=generator, dtype=out.dtype).to(out.device)
    out.backward(upstream)
    return points.grad.detach()


def ei_gradient_rms(model: nn.Module) -> dict[str, dict[str, float]]:
    r"""Return the root-mean-square gradient entry of :math:`W_{EE}`, :math:`W_{IE}` and :math:`W_{EI}`.

    Reads the ``.grad`` left by a backward pass. The mean runs over a matrix's entries, so
    matrices of different sizes compare per connection.

    Returns:
        ``{layer name: {"weight_ee": rms, "weight_ie": rms, "weight_ei": rms}}`` for every
        E-I layer, NaN where a parameter has no gradient.
    """
    result = {}
    for name, layer in model.named_modules():
        if not isinstance(layer, EILayer):
            continue
        entry = {}
        for param_name in ("weight_ee", "weight_ie", "weight_ei"):
            grad = getattr(layer, param_name).grad
            entry[param_name] = float("nan") if grad is None else float(grad.double().pow(2).mean().sqrt())
        result[name or type(layer).__name__] = entry
    return result


class ShallowEIConvNet(nn.Module):
    """Two E-I convolutions with LIF neurons and an E-I readout: a small network for ablations.

    The second convolution has stride 2, so an ``S x S`` image becomes a
    ``ceil(S / 2) x ceil(S / 2)`` map before the readout. The network is small enough to
    train for tens of steps on a CPU in seconds, and its convolutions see the silent
    patches of spike maps where :math:`I_{div} = 0`.

    Args:
        in_channels: Image channels ``C``.
        image_size: Image height and width ``S``.
        num_classes: Readout units.
        channels: Output channels of the two convolutions; multiples of ``ei_ratio``.
        **layer_kwargs: Keyword arguments of every E-I layer (``stabilise``, ``eps``, ...),
            the readout included; ``ei_ratio`` (default 4) applies to the convolutions,
            and the readout uses :func:`~ei_tutorial.models.variants.readout_ei_ratio`.

    Shape:
        - Input: ``[T, B, C, S, S]``, non-negative.
        - Output: logits ``[B, num_classes]``, the readout's output averaged over ``T``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 14,
        num_classes: int = 10,
        channels: tuple[int, int] = (16, 16),
        **layer_kwargs,
    ) -> None:
        super().__init__()
        first, second = channels
        self.features = nn.Sequential(
            SpikingLayer(EIConv2d(in_channels, first, 3, padding=1, **layer_kwargs), LIF()),
            SpikingLayer(EIConv2d(first, second, 3, stride=2, padding=1, **layer_kwargs), LIF()),
            Flatten(),
        )
        size = (image_size + 1) // 2
        readout_kwargs = {key: value for key, value in layer_kwargs.items() if key != "ei_ratio"}
        ratio = readout_ei_ratio(num_classes, layer_kwargs.get("ei_ratio", 4))
        self.readout = EILinear(second * size * size, num_classes, ei_ratio=ratio, readout=True, **readout_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.features(x)).mean(0)


# ---------------------------------------------------------------------------
# Short training runs that record what happens at every step
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingTrace:
    """Record of a short training run, one entry per optimizer step.

    Attributes:
        losses: Training loss of each step taken, ``[S]``.
        grad_norms: Norm of the gradient of all parameters together at each step, ``[S]``.
        first_nonfinite_step: The step (from 0) whose loss or gradient was NaN or infinite,
            at which the run stopped without updating; None if every step was finite.
        heldout_accuracy: Accuracy on the held-out images after the last step, or NaN when
            none were given or the run stopped early.
    """

    losses: Tensor
    grad_norms: Tensor
    first_nonfinite_step: Optional[int]
    heldout_accuracy: float


def encode(images: Tensor, T: int, encoding: str, generator: Optional[torch.Generator] = None) -> Tensor:
    """Turn images ``[B, ...]`` into a time-first input ``[T, B, ...]``: ``"direct"`` or ``"rate"``.

    Raises:
        ValueError: On another encoding name.
    """
    if encoding == "direct":
        return direct_encode(images, T)
    if encoding == "rate":
        return rate_encode(images, T, generator=generator)
    raise ValueError(f"unknown encoding {encoding!r}; expected 'direct' or 'rate'")


def train_steps(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    steps: int,
    batch_size: int = 32,
    T: int = 4,
    lr: float = 0.005,
    momentum: float = 0.9,
    encoding: str = "rate",
    heldout: Optional[tuple[Tensor, Tensor]] = None,
    seed: int = 0,
    callback: Optional[Callable[[int, nn.Module], None]] = None,
    callback_every: int = 1,
) -> TrainingTrace:
    """Train ``model`` for a few SGD steps on random batches, recording loss and gradient norm.

    Each step draws ``batch_size`` images at random (with replacement), encodes them over
    ``T`` steps, and takes one SGD step with momentum on the cross-entropy loss. Models
    with sign-constrained parameters (E-I layers) keep Dale's law through
    :func:`ei_tutorial.attach_dale_projection`. The run stops at the first step whose
    loss or gradient is not finite, before that step changes the parameters, so a
    diverging variant shows where it broke. The model is trained in place.

    This is a diagnostic loop for comparing variants over tens of steps; full training
    runs use :func:`ei_tutorial.training.train`.

    Args:
        model: Takes ``[T, B, ...]`` and returns logits ``[B, classes]``; already
            initialised (E-I models by :func:`ei_tutorial.ei_init_`).
        images: Training images ``[N, ...]`` in [0, 1].
        labels: Their labels ``[N]``.
        steps: Number of optimizer steps, >= 1.
        batch_size: Images per step.
        T: Time steps per image.
        lr: SGD learning rate.
        momentum: SGD momentum.
        encoding: ``"rate"`` (Bernoulli spikes) or ``"direct"`` (the image at every step).
        heldout: Optional ``(images, labels)`` evaluated after the last step.
        seed: Seed of the batch draws and of the rate encoding.
        callback: Called as ``callback(steps_taken, model)`` after every
            ``callback_every``-th optimizer step, e.g. to record measurements during
            training; it runs outside autograd.
        callback_every: Steps between two callback calls, >= 1.

    Returns:
        The :class:`TrainingTrace`.

    Raises:
        ValueError: If ``steps`` or ``batch_size`` is not a positive int, or on an
            unknown encoding.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("callback_every", callback_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    encode(images[:1], 1, encoding)  # rejects an unknown encoding before any work
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    projection = attach_dale_projection(optimizer, model) if any(True for _ in constrained_parameters(model)) else None
    losses, grad_norms = [], []
    stopped_at = None
    model.train()
    try:
        for step in range(steps):
            index = torch.randint(len(images), (batch_size,), generator=generator)
            loss = F.cross_entropy(model(encode(images[index], T, encoding, generator)), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grads = [param.grad for param in model.parameters() if param.grad is not None]
            grad_norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else 0.0
            losses.append(float(loss.detach()))
            grad_norms.append(grad_norm)
            if not (math.isfinite(losses[-1]) and math.isfinite(grad_norm)):
                stopped_at = step
                break
            optimizer.step()
            if callback is not None and (step + 1) % callback_every == 0:
                with torch.no_grad():
                    callback(step + 1, model)
    finally:
        if projection is not None:
            projection.remove()
    accuracy = float("nan")
    if heldout is not None and stopped_at is None:
        accuracy = heldout_accuracy(model, heldout[0], heldout[1], T=T, encoding=encoding, seed=seed)
    return TrainingTrace(
        losses=torch.tensor(losses, dtype=torch.float64),
        grad_norms=torch.tensor(grad_norms, dtype=torch.float64),
        first_nonfinite_step=stopped_at,
        heldout_accuracy=accuracy,
    )


@torch.no_grad()
def heldout_accuracy(
    model: nn.Module, images: Tensor, labels: Tensor, *, T: int = 4, encoding: str = "rate",
    batch_size: int = 500, seed: int = 0,
) -> float:
    """Return the fraction of ``images`` that ``model`` classifies correctly (in eval mode)."""
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        batch = encode(images[start:start + batch_size], T, encoding, generator)
        correct += int((model(batch).argmax(dim=1) == labels[start:start + batch_size]).sum())
    model.train(was_training)
    return correct / len(images)
