"""When a rollout next needs a look: the analysis schedule and the reconcile's timer.

Owns :func:`next_analysis` (one ``analysis.interval`` after the last, or as the step's pause
ends), :func:`analysis_due` (whether the controller queries Prometheus this pass) and
:func:`requeue_after` (the timer the reconcile arms, since no watch event may come). Must not:
decide what a pass does (``machine`` does), I/O; ``now`` is passed in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kubeinfer.api import base
from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import Reason
from kubeinfer.planning.rollout import steps
from kubeinfer.planning.rollout.state import Decision, State

MIRROR_HOLDS = frozenset({Reason.MIRROR_UNSUPPORTED, Reason.MIRROR_SUPPORT_UNKNOWN})
"""Progressing reasons of a shadow whose gateway cannot be trusted to mirror."""


def next_analysis(spec: api.InferenceServiceSpec, state: State) -> datetime | None:
    """When the next analysis is due: one interval after the last, or as the step's pause ends.

    None when no analysis will run without a change (no rollout, paused, or the candidate's pods
    have not started the step yet). The pause end counts only when it falls after the last
    analysis, so a step advances as soon as its pause is over rather than at the next interval.
    """
    if state.phase in ("Idle", "Promoted", "RolledBack", "Paused"):
        return None
    if state.last_analysis is None:
        return state.step_started
    interval = timedelta(seconds=base.duration_seconds(spec.rollout.analysis.interval))
    due = state.last_analysis + interval
    if state.step_started is not None:
        pause = timedelta(seconds=base.duration_seconds(steps.pause(spec.rollout, state)))
        pause_end = state.step_started + pause
        if state.last_analysis < pause_end < due:
            due = pause_end
    return due


def analysis_due(spec: api.InferenceServiceSpec, state: State, now: datetime) -> bool:
    """Whether the controller should query Prometheus for this pass."""
    if state.phase in ("Idle", "Promoted", "RolledBack", "Paused"):
        return False
    if state.last_analysis is None:
        return True
    due = next_analysis(spec, state)
    return due is not None and now >= due


REQUEUE_FLOOR_SECONDS = 1.0
"""Shortest requeue, so a due time already past never spins the loop."""


def requeue_after(
    spec: api.InferenceServiceSpec, decision: Decision, now: datetime
) -> float | None:
    """Seconds until a rollout next needs a look, else None.

    That is exactly when its next analysis is due (:func:`next_analysis`), or a retired version's
    scale-down time. A candidate still starting is woken by its Deployment's watch event; one
    interval is the safety net then. A paused rollout waits for a person; a mirror hold for its
    Gateway or GatewayClass to change, which their watches report: neither needs a timer.
    """
    scale_down = decision.state.scale_down_at
    if decision.candidate is None and decision.retired is not None and scale_down:
        return max((scale_down - now).total_seconds(), REQUEUE_FLOOR_SECONDS)
    if decision.candidate is None or decision.state.phase == "Paused":
        return None
    note = decision.state.note
    if note is not None and note.reason in MIRROR_HOLDS:
        return None
    due = next_analysis(spec, decision.state)
    if due is None or decision.state.step_started is None:
        return base.duration_seconds(spec.rollout.analysis.interval)
    return max((due - now).total_seconds(), REQUEUE_FLOOR_SECONDS)
