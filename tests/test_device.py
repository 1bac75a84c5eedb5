"""Tests for ei_tutorial.device: the CUDA > MPS > CPU order and the Colab hint."""

from __future__ import annotations

import logging
import os
import sys
import types

import pytest
import torch

from ei_tutorial import device


@pytest.fixture
def no_colab(monkeypatch):
    """Remove every sign of Colab from the process."""
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    for name in [name for name in os.environ if name.startswith("COLAB_")]:
        monkeypatch.delenv(name)


def _set_backends(monkeypatch, *, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(device, "_mps_available", lambda: mps)


def test_get_device_prefers_cuda(monkeypatch, no_colab):
    _set_backends(monkeypatch, cuda=True, mps=True)
    assert device.get_device() == torch.device("cuda")


def test_get_device_mps_without_cuda(monkeypatch, no_colab):
    _set_backends(monkeypatch, cuda=False, mps=True)
    assert device.get_device() == torch.device("mps")


def test_get_device_cpu_fallback_silent(monkeypatch, no_colab, caplog):
    _set_backends(monkeypatch, cuda=False, mps=False)
    with caplog.at_level(logging.DEBUG, logger="ei_tutorial.device"):
        assert device.get_device() == torch.device("cpu")
    assert caplog.records == []


def test_colab_cpu_logs_gpu_hint(monkeypatch, no_colab, caplog):
    _set_backends(monkeypatch, cuda=False, mps=False)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    with caplog.at_level(logging.WARNING, logger="ei_tutorial.device"):
        assert device.get_device() == torch.device("cpu")
    assert len(caplog.records) == 1
    assert "Runtime > Change runtime type" in caplog.records[0].getMessage()
    assert "GPU" in caplog.records[0].getMessage()


def test_colab_detected_from_env(monkeypatch, no_colab):
    assert device.running_on_colab() is False
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-test")
    assert device.running_on_colab() is True


def test_colab_with_gpu_no_hint(monkeypatch, no_colab, caplog):
    _set_backends(monkeypatch, cuda=True, mps=False)
    monkeypatch.setenv("COLAB_GPU", "1")
    with caplog.at_level(logging.WARNING, logger="ei_tutorial.device"):
        assert device.get_device() == torch.device("cuda")
    assert caplog.records == []
