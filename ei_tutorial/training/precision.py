"""Mixed precision on CUDA: bfloat16 autocast where the GPU supports it, else float16 with loss scaling."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Optional

import torch


@dataclass(frozen=True)
class Precision:
    """The autocast settings of a run.

    Attributes:
        device_type: ``"cuda"``, ``"cpu"`` or ``"mps"``.
        dtype: The autocast dtype, or None for full float32.
    """

    device_type: str
    dtype: Optional[torch.dtype]

    @property
    def enabled(self) -> bool:
        """Whether autocast is on."""
        return self.dtype is not None

    @property
    def needs_scaler(self) -> bool:
        """Whether gradients need loss scaling (float16 only; bfloat16 has float32's range)."""
        return self.dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        """Return the autocast context for one forward pass (a no-op when disabled)."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def autocast_factory(self) -> Callable[[], contextlib.AbstractContextManager]:
        """Return a function that makes a fresh :meth:`autocast` context on each call."""
        return self.autocast

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Return a gradient scaler, enabled only for float16."""
        return torch.amp.GradScaler(self.device_type if self.device_type == "cuda" else "cpu", enabled=self.needs_scaler)

    def describe(self) -> str:
        """Return ``"float32"``, ``"bfloat16 autocast"`` or ``"float16 autocast with loss scaling"``."""
        if not self.enabled:
            return "float32"
        if self.needs_scaler:
            return "float16 autocast with loss scaling"
        return "bfloat16 autocast"


def choose_precision(device: torch.device, amp: bool) -> Precision:
    """Return bfloat16 or float16 autocast on CUDA when ``amp`` is set, else float32.

    Mixed precision is used on CUDA only; on the CPU and MPS the run stays in float32.
    NOTE: the CUDA paths (bfloat16, float16 with loss scaling) are tested only by the
    cuda-marked tests, which have not run on a GPU so far.
    """
    if not amp or device.type != "cuda":
        return Precision(device.type, None)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Precision("cuda", dtype)
