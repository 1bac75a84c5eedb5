"""ei_tutorial: deep normalization-free spiking neural networks with lateral inhibition.

The library behind the ei-tutorial course. It implements leaky integrate-and-fire
neurons and the excitatory-inhibitory (E-I) circuit layers of Liu, Ding and Yu,
"Training Deep Normalization-Free Spiking Neural Networks with Lateral Inhibition"
(arXiv:2509.23253, ICLR 2026), with E-I Init and E-I Prop.
"""

from ei_tutorial.neurons import LIF, available_surrogates, lif_multistep, lif_step, make_spike_fn

__version__ = "0.1.0"

__all__ = [
    "LIF",
    "available_surrogates",
    "lif_multistep",
    "lif_step",
    "make_spike_fn",
]
