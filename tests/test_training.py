"""Tests of ei_tutorial.training: config errors, checkpoints, metrics, schedule, resume, signals, NaN stop."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ei_tutorial.training import CheckpointError, NonFiniteLossError, TrainConfig, load_checkpoint, train
from ei_tutorial.training import loop as loop_module
from ei_tutorial.training.checkpoint import BEST, LAST, save_checkpoint
from ei_tutorial.training.cli import evaluate_main, main, train_parser
from ei_tutorial.training.config import config_keys, load_config, parse_overrides, shipped_configs
from ei_tutorial.training.metrics import METRICS_FILE, append_metrics, read_metrics, truncate_metrics
from ei_tutorial.training.optim import build_scheduler, parameter_groups
from ei_tutorial.training.rng import capture_rng_state, restore_rng_state

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


# Sets EI_TUTORIAL_DATA to the resolved folder, so that a relative value still finds the files.
# The previous value returns after this module.
@pytest.fixture(scope="module")
def mnist_data(mnist_data_root):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EI_TUTORIAL_DATA", str(mnist_data_root))
        yield mnist_data_root


def tiny_values(out_dir: Path, **overrides) -> dict:
    values = dict(
        name="tiny", out_dir=str(out_dir), dataset="mnist", arch="mlp", widths=[32], variant="ei",
        epochs=2, batch_size=32, eval_batch_size=128, lr=0.05, warmup_epochs=0.5, train_subset=256,
        heldout_subset=128, init_batch_size=64, progress=False, device="cpu", seed=0,
    )
    values.update(overrides)
    return values


def tiny_config(out_dir: Path, **overrides) -> TrainConfig:
    return TrainConfig(**tiny_values(out_dir, **overrides))


# One epoch on 4,096 MNIST digits, evaluated on 1,000 held-out ones: about 0.6 s on one CPU
# thread. The tiny runs (256 images) reach only about 40% held-out accuracy. At this size,
# lr 0.05 silenced the hidden layer (accuracy 8.8%) with seed 3 of seeds 0-4, so lr is 0.02.
LEARNING_OVERRIDES = dict(epochs=1, train_subset=4096, heldout_subset=1000, lr=0.02, warmup_epochs=0.2)


def without_seconds(records: list[dict]) -> list[dict]:
    return [{key: value for key, value in record.items() if key != "seconds"} for record in records]


# -- config -------------------------------------------------------------------------------


def test_config_unknown_key_lists_valid_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message
    assert "learning_rate" in message
    assert "valid keys are" in message
    assert "time_steps" in message


def test_config_malformed_yaml_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("epochs: 3\nwidths: [1, 2\nlr: 0.1\n")
    with pytest.raises(ValueError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message
    assert "malformed YAML" in message
    assert "line 3" in message


def test_config_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_config(path)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"time_steps": 0}, r"time_steps=0: expected an integer >= 1 \(the number of time steps T\)"),
        ({"dataset": "imagenet"}, "dataset='imagenet': expected one of mnist, fashion_mnist, cifar10, cifar100"),
        ({"arch": "vgg13"}, "arch='vgg13': expected one of mlp, vgg8"),
        ({"variant": "ln"}, "variant='ln': expected one of bn, ei, plain"),
        ({"lr": -1.0}, "lr=-1.0"),
        ({"lr": {"bogus": 0.1}}, "variant names"),
        ({"momentum": 1.5}, "momentum=1.5"),
        ({"batch_size": 2.5}, "batch_size=2.5"),
        ({"amp": "yes"}, "amp='yes': expected true or false"),
        ({"widths": [10, 0]}, "widths"),
        ({"device": "tpu"}, "device='tpu'"),
    ],
)
def test_config_invalid_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**overrides)


def test_config_missing_file_lists_shipped():
    with pytest.raises(FileNotFoundError, match="mnist_mlp"):
        load_config("no_such_config")


def test_parse_overrides_yaml_values():
    parsed = parse_overrides(["widths=[10, 20]", "amp=false", "neuron_kwargs.tau_mem=3", "lr={ei: 0.1}", "name=x"])
    assert parsed["widths"] == [10, 20]
    assert parsed["amp"] is False
    assert parsed["neuron_kwargs"] == {"tau_mem": 3}
    assert parsed["lr"] == {"ei": 0.1}
    assert parsed["name"] == "x"


def test_parse_overrides_rejects_bad_items():
    with pytest.raises(ValueError, match="not of the form key=value"):
        parse_overrides(["epochs"])
    with pytest.raises(ValueError, match="unknown config key"):
        parse_overrides(["epoch=3"])


def test_shipped_configs_complete():
    expected = {
        "cifar10_vgg8", "cifar10_vgg11", "cifar10_vgg16", "cifar10_vgg19", "cifar10_resnet18",
        "cifar100_vgg16", "cifar100_vgg19", "mnist_mlp", "fashion_mnist_mlp", "mnist_mlp_depth8", "mnist_vgg8",
    }
    assert set(shipped_configs()) == expected


@pytest.mark.parametrize("name", shipped_configs())
@pytest.mark.parametrize("variant", ["ei", "bn", "plain"])
def test_shipped_config_loads_with_twins(name, variant):
    config = load_config(name, [f"variant={variant}"])
    assert config.variant == variant
    assert config.name == f"{name}_{variant}"
    assert config.resolved_lr() > 0


@pytest.mark.parametrize(
    "name, variant, lr, weight_decay, warmup",
    [
        ("cifar10_vgg8", "ei", 0.002, 5e-4, 10.0),
        ("cifar10_vgg11", "ei", 0.002, 5e-4, 10.0),
        ("cifar10_vgg16", "ei", 0.001, 5e-4, 30.0),
        ("cifar100_vgg19", "ei", 0.001, 5e-4, 30.0),
        ("cifar10_resnet18", "ei", 0.001, 5e-4, 30.0),
        ("cifar10_vgg16", "bn", 0.1, 1e-4, 0.0),
    ],
)
def test_published_settings(name, variant, lr, weight_decay, warmup):
    config = load_config(name, [f"variant={variant}"])
    assert config.resolved_lr() == lr
    assert config.resolved_weight_decay() == weight_decay
    assert config.resolved_warmup_epochs() == warmup
    assert config.epochs == 300
    assert config.batch_size == 128
    assert config.time_steps == 4
    assert config.momentum == 0.9


def test_published_defaults_when_unset():
    assert TrainConfig(arch="vgg16").resolved_lr() == 0.001
    assert TrainConfig(arch="vgg8").resolved_lr() == 0.002
    assert TrainConfig(arch="vgg8", variant="bn").resolved_lr() == 0.1
    assert TrainConfig(variant="bn").resolved_weight_decay() == 1e-4
    assert TrainConfig(arch="resnet18").resolved_warmup_epochs() == 30.0


def test_help_lists_every_key():
    text = train_parser().format_help()
    for key in config_keys():
        assert f"  {key} " in text
    assert "[time steps]" in text
    assert "[epochs]" in text


# -- checkpoints and metrics ----------------------------------------------------------------


def test_save_checkpoint_replaces_atomically(tmp_path, monkeypatch):
    path = tmp_path / LAST
    save_checkpoint(path, {"value": torch.tensor([1.0])})

    def failing_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"value": torch.tensor([2.0])})
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["value"].item() == 1.0
    assert [p.name for p in tmp_path.iterdir()] == [LAST]


def test_load_checkpoint_truncated(tmp_path):
    path = tmp_path / LAST
    save_checkpoint(path, {"format": 1, "config": {}, "model": {"w": torch.zeros(1000)}, "epoch": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    assert str(path) in str(error.value)
    assert "truncated or corrupt" in str(error.value)
    assert isinstance(error.value, ValueError)


def test_load_checkpoint_garbage(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_load_checkpoint_foreign_dict(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not an ei_tutorial training checkpoint"):
        load_checkpoint(path)


def test_load_checkpoint_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none.pt")


def test_metrics_lines_complete(tmp_path):
    path = tmp_path / METRICS_FILE
    append_metrics(path, {"epoch": 1, "acc": 0.5, "rates": {"a": 0.1}})
    append_metrics(path, {"epoch": 2, "acc": float("nan")})
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    assert raw.count(b"\n") == 2
    assert read_metrics(path) == [{"epoch": 1, "acc": 0.5, "rates": {"a": 0.1}}, {"epoch": 2, "acc": None}]


def test_metrics_skip_incomplete_last_line(tmp_path):
    path = tmp_path / METRICS_FILE
    append_metrics(path, {"epoch": 1})
    with open(path, "ab") as handle:
        handle.write(b'{"epoch": 2, "ac')
    assert read_metrics(path) == [{"epoch": 1}]
    assert truncate_metrics(path, last_epoch=5) == 0
    assert path.read_bytes() == b'{"epoch": 1}\n'


def test_truncate_metrics_drops_later_epochs(tmp_path):
    path = tmp_path / METRICS_FILE
    for epoch in (1, 2, 3):
        append_metrics(path, {"epoch": epoch})
    assert truncate_metrics(path, last_epoch=1) == 2
    assert read_metrics(path) == [{"epoch": 1}]


def test_rng_state_round_trip(tmp_path):
    import random

    import numpy as np

    generator = torch.Generator().manual_seed(3)
    state = capture_rng_state(generator)
    save_checkpoint(tmp_path / "rng.pt", {"rng": state})
    expected = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=generator).item())
    loaded = torch.load(tmp_path / "rng.pt", weights_only=True)["rng"]
    restore_rng_state(loaded, generator)
    again = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=generator).item())
    assert again == expected


# -- optimizer and schedule ---------------------------------------------------------------------


def test_schedule_warmup_then_cosine():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scheduler = build_scheduler(optimizer, total_steps=10, warmup_steps=4, warmup_start_factor=0.01, min_lr=0.0)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [0.1 * (0.01 + (1 - 0.01) * step / 4) for step in range(4)]
    expected += [0.1 * 0.5 * (1 + math.cos(math.pi * step / 6)) for step in range(6)]
    assert lrs == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_parameter_groups_bias_without_decay():
    from ei_tutorial.models import build_model

    model = build_model("mlp", "ei", widths=[8])
    groups = {group["name"]: group for group in parameter_groups(model, 5e-4)}
    decay = {id(p) for p in groups["decay"]["params"]}
    no_decay = {id(p) for p in groups["no_decay"]["params"]}
    layer = model.hidden[0].layer
    for name in ("weight_ee", "weight_ie", "weight_ei", "gain_e", "gain_i"):
        assert id(getattr(layer, name)) in decay
    assert id(layer.bias) in no_decay
    assert groups["decay"]["weight_decay"] == 5e-4
    assert groups["no_decay"]["weight_decay"] == 0.0
    assert len(decay) + len(no_decay) == len([p for p in model.parameters() if p.requires_grad])


def test_parameter_groups_batch_norm():
    from ei_tutorial.models import build_model

    model = build_model("mlp", "bn", widths=[8])
    groups = {group["name"]: group for group in parameter_groups(model, 1e-4)}
    norm = model.hidden[0].layer.module[1]
    no_decay = {id(p) for p in groups["no_decay"]["params"]}
    assert id(norm.weight) in no_decay
    assert id(norm.bias) in no_decay
    assert id(model.hidden[0].layer.module[0].weight) in {id(p) for p in groups["decay"]["params"]}


# -- training runs ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def straight_run(mnist_data, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("straight")
    result = train(tiny_config(out_dir))
    return result, out_dir / "tiny"


def test_train_writes_outputs(straight_run):
    result, run_dir = straight_run
    assert result.status == "completed"
    assert result.epochs_completed == 2
    assert (run_dir / LAST).is_file()
    assert (run_dir / BEST).is_file()
    records = read_metrics(run_dir / METRICS_FILE)
    assert [r["epoch"] for r in records] == [1, 2]
    expected_keys = {
        "epoch", "step", "lr", "train_loss", "train_acc", "heldout_loss", "heldout_acc",
        "firing_rate", "current_mean", "current_std", "seconds",
    }
    assert set(records[0]) == expected_keys
    assert list(records[0]["firing_rate"]) == ["hidden.0"]
    assert set(records[0]["current_std"]) == {"hidden.0", "readout"}
    assert records[1]["step"] == 16


def test_train_learns_real_digits(mnist_data, tmp_path):
    # Measured with LEARNING_OVERRIDES on one CPU thread, seeds 0-9: held-out accuracy 0.669
    # (seed 0, the one used here) to 0.850. Chance is 0.1, and lr 1e-6 gives 0.052.
    result = train(tiny_config(tmp_path, **LEARNING_OVERRIDES))
    assert result.status == "completed"
    assert result.history[-1]["heldout_acc"] > 0.5


def test_train_keeps_dale_law(straight_run):
    from ei_tutorial import dale_violations

    result, _ = straight_run
    assert dale_violations(result.model) == {}


def test_checkpoint_contents(straight_run):
    result, run_dir = straight_run
    checkpoint = load_checkpoint(run_dir / LAST)
    assert checkpoint["epoch"] == 2
    assert checkpoint["global_step"] == 16
    assert checkpoint["config"]["arch"] == "mlp"
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(checkpoint["model"][name], tensor)


def test_same_seed_same_metrics(straight_run, tmp_path):
    _, run_dir = straight_run
    train(tiny_config(tmp_path))
    first = without_seconds(read_metrics(run_dir / METRICS_FILE))
    second = without_seconds(read_metrics(tmp_path / "tiny" / METRICS_FILE))
    assert second == first


def test_resume_reproduces_uninterrupted_run(straight_run, tmp_path, monkeypatch):
    straight, run_dir = straight_run
    original_finish = loop_module._Run._finish_epoch

    def finish_then_terminate(self):
        record = original_finish(self)
        if self.epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return record

    monkeypatch.setattr(loop_module._Run, "_finish_epoch", finish_then_terminate)
    first = train(tiny_config(tmp_path))
    monkeypatch.undo()
    assert first.status == "interrupted"
    assert first.stop_signal == "SIGTERM"
    assert first.epochs_completed == 1

    resumed = train(tiny_config(tmp_path), resume=True)
    assert resumed.status == "completed"
    expected = without_seconds(read_metrics(run_dir / METRICS_FILE))
    assert without_seconds(read_metrics(tmp_path / "tiny" / METRICS_FILE)) == expected
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name


def test_resume_without_checkpoint(mnist_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(tiny_config(tmp_path), resume=True)


def test_existing_run_needs_resume_or_overwrite(straight_run, tmp_path):
    _, run_dir = straight_run
    with pytest.raises(ValueError, match="already holds a run"):
        train(tiny_config(run_dir.parent))


def test_resume_rejects_other_architecture(straight_run, tmp_path):
    _, run_dir = straight_run
    target = tmp_path / "tiny"
    target.mkdir()
    (target / LAST).write_bytes((run_dir / LAST).read_bytes())
    with pytest.raises(CheckpointError) as error:
        train(tiny_config(tmp_path, arch="vgg8", widths=[8] * 5), resume=True)
    message = str(error.value)
    assert str(target / LAST) in message
    assert "arch: checkpoint 'mlp', expected 'vgg8'" in message


def test_resume_rejects_changed_settings(straight_run, tmp_path):
    _, run_dir = straight_run
    target = tmp_path / "tiny"
    target.mkdir()
    (target / LAST).write_bytes((run_dir / LAST).read_bytes())
    with pytest.raises(CheckpointError, match="lr: checkpoint 0.05, now 0.1"):
        train(tiny_config(tmp_path, lr=0.1), resume=True)


def test_resume_rejects_truncated_checkpoint(straight_run, tmp_path):
    _, run_dir = straight_run
    target = tmp_path / "tiny"
    target.mkdir()
    data = (run_dir / LAST).read_bytes()
    (target / LAST).write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        train(tiny_config(tmp_path), resume=True)


def test_nonfinite_loss_stops_and_keeps_checkpoint(mnist_data, tmp_path, monkeypatch):
    import torch.nn.functional as F

    calls = {"count": 0}

    def cross_entropy(logits, labels, **kwargs):
        calls["count"] += 1
        loss = F.cross_entropy(logits, labels, **kwargs)
        if calls["count"] == 11 and logits.requires_grad:  # step 3 of epoch 2 (8 steps per epoch)
            return loss * float("nan")
        return loss

    class PatchedFunctional:
        def __getattr__(self, name):
            return getattr(F, name)

    patched = PatchedFunctional()
    patched.cross_entropy = cross_entropy
    monkeypatch.setattr(loop_module, "F", patched)
    with pytest.raises(NonFiniteLossError) as error:
        train(tiny_config(tmp_path))
    message = str(error.value)
    assert "epoch 2, step 3" in message
    assert str(tmp_path / "tiny" / LAST) in message
    assert load_checkpoint(tmp_path / "tiny" / LAST)["epoch"] == 1


def test_bn_variant_trains(mnist_data, tmp_path):
    # Measured with these settings on one CPU thread, seeds 0-5: held-out accuracy 0.893 to
    # 0.910 (0.910 with seed 0, the one used here). Chance is 0.1, and lr 1e-6 gives 0.11.
    result = train(tiny_config(tmp_path, **{**LEARNING_OVERRIDES, "variant": "bn", "lr": 0.1}))
    assert result.status == "completed"
    assert result.history[0]["heldout_acc"] > 0.7


def test_evaluate_cli_matches_metrics(straight_run, capsys):
    _, run_dir = straight_run
    assert evaluate_main(["--checkpoint", str(run_dir / LAST), "--json", "--limit", "128"]) == 0
    report = json.loads(capsys.readouterr().out)
    last = read_metrics(run_dir / METRICS_FILE)[-1]
    assert report["acc"] == pytest.approx(last["heldout_acc"], abs=1e-12)
    assert report["firing_rate"] == pytest.approx(last["firing_rate"], rel=1e-9)
    assert report["epoch"] == 2


def test_evaluate_cli_corrupt_checkpoint(tmp_path, capsys):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    assert evaluate_main(["--checkpoint", str(path)]) == 1
    assert str(path) in capsys.readouterr().err


def test_train_cli_bad_config_exit_status(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: [\n")
    assert main(["--config", str(path)]) == 1
    assert "malformed YAML" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_keeps_checkpoint_resumable(mnist_data, tmp_path):
    overrides = [f"{key}={json.dumps(value)}" for key, value in tiny_values(tmp_path, epochs=12).items()]
    command = [sys.executable, "-m", "ei_tutorial.train", *overrides]
    env = {**os.environ, "EI_TUTORIAL_DATA": str(mnist_data), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    last = tmp_path / "tiny" / LAST
    deadline = time.monotonic() + 120
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert last.exists(), process.communicate()[1].decode()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    log = stderr.decode()
    assert process.returncode == 128 + signal.SIGTERM, log
    assert "received SIGTERM" in log
    assert "Continue with --resume" in log
    stopped_at = load_checkpoint(last)["epoch"]
    assert 1 <= stopped_at < 12
    assert not list((tmp_path / "tiny").glob(".*.tmp"))

    finished = subprocess.run([*command, "--resume"], cwd=REPO, env=env, capture_output=True, timeout=300)
    assert finished.returncode == 0, finished.stderr.decode()
    records = read_metrics(tmp_path / "tiny" / METRICS_FILE)
    assert [r["epoch"] for r in records] == list(range(1, 13))
    assert load_checkpoint(last)["epoch"] == 12


@pytest.mark.cuda
@pytest.mark.parametrize("compile_model", [False, True])
def test_cuda_mixed_precision_trains(mnist_data, tmp_path, compile_model):
    from ei_tutorial.training.precision import choose_precision

    precision = choose_precision(torch.device("cuda"), amp=True)
    assert precision.enabled
    result = train(tiny_config(tmp_path, device="cuda", amp=True, compile=compile_model, **LEARNING_OVERRIDES))
    assert result.status == "completed"
    assert math.isfinite(result.history[0]["train_loss"])
    # NOTE: 0.3 sits below the CPU float32 minimum of test_train_learns_real_digits (0.669)
    # because these settings have not been measured under CUDA mixed precision.
    assert result.history[0]["heldout_acc"] > 0.3
    assert next(result.model.parameters()).device.type == "cuda"
