"""Graceful stop on Ctrl-C (SIGINT) or SIGTERM during training.

Inside :func:`stop_requests`, the first signal only sets a flag, which the training
loop checks before each step; the loop then stops without writing a partial
checkpoint, so the last complete one stays intact. A second Ctrl-C raises
``KeyboardInterrupt`` at once. Signal handlers can only be installed in the main
thread; elsewhere the context does nothing and signals keep their usual effect.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from typing import Iterator, Optional

logger = logging.getLogger(__name__)


class StopRequest:
    """Flag set by a handled signal.

    Attributes:
        signum: Number of the first signal received, or None.
    """

    def __init__(self) -> None:
        self.signum: Optional[int] = None

    @property
    def requested(self) -> bool:
        """Whether a stop signal has arrived."""
        return self.signum is not None

    @property
    def signal_name(self) -> str:
        """Name of the signal, e.g. ``"SIGTERM"``; empty if none arrived."""
        return signal.Signals(self.signum).name if self.signum is not None else ""


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """Turn SIGINT and SIGTERM into a :class:`StopRequest` flag for the duration of the block.

    The previous handlers are restored on exit.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handle(signum: int, _frame) -> None:
        if request.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not request.requested:
            request.signum = signum
            logger.warning(
                "received %s: stopping before the next step; the last complete checkpoint is kept",
                signal.Signals(signum).name,
            )

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
