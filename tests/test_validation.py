"""Tests for the input checks of the E-I layers."""

import pytest
import torch

from ei_tutorial import EIConv2d, EILinear, input_checks


@pytest.mark.parametrize(
    "values", [[0.1, float("-inf"), 0.2], [float("nan"), -1.0, 0.2], [float("inf"), 0.0, 0.0]],
    ids=["minus_inf", "nan_and_negative", "plus_inf"],
)
def test_non_finite_reported_before_negative(values):
    with pytest.raises(ValueError, match="NaN or infinite"):
        EILinear(3, 4)(torch.tensor([values]))


def test_negative_value_named_in_message():
    with pytest.raises(ValueError, match=r"\(-0\.25\)"):
        EILinear(3, 4)(torch.tensor([[0.5, -0.25, 0.0]]))


def test_channels_last_input_checked():
    x = torch.rand(2, 3, 3, 5, 5).flatten(0, 1).contiguous(memory_format=torch.channels_last)
    x[1, 2, 4, 0] = -1.0
    with pytest.raises(ValueError, match="negative"):
        EIConv2d(3, 4, 3)(x.unflatten(0, (2, 3)))


def test_strided_input_checked():
    x = torch.rand(4, 6)
    x[2, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        EILinear(3, 4)(x[:, ::2])


def test_empty_input_passes():
    assert EILinear(3, 4)(torch.empty(0, 3)).shape == (0, 4)


def test_checks_can_be_switched_off():
    with input_checks(False):
        out = EILinear(3, 4)(torch.tensor([[0.5, -0.25, 0.0]]))
    assert out.shape == (1, 4)
