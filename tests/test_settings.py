"""Tests for ei_tutorial.settings.quick_mode."""

from __future__ import annotations

import pytest

from ei_tutorial.settings import QUICK_ENV_VAR, quick_mode


def test_quick_mode_default_true(monkeypatch):
    monkeypatch.delenv(QUICK_ENV_VAR, raising=False)
    assert quick_mode() is True


@pytest.mark.parametrize("value", ["1", "true", "YES", " on ", ""])
def test_quick_mode_true_values(monkeypatch, value):
    monkeypatch.setenv(QUICK_ENV_VAR, value)
    assert quick_mode() is True


@pytest.mark.parametrize("value", ["0", "false", "No", "off"])
def test_quick_mode_false_values(monkeypatch, value):
    monkeypatch.setenv(QUICK_ENV_VAR, value)
    assert quick_mode() is False


def test_quick_mode_rejects_invalid(monkeypatch):
    monkeypatch.setenv(QUICK_ENV_VAR, "fast")
    with pytest.raises(ValueError, match=r"EI_TUTORIAL_QUICK='fast' is not a valid setting"):
        quick_mode()
