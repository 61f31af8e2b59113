"""Condition bookkeeping: merge new observations into status and derive ``Ready``.

``lastTransitionTime`` moves only when a condition's status changes, so a reconcile that
observes nothing new produces identical conditions (and the controller sends no write).
``Ready`` is derived from a kind's gate conditions by fixed priority: the first gate that is not
True decides Ready's status, reason and message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kubeinfer.api.conditions import Condition, ConditionStatus, ConditionType, Reason


@dataclass(frozen=True)
class Observation:
    """What a planner asserts about one aspect of a resource."""

    type: ConditionType
    status: ConditionStatus
    reason: Reason
    message: str

    @classmethod
    def true(cls, type_: ConditionType, reason: Reason, message: str) -> Observation:
        return cls(type_, "True", reason, message)

    @classmethod
    def false(cls, type_: ConditionType, reason: Reason, message: str) -> Observation:
        return cls(type_, "False", reason, message)

    @classmethod
    def unknown(cls, type_: ConditionType, reason: Reason, message: str) -> Observation:
        return cls(type_, "Unknown", reason, message)


def derive_ready(
    observations: Sequence[Observation], gates: Sequence[ConditionType]
) -> Observation:
    """Return the Ready observation: True only when every gate, in priority order, is True."""
    by_type = {o.type: o for o in observations}
    for gate in gates:
        found = by_type.get(gate)
        if found is None:
            return Observation.unknown(
                ConditionType.READY, Reason.RECONCILING, f"{gate} has not been observed yet."
            )
        if found.status != "True":
            status: ConditionStatus = "Unknown" if found.status == "Unknown" else "False"
            return Observation(ConditionType.READY, status, found.reason, found.message)
    return Observation.true(ConditionType.READY, Reason.AS_EXPECTED, "All conditions are met.")


def with_ready(
    observations: Sequence[Observation], gates: Sequence[ConditionType]
) -> tuple[Observation, ...]:
    """Return ``observations`` with the derived Ready first."""
    return (derive_ready(observations, gates), *observations)


def merge(
    previous: Sequence[Condition],
    observations: Sequence[Observation],
    *,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """Merge observations into the previous conditions, keeping transition times that hold.

    Conditions that are not re-observed are dropped: the planner states every condition a kind
    carries on every pass, so a leftover would be stale.
    """
    before = {c.type: c for c in previous}
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    merged: list[Condition] = []
    for obs in observations:
        old = before.get(obs.type)
        moved = old is None or old.status != obs.status
        merged.append(
            Condition(
                type=obs.type.value,
                status=obs.status,
                reason=obs.reason.value,
                message=obs.message,
                observed_generation=generation,
                last_transition_time=stamp if moved or old is None else old.last_transition_time,
            )
        )
    return merged


ABNORMAL_WHEN_TRUE = frozenset(
    {ConditionType.ROLLED_BACK, ConditionType.OOM_RISK, ConditionType.DISK_PRESSURE}
)
"""Conditions whose True is the bad state."""

ABNORMAL_REASONS = frozenset(
    {Reason.ROLLOUT_PAUSED, Reason.MIRROR_UNSUPPORTED, Reason.MIRROR_SUPPORT_UNKNOWN}
)
"""Reasons that report a problem whatever the status: a paused rollout, or a shadow rollout its
gateway holds (Progressing=True, yet waiting until someone changes the gateway or the spec)."""

NEUTRAL = frozenset({ConditionType.PROGRESSING})
"""Conditions whose status is no verdict: Progressing is False whenever no rollout runs, and a
failed rollout is reported by RolledBack. The rest are good when True."""


def is_abnormal(condition: Condition) -> bool:
    """Whether a condition reports a problem: its Event is a Warning, not Normal."""
    if condition.reason in ABNORMAL_REASONS:
        return True
    if condition.type in ABNORMAL_WHEN_TRUE:
        return condition.status == "True"
    if condition.type in NEUTRAL:
        return False
    return condition.status == "False"


def transitions(previous: Sequence[Condition], merged: Sequence[Condition]) -> list[Condition]:
    """Return the conditions that deserve an Event.

    A condition deserves one when its status or reason changed. A condition recorded for the
    first time (a new object) deserves one only when it reports a problem: a new object's healthy
    or still-starting conditions are no news, and announcing each of them would flood the
    namespace's Events (and the API server) whenever many objects are created at once. Ready,
    when it only repeats a gate condition that changed with it (same status, reason and
    message), adds nothing to that gate's Event and gets none of its own.
    """
    before = {c.type: (c.status, c.reason) for c in previous}
    changed = [
        c
        for c in merged
        if (c.type in before and before[c.type] != (c.status, c.reason))
        or (c.type not in before and is_abnormal(c))
    ]
    gates = {(c.status, c.reason, c.message) for c in changed if c.type != ConditionType.READY}
    return [
        c
        for c in changed
        if c.type != ConditionType.READY or (c.status, c.reason, c.message) not in gates
    ]
