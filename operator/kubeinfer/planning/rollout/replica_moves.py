"""Zero-spare rollouts: replicas move one at a time from stable to the candidate.

When the pool's free GPUs cannot hold the candidate's largest step beside a full stable, a canary
rollout keeps the service's pod count fixed at ``total`` (stable's count when it started) and
moves replicas instead: move ``k`` (step ``k - 1``) runs ``k`` candidate pods and ``total - k``
stable pods, traffic follows the ready candidate pods' share, and analysis gates each move; the
last move (stable to 0) comes with promotion. No version grows past the GPU sets the other has
released: :func:`capped` lets a Deployment grow only by the sets no pod (terminating ones
included) or allocated claim of the service still holds, so a new pod is never created to wait
on GPUs that a stable pod still holds.

Owns the mode choice, the move schedule (candidate pods, weight and pause of each move) and the
growth cap. Must not: I/O, clocks, placement (``rollout_gpus`` says where pods go).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kubeinfer.api import inference_service as api

SURGE = "Surge"
ZERO_SPARE = "ZeroSpare"


@dataclass(frozen=True)
class Capacity:
    """Whether the pool holds the candidate beside a full stable, as placement measured it."""

    surge_fits: bool = True
    free_gpus: int | None = None
    """GPUs of the pool neither stable nor anyone else plans on; None without GPUs."""
    surge_gpus: int = 0
    """GPUs the candidate's largest step needs beside stable."""


@dataclass(frozen=True)
class Occupancy:
    """The service's pods as observed: what still holds GPU sets."""

    stable: int = 0
    """Stable pods not terminating."""
    candidate: int = 0
    """Candidate pods not terminating."""
    holding: int = 0
    """Pods of every version, terminating ones included, or allocated claims if more."""


def choose(rollout: api.Rollout, capacity: Capacity) -> str | None:
    """The mode a starting rollout runs in; None while it must wait for free GPUs."""
    if rollout.gpu_surge == "never":
        return ZERO_SPARE
    if rollout.gpu_surge == "always" or capacity.surge_fits:
        return SURGE
    return ZERO_SPARE if rollout.strategy == "canary" else None


def why(rollout: api.Rollout, capacity: Capacity) -> str:
    """One sentence on the mode chosen, for the Event and the waiting condition."""
    if rollout.gpu_surge == "never":
        return "rollout.gpuSurge is never"
    free = "no" if not capacity.free_gpus else str(capacity.free_gpus)
    return (
        f"the pool has {free} free GPUs and the candidate's largest step needs "
        f"{capacity.surge_gpus} beside stable"
    )


def moves(total: int) -> int:
    """Analysed moves: every replica but the last, which moves with promotion (one if alone)."""
    return max(total - 1, 1)


def candidate_at(total: int, step: int) -> int:
    """Candidate pods at ``step``; the step after the last analysed move holds all of them."""
    return min(step + 1, total)


def weight(total: int, ready: int) -> int:
    """Percent of traffic for ``ready`` candidate pods of ``total``."""
    return round(100 * min(ready, total) / total) if total else 0


def pause_at(rollout: api.Rollout, total: int, step: int) -> str:
    """The pause of the first canary step that would run as many candidate pods (else the last)."""
    if not rollout.steps:
        return "0s"
    for s in rollout.steps:
        if math.ceil(total * s.weight / 100) >= candidate_at(total, step):
            return s.pause
    return rollout.steps[-1].pause


def capped(target: int, *, active: int, total: int, holding: int) -> int:
    """Replicas to ask of a Deployment heading for ``target``: it shrinks at once, and grows
    only by the GPU sets of ``total`` that no pod or claim of the service still holds."""
    if target <= active:
        return target
    return min(target, active + max(total - holding, 0))
