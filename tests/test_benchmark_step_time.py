"""Tests for benchmarks/step_time.py on tiny models, and for its snnTorch-style baseline."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("step_time", REPO_ROOT / "benchmarks" / "step_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def step_time():
    return load_script()


TINY = ["--batch-sizes", "2", "--rounds", "2", "--warmup", "0", "--image-size", "8", "--threads", "1"]


def test_tiny_run_reports_every_variant(step_time, capsys):
    result = step_time.main(["--archs", "mlp", "vgg8", *TINY, "--no-write"])
    rows = {(row["arch"], row["variant"]): row for row in result["rows"]}
    assert set(rows) == {(arch, variant) for arch in ("mlp", "vgg8") for variant in step_time.DEFAULT_VARIANTS}
    for row in rows.values():
        assert len(row["times_s"]) == 2
        assert row["median_s"] > 0
        assert row["peak_bytes"] is not None and row["peak_bytes"] > 0
    assert rows[("vgg8", "bn")]["time_vs_bn"] == 1.0
    assert rows[("vgg8", "snntorch-bn")]["time_vs_snntorch_bn"] == 1.0
    table = capsys.readouterr().out
    assert "| vgg8 | 2 | ei |" in table
    assert "Time / BN" in table


def test_bn_always_measured(step_time):
    args = step_time.parse_args(["--variants", "ei"])
    assert args.variants == ["bn", "ei"]


@pytest.mark.parametrize("flags", [["--rounds", "0"], ["--batch-sizes", "1"], ["--warmup", "-1"]])
def test_invalid_options_rejected(step_time, flags):
    with pytest.raises(SystemExit):
        step_time.parse_args(flags)


def test_paired_ratio_is_median_of_round_ratios(step_time):
    # Rounds where the machine was twice as slow for both variants give the same ratio.
    assert step_time.paired_ratio([2.0, 4.0, 3.0], [1.0, 2.0, 2.0]) == 2.0
    assert step_time.paired_ratio(None, [1.0]) is None


def test_ei_summary_ranges_vgg_rows(step_time):
    rows = [
        {"arch": "vgg8", "variant": "ei", "time_vs_bn": 1.21, "time_vs_snntorch_bn": 0.9, "memory_vs_bn": 1.3},
        {"arch": "vgg11", "variant": "ei", "time_vs_bn": 1.34, "time_vs_snntorch_bn": 1.1, "memory_vs_bn": None},
        # Neither an MLP row nor a batch-norm row counts.
        {"arch": "mlp", "variant": "ei", "time_vs_bn": 1.9, "time_vs_snntorch_bn": 2.0, "memory_vs_bn": 1.7},
        {"arch": "vgg8", "variant": "bn", "time_vs_bn": 1.0, "time_vs_snntorch_bn": 0.5, "memory_vs_bn": 1.0},
    ]
    summary = step_time.ei_summary(rows)
    assert summary == (
        "E-I VGG rows: step time / BN 1.21 to 1.34 (target at most 1.3); "
        "step time / snnTorch BN 0.90 to 1.10 (target at most 1.3); "
        "peak memory / BN 1.30 to 1.30 (target at most 1.5)."
    )


def test_ei_summary_without_vgg_rows(step_time):
    assert step_time.ei_summary([{"arch": "mlp", "variant": "ei", "time_vs_bn": 1.5}]) is None


def test_write_atomically_leaves_no_temporary(step_time, tmp_path):
    target = tmp_path / "results" / "latest.json"
    step_time.write_atomically(target, json.dumps({"a": 1}))
    assert json.loads(target.read_text()) == {"a": 1}
    assert [path.name for path in target.parent.iterdir()] == ["latest.json"]


def test_snntorch_vgg_matches_library_shapes(step_time):
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from snntorch_baseline import build_snntorch_model

    from ei_tutorial.models import build_model

    baseline = build_snntorch_model("vgg8", 1, 28)
    library = build_model("vgg8", "bn", in_channels=1, image_size=28)
    conv_shapes = [m.weight.shape for m in baseline.modules() if isinstance(m, torch.nn.Conv2d)]
    library_shapes = [m.weight.shape for m in library.modules() if isinstance(m, torch.nn.Conv2d)]
    assert conv_shapes == library_shapes
    assert baseline.readout.weight.shape == library.readout.weight.shape
    baseline.eval()
    x = torch.rand(3, 2, 1, 28, 28)
    first = baseline(x)
    assert first.shape == (2, 10)
    # A second call starts from zero potentials again, so it repeats the first.
    torch.testing.assert_close(baseline(x), first)
