"""ei_tutorial: deep normalization-free spiking neural networks with lateral inhibition.

The library behind the ei-tutorial course. It implements leaky integrate-and-fire
neurons and the excitatory-inhibitory (E-I) circuit layers of Liu, Ding and Yu,
"Training Deep Normalization-Free Spiking Neural Networks with Lateral Inhibition"
(arXiv:2509.23253, ICLR 2026), with E-I Init and E-I Prop.
"""

from ei_tutorial.circuit import EIConv2d, EILayer, EILinear
from ei_tutorial.device import get_device
from ei_tutorial.dale import attach_dale_projection, clamp_nonnegative_, dale_violations
from ei_tutorial.ei_init import InputStatistics, ei_init_
from ei_tutorial.neurons import LIF, available_surrogates, lif_multistep, lif_step, make_spike_fn
from ei_tutorial.validation import input_checks, set_input_checks

__version__ = "0.1.0"

__all__ = [
    "EIConv2d",
    "EILayer",
    "EILinear",
    "InputStatistics",
    "LIF",
    "attach_dale_projection",
    "clamp_nonnegative_",
    "dale_violations",
    "ei_init_",
    "get_device",
    "input_checks",
    "set_input_checks",
    "available_surrogates",
    "lif_multistep",
    "lif_step",
    "make_spike_fn",
]
