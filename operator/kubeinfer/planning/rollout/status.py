"""``status.rollout``: how a rollout's state is remembered between passes and read back.

Owns the round trip of :class:`kubeinfer.planning.rollout.machine.State` through the status fields
(timestamps as RFC 3339, the last verdict as a condition note) and the plan shown before anything
changes. Must not: decide anything (``rollout`` does), I/O, clocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning.conditions import Observation
from kubeinfer.planning.rollout.machine import Decision, State, Version
from kubeinfer.planning.rollout.steps import estimate


def _stamp(when: datetime | None) -> str | None:
    return None if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(when: str | None) -> datetime | None:
    return None if not when else datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _note(r: api.RolloutStatus) -> Observation | None:
    if not r.reason:
        return None
    return Observation(
        ConditionType.PROGRESSING, r.note_status or "True", Reason(r.reason), r.message
    )


def from_status(status: api.InferenceServiceStatus) -> tuple[State, Version | None]:
    """Read the remembered rollout state and stable version back from status."""
    r = status.rollout
    state = State(
        phase=r.phase,
        step=r.step,
        step_started=_parse(r.step_started_at),
        last_analysis=_parse(r.last_analysis_at),
        failures=r.failures,
        waiting_since=_parse(r.waiting_since),
        rolled_back_from=r.rolled_back_from,
        denied=tuple(r.denied_versions),
        evidence=r.evidence,
        note=_note(r),
        mode=r.mode,
        total=r.total_replicas,
        retired=(Version(r.retired.version, r.retired.uri, r.retired.image) if r.retired else None),
        scale_down_at=_parse(r.retired.scale_down_at) if r.retired else None,
    )
    stable = status.stable
    return state, (Version(stable.version, stable.uri, stable.image) if stable.version else None)


def to_status(
    spec: api.InferenceServiceSpec,
    decision: Decision,
    *,
    stable_replicas: int,
    now: datetime,
    previous: api.RolloutStatus,
    retired_placement: Sequence[api.ReplicaPlacement] = (),
) -> api.RolloutStatus:
    """Return the ``status.rollout`` that remembers ``decision``.

    ``retired_placement`` is the GPU sets the retired version's pods are pinned to.

    Measurements are the latest analysis's; a pass that analysed nothing keeps the previous ones.
    """
    s = decision.state
    seconds, table = estimate(spec, stable_replicas, s)
    measurements = [
        api.Measurement(
            metric=j.metric, value=j.value, verdict=j.verdict, message=j.message, time=_stamp(now)
        )
        for j in decision.judgements
    ] or list(previous.measurements)
    retired = (
        api.RetiredVersion(
            version=s.retired.version,
            uri=s.retired.uri,
            image=s.retired.image,
            scale_down_at=_stamp(s.scale_down_at) or "",
            placement=list(retired_placement),
        )
        if s.retired is not None
        else None
    )
    return api.RolloutStatus(
        phase=s.phase,
        step=s.step,
        step_started_at=_stamp(s.step_started),
        last_analysis_at=_stamp(s.last_analysis),
        waiting_since=_stamp(s.waiting_since),
        failures=s.failures,
        mode=s.mode,
        total_replicas=s.total,
        retired=retired,
        rolled_back_from=s.rolled_back_from,
        denied_versions=list(s.denied),
        evidence=s.evidence,
        reason=s.note.reason.value if s.note else "",
        message=s.note.message if s.note else "",
        note_status=s.note.status if s.note else "",
        measurements=measurements,
        estimated_seconds=seconds,
        plan=[
            api.RolloutPlanStep(weight=w, candidate_replicas=p, stable_replicas=r, gpus=g)
            for w, p, r, g in table
        ],
    )
