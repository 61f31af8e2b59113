"""Polling with a deadline, for conditions the harness and tests wait on.

Owns: ``until()``, the single polling loop, and ``first()`` on top of it (sleeps between checks, never spins). Must not know
what it waits for; callers pass a condition and a description for the timeout message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


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


def first(
    check: Callable[[], Any],
    *,
    what: str = "",
    timeout: float = 60.0,
    interval: float = 0.5,
    on_timeout: Callable[[], str] = lambda: "",
) -> Any:
    """Return the first truthy ``check()``; ``TimeoutError`` naming ``what`` after ``timeout`` s."""
    found: list[Any] = []

    def holds() -> bool:
        result = check()
        if result:
            found.append(result)
        return bool(result)

    until(holds, what=what, timeout=timeout, interval=interval, on_timeout=on_timeout)
    return found[0]
