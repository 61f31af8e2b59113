"""How a simulator answers: added latency, its jitter, the error rate and how many at once.

Owns: the frozen ``Behaviour`` value, its JSON form (the admin endpoint's body, camelCase keys)
with validation, and drawing one request's delay and outcome from a seeded random source.
Must not: sleep or serve anything (``server`` does).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from typing import Any

_JSON_KEYS = {
    "latencyMs": "latency_ms",
    "jitterMs": "jitter_ms",
    "errorRate": "error_rate",
    "concurrency": "concurrency",
}
MAX_LATENCY_MS = 60_000.0
MAX_CONCURRENCY = 4096


class BehaviourError(ValueError):
    """A behaviour document names an unknown key or holds an out-of-range value."""


@dataclasses.dataclass(frozen=True)
class Behaviour:
    """Latency added to every completion (uniform in ``latency_ms +- jitter_ms``), error rate,
    and ``concurrency``: how many completions the server works on at once, later ones wait
    their turn (a GPU's batch slots; 0: unlimited). With a limit, latency grows with the load
    on the pod, and adding replicas brings it back down."""

    latency_ms: float = 20.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    concurrency: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.latency_ms <= MAX_LATENCY_MS:
            raise BehaviourError(f"latencyMs must be in [0, {MAX_LATENCY_MS:.0f}]")
        if not 0.0 <= self.jitter_ms <= self.latency_ms:
            raise BehaviourError("jitterMs must be in [0, latencyMs]")
        if not 0.0 <= self.error_rate <= 1.0:
            raise BehaviourError("errorRate must be in [0, 1]")
        if not 0 <= self.concurrency <= MAX_CONCURRENCY:
            raise BehaviourError(f"concurrency must be in [0, {MAX_CONCURRENCY}]")

    def updated(self, document: Mapping[str, Any]) -> Behaviour:
        """A copy with the camelCase keys of ``document`` replaced; unknown keys are an error."""
        unknown = sorted(set(document) - set(_JSON_KEYS))
        if unknown:
            raise BehaviourError(f"unknown keys {unknown}; known: {sorted(_JSON_KEYS)}")
        merged: dict[str, Any] = {**self.to_json(), **document}
        for key, value in merged.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise BehaviourError(f"{key} must be a number, got {value!r}")
        if merged["concurrency"] != int(merged["concurrency"]):
            raise BehaviourError(
                f"concurrency must be a whole number, got {merged['concurrency']!r}"
            )
        return Behaviour(
            latency_ms=float(merged["latencyMs"]),
            jitter_ms=float(merged["jitterMs"]),
            error_rate=float(merged["errorRate"]),
            concurrency=int(merged["concurrency"]),
        )

    def to_json(self) -> dict[str, float | int]:
        """The admin endpoint's representation."""
        return {key: getattr(self, field) for key, field in _JSON_KEYS.items()}

    def delay_seconds(self, rng: random.Random) -> float:
        """One request's added latency."""
        spread = rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return (self.latency_ms + spread) / 1000.0

    def fails(self, rng: random.Random) -> bool:
        """Whether one request answers with a server error."""
        return self.error_rate > 0.0 and rng.random() < self.error_rate
