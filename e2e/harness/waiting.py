"""Polling with a deadline, for conditions the harness and tests wait on.

Owns: ``until()``, the single polling loop (sleeps between checks, never spins). Must not know
what it waits for; callers pass a condition and a description for the timeout message.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def until(
    condition: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    interval: float = 0.2,
    on_timeout: Callable[[], str] = lambda: "",
) -> None:
    """Return once ``condition()`` is true; ``TimeoutError`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            detail = on_timeout()
            raise TimeoutError(
                f"timed out after {timeout:.0f}s waiting for {what}\n{detail}".rstrip()
            )
        time.sleep(interval)
