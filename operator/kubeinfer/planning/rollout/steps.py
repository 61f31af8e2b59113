"""What each rollout step asks for: its weight, the candidate's pods, its pause, and the plan.

Owns the sizing a pass and ``status.rollout.plan`` share: the traffic weight of a step, how many
pods the candidate runs at it, how long it is held, and :func:`estimate` (time to promotion and
each step's weight, pods and extra GPUs, shown before anything changes). Must not: decide
whether a step advances (``machine`` does), I/O, clocks.
"""

from __future__ import annotations

import math

from kubeinfer.api import base
from kubeinfer.api import inference_service as api
from kubeinfer.planning.rollout import in_place, replica_moves
from kubeinfer.planning.rollout.state import State


def candidate_replicas(spec: api.InferenceServiceSpec, step: int, stable_replicas: int) -> int:
    """Pods the candidate runs at ``step`` (the stable version keeps its autoscaled count)."""
    full = max(stable_replicas, spec.replicas.min, 1)
    rollout = spec.rollout
    if rollout.strategy == "blueGreen":
        return full
    share = rollout.mirror_percent if rollout.strategy == "shadow" else weight(rollout, step)
    return max(1, math.ceil(full * share / 100))


def estimate(
    spec: api.InferenceServiceSpec, stable_replicas: int, state: State | None = None
) -> tuple[float, list[tuple[int, int, int, int]]]:
    """Seconds to promotion if every analysis passes, and (weight, candidate pods, stable pods,
    extra GPUs) per step; replicas that move, and versions loaded in place into stable's pods,
    need no extra GPU."""
    if state is not None and state.mode == replica_moves.ZERO_SPARE and state.total:
        total = state.total
        moves = range(replica_moves.moves(total))
        seconds = sum(
            base.duration_seconds(replica_moves.pause_at(spec.rollout, total, i)) for i in moves
        )
        return seconds, [
            (
                replica_moves.weight(total, replica_moves.candidate_at(total, i)),
                replica_moves.candidate_at(total, i),
                total - replica_moves.candidate_at(total, i),
                0,
            )
            for i in moves
        ]
    steps = spec.rollout.steps or [api.RolloutStep(weight=0)]
    seconds = sum(base.duration_seconds(s.pause) for s in steps)
    table = []
    reloading = in_place.enabled(spec)  # the step's pods are stable's own, reloaded
    for i, _ in enumerate(steps):
        pods = candidate_replicas(spec, i, stable_replicas)
        if reloading:
            pods = in_place.capped(pods, stable_replicas)
        table.append(
            (
                traffic_weight(spec.rollout, i),
                pods,
                stable_replicas - pods if reloading else stable_replicas,
                0 if reloading else pods * spec.resources.gpus,
            )
        )
    return seconds, table


def weight(rollout: api.Rollout, step: int) -> int:
    """Traffic weight the canary step ``step`` names (the last step's past the end)."""
    steps = rollout.steps
    return steps[min(step, len(steps) - 1)].weight if steps else 0


def traffic_weight(rollout: api.Rollout, step: int) -> int:
    """Weight the candidate actually gets at ``step``: a canary's step weight, else 0."""
    return weight(rollout, step) if rollout.strategy == "canary" else 0


def pause(rollout: api.Rollout, state: State) -> str:
    """How long the current step (or replica move) is held before it may advance."""
    if state.mode == replica_moves.ZERO_SPARE and state.total > 0:
        return replica_moves.pause_at(rollout, state.total, state.step)
    return rollout.steps[state.step].pause if state.step < len(rollout.steps) else "0s"
