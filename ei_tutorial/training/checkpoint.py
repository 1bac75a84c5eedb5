"""Checkpoints written atomically and read back with clear errors.

A checkpoint is a dict saved with :func:`torch.save`. It holds the config, the model,
optimizer, scheduler and gradient-scaler states, the epoch and the best held-out
accuracy, and the random-number-generator states (see :mod:`ei_tutorial.training.rng`).
It contains only tensors and Python builtins, so it loads with ``weights_only=True``.

A checkpoint is first written to a temporary file in the same folder, flushed and
synced to disk, then renamed over the old one with :func:`os.replace`. A crash or a
signal at any moment therefore leaves either the old complete file or the new one.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Union

import torch

logger = logging.getLogger(__name__)

#: Version of the checkpoint layout; bumped when keys change meaning.
CHECKPOINT_FORMAT = 1
LAST = "last.pt"
BEST = "best.pt"

_REQUIRED_KEYS = ("format", "config", "model", "epoch")


class CheckpointError(ValueError):
    """Raised when a checkpoint file is unreadable, incomplete or belongs to another model."""


def _fsync_folder(folder: Path) -> None:
    # Syncing the folder makes the rename itself durable. Not every platform allows
    # opening a folder (Windows does not), and the rename is atomic either way.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: Union[str, Path], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically.

    Args:
        path: Destination file; its folder is created if missing.
        payload: The checkpoint dict.

    Returns:
        The destination path.

    Raises:
        OSError: If the file cannot be written; the previous file at ``path``, if any,
            is left unchanged and the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    temporary = Path(handle.name)
    try:
        with handle:
            torch.save(dict(payload), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` and check its layout.

    Args:
        path: The checkpoint file.
        map_location: Device the tensors are loaded onto.

    Returns:
        The checkpoint dict.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        CheckpointError: If the file is truncated, corrupt, not a checkpoint of this
            library, or of an unsupported format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError or UnpicklingError here
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(error).__name__}: {error}); the file is "
            "truncated or corrupt. Use another checkpoint (best.pt or last.pt) or start a new run"
        ) from error
    if not isinstance(payload, dict) or any(key not in payload for key in _REQUIRED_KEYS):
        found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"checkpoint {path} is not an ei_tutorial training checkpoint: expected keys "
            f"{list(_REQUIRED_KEYS)}, found {found}"
        )
    if payload["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format version {payload['format']!r}, but this version of "
            f"ei_tutorial reads version {CHECKPOINT_FORMAT}"
        )
    return payload


def check_model_spec(checkpoint: Mapping[str, Any], expected: Mapping[str, Any], path: Union[str, Path]) -> None:
    """Raise if the checkpoint's model settings differ from ``expected``.

    Args:
        checkpoint: A dict returned by :func:`load_checkpoint`.
        expected: ``TrainConfig.model_spec()`` of the model the weights are loaded into.
        path: The checkpoint file, for the message.

    Raises:
        CheckpointError: Naming each differing setting with both values.
    """
    stored = checkpoint["config"]
    differences = [
        f"{key}: checkpoint {stored.get(key)!r}, expected {value!r}"
        for key, value in expected.items()
        if stored.get(key) != value
    ]
    if differences:
        raise CheckpointError(
            f"checkpoint {path} holds a different model ({'; '.join(differences)}); load it "
            "with the config it was trained with, or start a new run"
        )


def load_model_state(model: torch.nn.Module, checkpoint: Mapping[str, Any], path: Union[str, Path]) -> None:
    """Load the checkpoint's weights into ``model``, naming the file on a mismatch.

    Raises:
        CheckpointError: If parameter names or shapes differ from the model's.
    """
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise CheckpointError(
            f"checkpoint {path} does not fit the model {type(model).__name__}: {error}"
        ) from error
