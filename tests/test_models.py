"""Tests of ei_tutorial.models: shapes, time folding, batch norm over T*B, SEW residuals, registry, probes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ei_tutorial import EIConv2d, EILinear, LIF, ei_init_
from ei_tutorial.models import (
    SEWResNet18,
    SpikingLayer,
    TimeDistributed,
    available_architectures,
    available_neurons,
    available_variants,
    build_model,
    record_activity,
    register_neuron,
    register_variant,
    unregister_neuron,
    unregister_variant,
)
from ei_tutorial.models.variants import plain_conv_block, plain_linear_block, plain_readout, readout_ei_ratio

torch.set_num_threads(1)

# Small widths per architecture: one entry per convolution (VGG) or stage (ResNet).
TINY_WIDTHS = {
    "mlp": [16, 16],
    "vgg8": [8] * 5,
    "vgg11": [8] * 8,
    "vgg16": [8] * 13,
    "vgg19": [8] * 16,
    "resnet18": [8, 8, 8, 8],
}
VARIANTS = ("ei", "bn", "plain")


def _images(steps: int, batch: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(steps, batch, channels, size, size, generator=generator)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("arch", sorted(TINY_WIDTHS))
def test_build_model_output_shape(arch, variant):
    torch.manual_seed(0)
    model = build_model(arch, variant, num_classes=10, in_channels=1, image_size=32, widths=TINY_WIDTHS[arch])
    x = _images(2, 8, 1, 32)
    if variant == "ei":
        ei_init_(model, x)
    logits = model(x)
    assert logits.shape == (8, 10)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ["vgg8", "resnet18"])
def test_build_model_cifar_shape(arch):
    torch.manual_seed(0)
    model = build_model(arch, "ei", num_classes=100, in_channels=3, image_size=32, widths=TINY_WIDTHS[arch])
    x = _images(2, 4, 3, 32)
    ei_init_(model, x)
    assert model(x).shape == (4, 100)


def test_available_architectures_complete():
    assert set(available_architectures()) == {"mlp", "vgg8", "vgg11", "vgg16", "vgg19", "resnet18"}


def test_vgg_standard_channels():
    model = build_model("vgg16", "plain")
    convs = [m.layer.module for m in model.features if isinstance(m, SpikingLayer)]
    assert [conv.out_channels for conv in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def test_vgg8_skips_pooling_below_one_pixel():
    model = build_model("vgg8", "plain", image_size=28, widths=[4] * 5)
    pools = [m for m in model.features if isinstance(m, TimeDistributed)]
    assert len(pools) == 4  # 28 -> 14 -> 7 -> 3 -> 1; the fifth pooling is skipped
    assert model.feature_size == 1
    assert model.readout.in_features == 4


def test_vgg8_cifar_keeps_all_pooling():
    model = build_model("vgg8", "plain", in_channels=3, image_size=32, widths=[4] * 5)
    pools = [m for m in model.features if isinstance(m, TimeDistributed)]
    assert len(pools) == 5


def test_ei_variant_layer_types():
    model = build_model("vgg8", "ei", widths=[4] * 5)
    layers = [m.layer for m in model.features if isinstance(m, SpikingLayer)]
    assert all(isinstance(layer, EIConv2d) for layer in layers)
    assert isinstance(model.readout, EILinear)
    assert model.readout.readout
    assert all(isinstance(m.neuron, LIF) for m in model.features if isinstance(m, SpikingLayer))


def test_mlp_accepts_features_and_images():
    model = build_model("mlp", "plain", widths=[8], image_size=4)
    images = _images(2, 3, 1, 4)
    from_images = model(images)
    from_features = model(images.flatten(2))
    assert torch.equal(from_images, from_features)


def test_model_rejects_missing_time_dimension():
    model = build_model("vgg8", "plain", widths=[4] * 5)
    with pytest.raises(ValueError, match="time-first"):
        model(torch.rand(3, 1, 28, 28))


def test_mlp_rejects_wrong_feature_count():
    model = build_model("mlp", "plain", widths=[8])
    with pytest.raises(ValueError, match="784 features"):
        model(torch.rand(2, 3, 100))


@pytest.mark.parametrize("arch, variant", [("vgg8", "ei"), ("vgg8", "bn"), ("resnet18", "ei")])
def test_model_rejects_wrong_channel_count(arch, variant):
    model = build_model(arch, variant, in_channels=1, image_size=28, widths=TINY_WIDTHS[arch])
    with pytest.raises(ValueError, match=r"built for 1 input channels.*build_model\(\.\.\., in_channels=3\)"):
        model(torch.rand(2, 2, 3, 28, 28))


def test_vgg_rejects_wrong_image_size():
    model = build_model("vgg8", "plain", in_channels=1, image_size=28, widths=[4] * 5)
    with pytest.raises(ValueError, match=r"built for 28x28 images.*image_size=32"):
        model(torch.rand(2, 2, 1, 32, 32))


def test_logits_are_time_average_of_readout():
    model = build_model("mlp", "plain", widths=[8], image_size=4)
    outputs = []
    model.readout.register_forward_hook(lambda _m, _i, out: outputs.append(out))
    x = _images(5, 3, 1, 4)
    logits = model(x)
    assert outputs[0].shape == (5, 3, 10)
    torch.testing.assert_close(logits, outputs[0].mean(0))


def test_time_distributed_folds_without_copy():
    seen = []
    module = TimeDistributed(nn.Identity())
    module.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    inner_seen = []
    module.module.register_forward_pre_hook(lambda _m, args: inner_seen.append(args[0]))
    x = torch.rand(3, 2, 4, 5, 5)
    out = module(x)
    assert inner_seen[0].shape == (6, 4, 5, 5)
    assert inner_seen[0].data_ptr() == x.data_ptr()
    assert out.shape == x.shape


def test_stateless_layers_run_once_per_forward():
    model = build_model("vgg8", "plain", widths=[4] * 5)
    calls = []
    model.features[0].layer.module.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape))
    model(_images(3, 2, 1, 28))
    assert calls == [torch.Size([6, 1, 28, 28])]


def test_batch_norm_linear_statistics_over_time_and_batch():
    torch.manual_seed(0)
    model = build_model("mlp", "bn", widths=[6], image_size=3).train()
    block = model.hidden[0]
    linear, norm = block.layer.module[0], block.layer.module[1]
    currents = []
    block.layer.register_forward_hook(lambda _m, _i, out: currents.append(out))
    # Inputs whose mean differs per time step, so per-step and T*B statistics differ.
    x = _images(4, 5, 1, 3) + torch.arange(4.0).view(4, 1, 1, 1, 1)
    model(x)

    pre = nn.functional.linear(x.flatten(2), linear.weight)  # [T, B, 6], computed independently
    expected_mean = pre.mean(dim=(0, 1))
    torch.testing.assert_close(norm.running_mean, 0.1 * expected_mean)
    current = currents[0]
    torch.testing.assert_close(current.mean(dim=(0, 1)), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(current.var(dim=(0, 1), unbiased=False), torch.ones(6), atol=1e-3, rtol=0)
    per_step_means = current.mean(dim=1)
    assert per_step_means.abs().max() > 0.5  # not normalised per time step


def test_batch_norm_conv_statistics_over_time_and_batch():
    torch.manual_seed(0)
    model = build_model("vgg8", "bn", widths=[4] * 5).train()
    conv, norm = model.features[0].layer.module
    x = _images(3, 2, 1, 28) + torch.arange(3.0).view(3, 1, 1, 1, 1)
    model(x)
    pre = nn.functional.conv2d(x.flatten(0, 1), conv.weight, padding=1)  # [T*B, 4, 28, 28]
    torch.testing.assert_close(norm.running_mean, 0.1 * pre.mean(dim=(0, 2, 3)))
    assert norm.num_batches_tracked.item() == 1


def test_sew_block_adds_spikes_after_neuron():
    torch.manual_seed(0)
    model = build_model("resnet18", "plain", widths=[4, 4, 8, 8], image_size=8)
    block = model.stages[0][0]
    assert block.downsample is None
    for conv in (block.conv1.layer.module, block.conv2.layer.module):
        nn.init.constant_(conv.weight, 0.2)  # strong enough that both neurons fire
    x = (torch.rand(2, 3, 4, 8, 8) > 0.5).float()
    expected = block.conv2.neuron(block.conv2.layer(block.conv1(x))) + x
    out = block(x)
    torch.testing.assert_close(out, expected)
    assert set(out.unique().tolist()) <= {0.0, 1.0, 2.0}
    assert out.max() == 2.0  # the sum of two spike maps, not spikes of a sum


def test_sew_downsample_is_spiking_conv_block():
    torch.manual_seed(0)
    model = build_model("resnet18", "plain", widths=[4, 4, 8, 8], image_size=8)
    block = model.stages[1][0]
    assert isinstance(block.downsample, SpikingLayer)
    conv = block.downsample.layer.module
    assert conv.kernel_size == (1, 1)
    assert conv.stride == (2, 2)
    x = (torch.rand(2, 3, 4, 8, 8) > 0.5).float()
    expected = block.conv2(block.conv1(x)) + block.downsample(x)
    torch.testing.assert_close(block(x), expected)


def test_resnet18_structure():
    model = build_model("resnet18", "plain")
    assert isinstance(model, SEWResNet18)
    blocks = [len(stage) for stage in model.stages]
    assert blocks == [2, 2, 2, 2]
    stem = model.stem.layer.module
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())


def test_readout_ei_ratio_divides_classes():
    assert readout_ei_ratio(10, 4) == 5
    assert readout_ei_ratio(100, 4) == 4
    assert readout_ei_ratio(7, 4) == 7
    assert readout_ei_ratio(10, 1) == 1


def test_layer_kwargs_reach_ei_layers():
    model = build_model("mlp", "ei", widths=[8], layer_kwargs={"ei_ratio": 2})
    assert model.hidden[0].layer.n_i == 4
    assert model.readout.n_i == 5


def test_bn_rejects_ei_layer_kwargs():
    with pytest.raises(ValueError, match="ei_ratio"):
        build_model("mlp", "bn", widths=[8], layer_kwargs={"ei_ratio": 2})


def test_neuron_kwargs_reach_neurons():
    model = build_model("mlp", "plain", widths=[8], neuron_kwargs={"tau_mem": 3.0, "v_th": 0.5})
    assert model.hidden[0].neuron.tau_mem == 3.0
    assert model.hidden[0].neuron.v_th == 0.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"arch": "vgg13"}, "unknown architecture 'vgg13'; expected one of mlp, vgg8"),
        ({"variant": "ln"}, "unknown variant 'ln'; expected one of bn, ei, plain"),
        ({"neuron": "izhikevich"}, "unknown neuron 'izhikevich'; expected one of lif"),
        ({"widths": [4, 4]}, "vgg8 has 5 convolutions"),
        ({"num_classes": 0}, "num_classes must be a positive int"),
    ],
)
def test_build_model_invalid_arguments(kwargs, message):
    arguments = {"arch": "vgg8", "variant": "plain", **kwargs}
    with pytest.raises(ValueError, match=message):
        build_model(arguments.pop("arch"), arguments.pop("variant"), **arguments)


class _DoubleThreshold(nn.Module):
    """A neuron model for the registry tests: spikes where the current exceeds 2."""

    def __init__(self, threshold: float = 2.0) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        return (current > self.threshold).to(current.dtype)


@pytest.fixture
def custom_neuron():
    register_neuron("step2", _DoubleThreshold)
    yield "step2"
    unregister_neuron("step2")


@pytest.fixture
def custom_variant():
    register_variant(
        "plain_nobias",
        linear_block=lambda i, o: nn.Linear(i, o, bias=False),
        conv_block=plain_conv_block,
        readout=plain_readout,
    )
    yield "plain_nobias"
    unregister_variant("plain_nobias")


def test_registry_builtins():
    assert set(available_variants()) >= {"ei", "bn", "plain"}
    assert "lif" in available_neurons()


def test_register_neuron_used_by_builder(custom_neuron):
    assert custom_neuron in available_neurons()
    model = build_model("mlp", "plain", widths=[8], neuron=custom_neuron, neuron_kwargs={"threshold": 0.0})
    assert isinstance(model.hidden[0].neuron, _DoubleThreshold)
    assert model.hidden[0].neuron.threshold == 0.0
    assert model(_images(2, 3, 1, 28)).shape == (3, 10)


def test_register_neuron_twice_raises(custom_neuron):
    with pytest.raises(ValueError, match="already registered"):
        register_neuron(custom_neuron, _DoubleThreshold)


def test_register_neuron_overwrite(custom_neuron):
    register_neuron(custom_neuron, LIF, overwrite=True)
    model = build_model("mlp", "plain", widths=[8], neuron=custom_neuron)
    assert isinstance(model.hidden[0].neuron, LIF)


def test_register_neuron_rejects_non_callable():
    with pytest.raises(TypeError, match="callable"):
        register_neuron("broken", 3)


def test_register_variant_used_by_builder(custom_variant):
    assert custom_variant in available_variants()
    model = build_model("mlp", custom_variant, widths=[8])
    assert model.hidden[0].layer.bias is None
    assert model(_images(2, 3, 1, 28)).shape == (3, 10)


def test_register_variant_twice_raises(custom_variant):
    with pytest.raises(ValueError, match="already registered"):
        register_variant(
            custom_variant, linear_block=plain_linear_block, conv_block=plain_conv_block, readout=plain_readout
        )


def test_unregister_unknown_raises():
    with pytest.raises(ValueError, match="unknown neuron"):
        unregister_neuron("never_registered")


def test_record_activity_matches_direct_computation():
    torch.manual_seed(0)
    model = build_model("mlp", "ei", widths=[16, 8], image_size=4)
    x = _images(3, 5, 1, 4)
    ei_init_(model, x)
    with torch.no_grad(), record_activity(model) as activity:
        model(x)
        model(x)
    with torch.no_grad():
        current = model.hidden[0].layer(x.flatten(2))
        spikes = model.hidden[0].neuron(current)
        readout = model.readout(model.hidden[1](spikes))
    rates = activity.firing_rates()
    stats = activity.current_stats()
    assert list(rates) == ["hidden.0", "hidden.1"]
    assert rates["hidden.0"] == pytest.approx(spikes.mean().item(), abs=1e-6)
    assert stats["hidden.0"][0] == pytest.approx(current.mean().item(), abs=1e-5)
    assert stats["hidden.0"][1] == pytest.approx(current.std(unbiased=False).item(), rel=1e-4)
    assert stats["readout"][1] == pytest.approx(readout.std(unbiased=False).item(), rel=1e-4)


def test_record_activity_removes_hooks():
    model = build_model("mlp", "plain", widths=[8])
    with record_activity(model) as activity:
        pass
    model(_images(2, 3, 1, 28))
    assert activity.firing_rates() == {}
    assert not model.hidden[0].neuron._forward_hooks


def test_record_activity_resnet_layer_names():
    model = build_model("resnet18", "plain", widths=[4, 4, 8, 8], image_size=8)
    with record_activity(model) as activity:
        model(_images(2, 2, 1, 8))
    names = list(activity.firing_rates())
    assert names[0] == "stem"
    assert "stages.1.0.downsample" in names
    assert len(names) == 1 + 16 + 3
