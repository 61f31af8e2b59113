"""``status.rollout``: how a rollout's state is remembered between passes and read back.

Owns the round trip of :class:`kubeinfer.planning.rollout.machine.State` through the status fields
(timestamps as RFC 3339, the last verdict as a condition note) and the plan shown before anything
changes. Must not: decide anything (``rollout`` does), I/O, clocks.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning.conditions import Observation
from kubeinfer.planning.rollout.machine import Decision, State, Version, estimate


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
    retired_placement: list[dict[str, object]] | None = None,
) -> dict[str, object]:
    """Return the ``status.rollout`` fields (camelCase) that remember ``decision``.

    ``retired_placement`` is the GPU sets the retired version's pods are pinned to.

    Measurements are the latest analysis's; a pass that analysed nothing keeps the previous ones.
    """
    s = decision.state
    seconds, table = estimate(spec, stable_replicas, s)
    measurements: list[dict[str, object]] = [
        {
            "metric": j.metric,
            "value": j.value,
            "verdict": j.verdict,
            "message": j.message,
            "time": _stamp(now),
        }
        for j in decision.judgements
    ] or [m.model_dump(by_alias=True, exclude_none=True) for m in previous.measurements]
    return {
        "phase": s.phase,
        "step": s.step,
        "stepStartedAt": _stamp(s.step_started),
        "lastAnalysisAt": _stamp(s.last_analysis),
        "waitingSince": _stamp(s.waiting_since),
        "failures": s.failures,
        "mode": s.mode,
        "totalReplicas": s.total,
        "retired": (
            {
                "version": s.retired.version,
                "uri": s.retired.uri,
                "image": s.retired.image,
                "scaleDownAt": _stamp(s.scale_down_at),
                "placement": retired_placement or [],
            }
            if s.retired is not None
            else None
        ),
        "rolledBackFrom": s.rolled_back_from,
        "deniedVersions": list(s.denied),
        "evidence": s.evidence,
        "reason": s.note.reason.value if s.note else "",
        "message": s.note.message if s.note else "",
        "noteStatus": s.note.status if s.note else "",
        "measurements": measurements,
        "estimatedSeconds": seconds,
        "plan": [
            {"weight": w, "candidateReplicas": p, "stableReplicas": r, "gpus": g}
            for w, p, r, g in table
        ],
    }
