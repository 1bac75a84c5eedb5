"""Smoke test of experiments/mnist_depth.py in its --quick mode, on the MNIST files in ``EI_TUTORIAL_DATA``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "mnist_depth.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("mnist_depth", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_run_writes_report(mnist_data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EI_TUTORIAL_DATA", str(mnist_data_root))
    threads = torch.get_num_threads()
    script = _load_script()
    results = tmp_path / "RESULTS.md"
    try:
        status = script.main(["--quick", "--out", str(tmp_path / "runs"), "--results", str(results)])
    finally:
        torch.set_num_threads(threads)
    assert status == 0
    text = results.read_text()
    assert "--quick (smoke run: the numbers mean nothing)" in text
    assert "### Depth 8 (mnist_mlp_depth8)" in text
    assert "### Depth 16" in text
    assert "E-I MLP reaches >= 95% held-out accuracy" in text
    assert "library code at commit" in text
    summary = json.loads((tmp_path / "runs" / "summary.json").read_text())
    assert [row["part"] for row in summary].count("depth16") == 2
    assert [row["part"] for row in summary].count("depth8") == 3
    assert {row["variant"] for row in summary if row["part"] == "depth8"} == {"ei", "bn", "plain"}
    assert all(row["epochs"] == 1 for row in summary)
    assert "[depth8] plain" in capsys.readouterr().out

    checkpoints = sorted((tmp_path / "runs").glob("*/last.pt"))
    written = [path.stat().st_mtime_ns for path in checkpoints]
    try:
        assert script.main(["--quick", "--reuse", "--out", str(tmp_path / "runs")]) == 0
    finally:
        torch.set_num_threads(threads)
    reused = json.loads((tmp_path / "runs" / "summary.json").read_text())
    assert [row["accs"] for row in reused] == [row["accs"] for row in summary]
    assert [path.stat().st_mtime_ns for path in checkpoints] == written  # read back, not retrained


def test_planned_runs_cover_investigation():
    script = _load_script()
    labels = [run.label for run in script.planned_runs(["depth16"])]
    assert any("warm-up" in label for label in labels)
    assert any("lr" in label for label in labels)
    assert any("widths" in label for label in labels)
    assert any("E:I ratio" in label for label in labels)
