"""Building blocks shared by the spiking architectures: time folding and layer + neuron pairs.

Tensors are time-first, ``[T, B, ...]``. Stateless modules (convolutions, pooling, batch
normalization) need no loop over time, so :class:`TimeDistributed` folds ``T`` into the
batch, runs the module once on ``[T * B, ...]`` and unfolds the result. Only the neuron
recurrence steps through time.
"""

from __future__ import annotations

from typing import Callable, Optional

from torch import Tensor, nn

from ei_tutorial.repeats import repeat_first_dim, repeats_first_dim


def check_time_first(x: Tensor, min_dim: int, module_name: str) -> None:
    """Raise unless ``x`` is a tensor with a leading time dimension and at least ``min_dim`` dims.

    Raises:
        TypeError: If ``x`` is not a tensor.
        ValueError: If ``x`` has fewer than ``min_dim`` dimensions.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{module_name} expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(
            f"{module_name} expects time-first input with at least {min_dim} dimensions "
            f"([T, B, ...]), got shape {tuple(x.shape)}; repeat static images over time "
            "with ei_tutorial.data.direct_encode(images, T)"
        )


def check_image_input(x: Tensor, in_channels: int, image_size: Optional[int], module_name: str) -> None:
    """Raise unless time-first images ``x`` ``[T, B, C, H, W]`` have the channels (and size) the model was built for.

    Args:
        x: The model's input, already checked by :func:`check_time_first`.
        in_channels: ``C`` the model was built for.
        image_size: ``H == W`` the model was built for, or None when any size fits.
        module_name: The model's name in the message.

    Raises:
        ValueError: Naming the input's shape and the ``build_model`` argument to change.
    """
    channels, height, width = x.shape[-3:]
    if channels != in_channels:
        raise ValueError(
            f"{module_name} was built for {in_channels} input channels, got input of shape "
            f"{tuple(x.shape)}; build it with build_model(..., in_channels={channels})"
        )
    if image_size is not None and (height, width) != (image_size, image_size):
        raise ValueError(
            f"{module_name} was built for {image_size}x{image_size} images, got input of shape "
            f"{tuple(x.shape)}; build it with build_model(..., image_size={height}) for square images"
        )


class TimeDistributed(nn.Module):
    """Apply a stateless module to all time steps at once by folding time into the batch.

    The fold and unfold are views when the input is contiguous, so no data is copied.

    Args:
        module: Module taking ``[N, ...]`` and returning ``[N, ...]`` with the same ``N``.
        once_for_repeats: When the input repeats one tensor over time (a time dimension
            of stride 0, as :func:`ei_tutorial.data.direct_encode` returns), run
            ``module`` once on ``[B, ...]`` and repeat its output over time as a view
            (:mod:`ei_tutorial.repeats`). That is exact for a module that acts on each
            sample alone. Batch normalization gets the same batch statistics, but its
            unbiased running variance counts ``B`` samples instead of ``T * B``. A
            batch of one sample runs over all ``T`` steps, because batch normalization
            in training needs more than one value per channel. Leave it False for
            modules that draw random numbers, such as dropout, whose draws would then
            repeat over time. The output is then a view, so clone it before writing to it.

    Shape:
        - Input: ``[T, B, ...]``.
        - Output: ``[T, B, ...]``, the module's output for the folded ``[T * B, ...]``.
    """

    def __init__(self, module: nn.Module, once_for_repeats: bool = False) -> None:
        super().__init__()
        self.module = module
        self.once_for_repeats = once_for_repeats

    def forward(self, x: Tensor) -> Tensor:
        check_time_first(x, 2, type(self.module).__name__)
        # One sample runs over all T steps, as batch norm in training needs more than one value.
        if self.once_for_repeats and repeats_first_dim(x) and x.shape[1] > 1:
            return repeat_first_dim(self.module(x[0]).unsqueeze(0), x.shape[0])
        steps, batch = x.shape[:2]
        return self.module(x.flatten(0, 1)).unflatten(0, (steps, batch))

    def extra_repr(self) -> str:
        return "once_for_repeats=True" if self.once_for_repeats else ""


class SpikingLayer(nn.Module):
    """A synaptic layer that produces currents followed by the neurons that turn them into spikes.

    Probes (:func:`ei_tutorial.models.record_activity`) read the current from ``layer``
    and the spikes from ``neuron``.

    Args:
        layer: Module mapping ``[T, B, ...]`` inputs to currents ``[T, B, ...]``.
        neuron: Module mapping currents to spikes of the same shape.

    Shape:
        - Input: ``[T, B, ...]`` as ``layer`` expects.
        - Output: spikes ``[T, B, ...]`` shaped like the current.
    """

    def __init__(self, layer: nn.Module, neuron: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.neuron = neuron

    def forward(self, x: Tensor) -> Tensor:
        return self.neuron(self.layer(x))


class Flatten(nn.Module):
    """Flatten every dimension after ``[T, B]``: ``[T, B, C, H, W] -> [T, B, C * H * W]``."""

    def forward(self, x: Tensor) -> Tensor:
        check_time_first(x, 3, "Flatten")
        return x.flatten(2)


class LayerFactory:
    """Build the spiking layers of one model from a variant, a neuron model and their options.

    The architectures call these methods and never name a concrete layer class, so any
    registered variant or neuron model fits every architecture.

    Args:
        linear_block, conv_block, readout: The variant's factories (see
            :class:`ei_tutorial.models.registry.Variant`).
        neuron_factory: ``factory(**neuron_kwargs) -> nn.Module``.
        neuron_kwargs: Keyword arguments for every neuron.
        layer_kwargs: Keyword arguments for every synaptic layer and the readout.
    """

    def __init__(
        self,
        linear_block: Callable[..., nn.Module],
        conv_block: Callable[..., nn.Module],
        readout: Callable[..., nn.Module],
        neuron_factory: Callable[..., nn.Module],
        neuron_kwargs: dict,
        layer_kwargs: dict,
    ) -> None:
        self._linear_block = linear_block
        self._conv_block = conv_block
        self._readout = readout
        self._neuron_factory = neuron_factory
        self.neuron_kwargs = dict(neuron_kwargs)
        self.layer_kwargs = dict(layer_kwargs)

    def neuron(self) -> nn.Module:
        """Return a new population of neurons."""
        return self._neuron_factory(**self.neuron_kwargs)

    def linear(self, in_features: int, out_features: int) -> SpikingLayer:
        """Return a dense layer followed by neurons: ``[T, B, in] -> spikes [T, B, out]``."""
        layer = self._linear_block(in_features, out_features, **self.layer_kwargs)
        return SpikingLayer(layer, self.neuron())

    def conv(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0
    ) -> SpikingLayer:
        """Return a convolution followed by neurons: ``[T, B, C, H, W] -> spikes [T, B, C', H', W']``."""
        layer = self._conv_block(in_channels, out_channels, kernel_size, stride, padding, **self.layer_kwargs)
        return SpikingLayer(layer, self.neuron())

    def readout(self, in_features: int, num_classes: int) -> nn.Module:
        """Return the readout layer: ``[T, B, in] -> [T, B, num_classes]``, without neurons."""
        return self._readout(in_features, num_classes, **self.layer_kwargs)
