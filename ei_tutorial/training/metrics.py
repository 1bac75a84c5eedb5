"""The per-epoch metrics log, ``metrics.jsonl``: one JSON object per line, one line per epoch.

Each line is written with a single ``os.write`` on a file opened for appending and then
synced to disk, so a crash never leaves half a line behind a complete one. Keys of a
line: ``epoch`` (1-based), ``step`` (optimizer steps so far), ``lr`` (of the epoch's
last step), ``train_loss``, ``train_acc``, ``heldout_loss``, ``heldout_acc``
(accuracies as fractions in [0, 1]), ``firing_rate``, ``current_mean`` and
``current_std`` (mappings from layer name to the value on the held-out data),
``seconds`` (wall-clock time of the epoch, evaluation included).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


def _clean(value: Any) -> Any:
    # JSON has no NaN or infinity; write them as null so every line stays valid JSON.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def format_line(record: Mapping[str, Any]) -> bytes:
    """Encode one record as a JSON line (keys in insertion order, NaN as null)."""
    return (json.dumps(_clean(record), allow_nan=False) + "\n").encode("utf-8")


def append_metrics(path: Union[str, Path], record: Mapping[str, Any]) -> None:
    """Append ``record`` as one line to ``path``, durably.

    Args:
        path: The ``metrics.jsonl`` file; created if missing.
        record: JSON-serialisable values.

    Raises:
        OSError: If the line cannot be written completely.
    """
    line = format_line(record)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(f"wrote {written} of {len(line)} bytes to {path}; the disk may be full")
        os.fsync(fd)
    finally:
        os.close(fd)


def read_metrics(path: Union[str, Path]) -> list[dict[str, Any]]:
    """Return the records of a ``metrics.jsonl`` file, or an empty list if it does not exist.

    A last line without its newline (a write cut short by a crash on a filesystem that
    does not guarantee atomic appends) is skipped with a WARNING.

    Raises:
        ValueError: If a complete line is not valid JSON; the message names the line.
    """
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if number == len(lines):
            logger.warning("%s: skipping an incomplete last line: %r", path, line[:80])
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: line {number} is not valid JSON: {error}") from None
    return records


def truncate_metrics(path: Union[str, Path], last_epoch: int) -> int:
    """Drop the lines of epochs after ``last_epoch``, rewriting the file atomically.

    A run stopped after logging an epoch but before its checkpoint was written leaves
    such lines behind; a resumed run repeats those epochs and logs them again.

    Returns:
        The number of lines dropped.
    """
    path = Path(path)
    records = read_metrics(path)
    retained = [record for record in records if record.get("epoch", 0) <= last_epoch]
    dropped = len(records) - len(retained)
    if dropped or (path.is_file() and not path.read_bytes().endswith(b"\n") and path.stat().st_size):
        _rewrite(path, retained)
    return dropped


def _rewrite(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        for record in records:
            handle.write(format_line(record))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
