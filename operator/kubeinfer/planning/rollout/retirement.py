"""Blue-green's delayed scale-down: the version a switch replaced keeps running for a while.

After a blue-green promotion the previous stable is remembered in the rollout state
(``retired``, ``scale_down_at``) and rendered unchanged, without traffic, so in-flight requests
finish; :func:`retiring` lets it go once ``rollout.scaleDownDelay`` has passed. Setting the spec
back to it before then is a quick abort: :func:`switch_back` makes it stable at once and retires
the other version in turn. Must not: I/O, clocks (``now`` is passed in).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from kubeinfer.api import base
from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning.conditions import Observation
from kubeinfer.planning.plans import Event
from kubeinfer.planning.rollout.state import Decision, State, Version, not_rolled_back


def switching_back(
    spec: api.InferenceServiceSpec, state: State, stable: Version | None, now: datetime
) -> bool:
    """The spec went back to the version a blue-green switch replaced, which still runs."""
    due = state.scale_down_at
    return (
        stable is not None
        and state.retired == Version.of(spec.model)
        and due is not None
        and now < due
    )


def switch_back(
    spec: api.InferenceServiceSpec, state: State, stable: Version | None, now: datetime
) -> Decision:
    """Make the retired version stable at once and retire the one switched away from."""
    assert stable is not None
    assert state.retired is not None
    back = state.retired
    new = State(
        phase="Promoted",
        denied=state.denied,
        rolled_back_from=state.rolled_back_from,
        retired=stable,
        scale_down_at=now + delay(spec),
    )
    message = (
        f"Switched back to {back.version}, still running within {stable.version}'s "
        f"scale-down delay; {stable.version} keeps running for {spec.rollout.scale_down_delay}."
    )
    return Decision(
        state=new,
        stable=back,
        candidate=None,
        retired=stable,
        observations=(
            Observation.false(ConditionType.PROGRESSING, Reason.SWITCHED_BACK, message),
            not_rolled_back(new),
        ),
        events=(Event(Reason.SWITCHED_BACK, message),),
    )


def delay(spec: api.InferenceServiceSpec) -> timedelta:
    """``rollout.scaleDownDelay``."""
    return timedelta(seconds=base.duration_seconds(spec.rollout.scale_down_delay))


def retiring(decision: Decision, now: datetime) -> Decision:
    """Keep a retired version running until its scale-down time, then let it go."""
    state = decision.state
    retired = state.retired
    if retired is None:
        return decision
    due = state.scale_down_at
    if retired not in (decision.stable, decision.candidate) and due is not None and now < due:
        return replace(decision, retired=retired)
    gone = replace(state, retired=None, scale_down_at=None)
    if retired in (decision.stable, decision.candidate):
        return replace(decision, state=gone)
    event = Event(
        Reason.SCALED_DOWN,
        f"Deleted {retired.version}'s Deployment: rollout.scaleDownDelay passed since "
        f"{decision.stable.version} took all traffic.",
    )
    return replace(decision, state=gone, events=(*decision.events, event))
