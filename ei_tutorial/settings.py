"""Course-wide settings read from environment variables.

``EI_TUTORIAL_QUICK`` chooses how large the chapters' experiments are:

* ``"1"`` (the default): the quick setting, sized so that each chapter runs in
  about a minute on a laptop CPU.
* ``"0"``: the full setting, with more data, epochs and wider networks, meant
  for a GPU.
"""

from __future__ import annotations

import os

QUICK_ENV_VAR = "EI_TUTORIAL_QUICK"

_TRUE_VALUES = ("1", "true", "yes", "on")
_FALSE_VALUES = ("0", "false", "no", "off")


def quick_mode() -> bool:
    """Return whether the chapters run in their quick CPU setting.

    Reads ``EI_TUTORIAL_QUICK`` on every call, so a notebook can change it with
    ``os.environ`` before the next cell. An unset or empty variable means quick.

    Returns:
        True for the quick setting, False for the full one.

    Raises:
        ValueError: If the variable is set to something other than
            1/0, true/false, yes/no or on/off (case-insensitive).
    """
    raw = os.environ.get(QUICK_ENV_VAR, "").strip().lower()
    if raw == "" or raw in _TRUE_VALUES:
        return True
    if raw in _FALSE_VALUES:
        return False
    raise ValueError(
        f"{QUICK_ENV_VAR}={os.environ[QUICK_ENV_VAR]!r} is not a valid setting. "
        f"Set it to '1' (quick CPU setting) or '0' (full setting for a GPU)."
    )
