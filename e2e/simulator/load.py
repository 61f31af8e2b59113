"""A load generator for simulators: open-loop, bounded in requests, time and concurrency.

Owns: sending ``POST /v1/completions`` at a fixed rate, round-robin over whatever targets the
caller's function returns at each send (so a growing fleet gets traffic, as a Service spreads
it), and counting outcomes. Must not: send anywhere but loopback (every target is checked), or
run unbounded (rate, duration, request count and concurrency all have hard ceilings).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
import urllib.parse
from collections.abc import Callable, Sequence

import aiohttp

from e2e.simulator import server

MAX_RATE = 500.0
MAX_DURATION_SECONDS = 900.0
MAX_REQUESTS = 200_000
MAX_CONCURRENCY = 256
REQUEST_TIMEOUT_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class Limits:
    """How much load: requests per second, for how long, at most how many, how many at once."""

    rate: float
    duration_s: float
    max_requests: int
    concurrency: int = 64

    def __post_init__(self) -> None:
        if not 0 < self.rate <= MAX_RATE:
            raise ValueError(f"rate must be in (0, {MAX_RATE:.0f}] requests/s")
        if not 0 < self.duration_s <= MAX_DURATION_SECONDS:
            raise ValueError(f"duration must be in (0, {MAX_DURATION_SECONDS:.0f}] s")
        if not 0 < self.max_requests <= MAX_REQUESTS:
            raise ValueError(f"max_requests must be in (0, {MAX_REQUESTS}]")
        if not 0 < self.concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be in (0, {MAX_CONCURRENCY}]")


ROLLOUT = Limits(rate=24.0, duration_s=900.0, max_requests=30_000, concurrency=32)
"""Steady traffic for a rollout under analysis: enough requests per analysis window that every
version's pods pass ``minSamples``, for as long as any rollout test runs."""


@dataclasses.dataclass(frozen=True)
class Report:
    """What the run did: requests sent, answers by status (0: no answer), requests skipped
    because ``concurrency`` were already in flight, and the wall time."""

    sent: int
    by_status: dict[int, int]
    skipped: int
    elapsed_s: float


def check_target(url: str) -> None:
    """Raise ``server.AddressError`` unless ``url`` is http(s) on a loopback host."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise server.AddressError(f"{url!r} is not an http(s) URL")
    server.require_loopback(parsed.hostname)


async def run(
    targets: Callable[[], Sequence[str]],
    limits: Limits,
    *,
    model: str,
    stop: asyncio.Event | None = None,
) -> Report:
    """Send completions until ``limits`` or ``stop`` end the run; return the counts."""
    statuses: collections.Counter[int] = collections.Counter()
    in_flight: set[asyncio.Task[None]] = set()
    slots = asyncio.Semaphore(limits.concurrency)
    body = {"model": model, "prompt": "kubeinfer load generator", "max_tokens": 8}
    started = time.monotonic()
    sent = skipped = 0
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)

    async def one(session: aiohttp.ClientSession, url: str) -> None:
        try:
            async with session.post(f"{url}/v1/completions", json=body) as response:
                await response.read()
                statuses[response.status] += 1
        except (aiohttp.ClientError, TimeoutError):
            statuses[0] += 1
        finally:
            slots.release()

    async with aiohttp.ClientSession(timeout=timeout) as session:
        index = 0
        while sent + skipped < limits.max_requests:
            now = time.monotonic() - started
            if now >= limits.duration_s or (stop is not None and stop.is_set()):
                break
            current = list(targets())
            if current and not slots.locked():
                url = current[index % len(current)]
                check_target(url)
                index += 1
                await slots.acquire()
                task = asyncio.create_task(one(session, url))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                sent += 1
            else:
                skipped += 1
            next_at = (sent + skipped) / limits.rate
            await asyncio.sleep(max(0.0, next_at - (time.monotonic() - started)))
        if in_flight:
            await asyncio.wait(in_flight, timeout=REQUEST_TIMEOUT_SECONDS)
    return Report(
        sent=sent,
        by_status=dict(statuses),
        skipped=skipped,
        elapsed_s=round(time.monotonic() - started, 3),
    )
