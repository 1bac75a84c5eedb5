"""Tests of benchmarks/gpu_vgg8_mnist.py: the CPU dry run, and the error without CUDA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_vgg8_mnist.py"


@pytest.fixture(scope="module")
def data_env(mnist_data_root):
    return {**os.environ, "EI_TUTORIAL_DATA": str(mnist_data_root), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_dry_run_reports_throughput(data_env, tmp_path):
    output = tmp_path / "result.json"
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--output", str(output)],
        cwd=REPO, env=data_env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(output.read_text())
    assert result["dry_run"] is True
    assert result["timed_steps"] == 3
    assert result["images_per_second"] > 0
    assert result["precision"] == "float32"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_without_cuda_exits_with_message():
    # The script checks for CUDA before it loads any data, so this test needs no MNIST files.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 2
    assert "no CUDA device is available" in completed.stderr
    assert "--dry-run" in completed.stderr
