"""Condition handling: Ready derived by priority, transition times kept when nothing moves,
transitions listed for Events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kubeinfer.api.conditions import ConditionType as T
from kubeinfer.api.conditions import Reason as R
from kubeinfer.planning import conditions
from kubeinfer.planning.conditions import Observation as O

NOW = datetime(2026, 1, 1, tzinfo=UTC)
GATES = (T.PLACED, T.MODEL_LOADED)


@pytest.mark.parametrize(
    ("observations", "expected"),
    [
        pytest.param(
            [O.true(T.PLACED, R.AS_EXPECTED, ""), O.true(T.MODEL_LOADED, R.AS_EXPECTED, "")],
            ("True", R.AS_EXPECTED),
            id="every gate true gives Ready True",
        ),
        pytest.param(
            [
                O.false(T.PLACED, R.NO_NODE_FITS, "x"),
                O.false(T.MODEL_LOADED, R.NO_READY_REPLICAS, "y"),
            ],
            ("False", R.NO_NODE_FITS),
            id="the first failing gate by priority decides the reason",
        ),
        pytest.param(
            [O.true(T.PLACED, R.AS_EXPECTED, ""), O.unknown(T.MODEL_LOADED, R.RECONCILING, "")],
            ("Unknown", R.RECONCILING),
            id="an unknown gate makes Ready unknown",
        ),
        pytest.param(
            [O.true(T.PLACED, R.AS_EXPECTED, "")],
            ("Unknown", R.RECONCILING),
            id="a gate never observed makes Ready unknown",
        ),
        pytest.param(
            [
                O.true(T.PLACED, R.AS_EXPECTED, ""),
                O.true(T.MODEL_LOADED, R.AS_EXPECTED, ""),
                O.false(T.METRICS_AVAILABLE, R.METRICS_API_MISSING, ""),
            ],
            ("True", R.AS_EXPECTED),
            id="a non-gate condition does not block Ready",
        ),
    ],
)
def test_ready_is_derived_by_priority(observations: list[O], expected: tuple[str, R]) -> None:
    ready = conditions.derive_ready(observations, GATES)
    assert (ready.status, ready.reason) == expected


def test_transition_time_moves_only_when_status_changes() -> None:
    first = conditions.merge([], [O.false(T.PLACED, R.NO_NODE_FITS, "a")], generation=1, now=NOW)
    later = NOW + timedelta(minutes=5)
    same = conditions.merge(
        first, [O.false(T.PLACED, R.INSUFFICIENT_GPUS, "b")], generation=2, now=later
    )
    assert same[0].last_transition_time == first[0].last_transition_time
    assert same[0].observed_generation == 2
    moved = conditions.merge(same, [O.true(T.PLACED, R.AS_EXPECTED, "c")], generation=2, now=later)
    assert moved[0].last_transition_time == "2026-01-01T00:05:00Z"


def test_merging_the_same_observations_twice_is_identical() -> None:
    obs = [
        O.true(T.PLACED, R.AS_EXPECTED, "ok"),
        O.false(T.MODEL_LOADED, R.NO_READY_REPLICAS, "no"),
    ]
    once = conditions.merge([], obs, generation=3, now=NOW)
    twice = conditions.merge(once, obs, generation=3, now=NOW + timedelta(hours=1))
    assert once == twice
    assert conditions.transitions(once, twice) == []


def test_transitions_report_reason_changes_too() -> None:
    before = conditions.merge([], [O.false(T.PLACED, R.NO_NODE_FITS, "")], generation=1, now=NOW)
    after = conditions.merge(
        before, [O.false(T.PLACED, R.POOL_NOT_FOUND, "")], generation=1, now=NOW
    )
    assert [c.reason for c in conditions.transitions(before, after)] == ["PoolNotFound"]


def test_every_reason_and_condition_type_is_documented() -> None:
    for member in [*T, *R]:
        assert member.doc and member.doc.endswith("."), member
        assert member.value[0].isupper() and " " not in member.value


@pytest.mark.parametrize(
    ("type_", "status", "abnormal"),
    [
        (T.READY, "False", True),
        (T.METRICS_AVAILABLE, "False", True),
        (T.PLACED, "True", False),
        (T.ROLLED_BACK, "True", True),
        (T.OOM_RISK, "False", False),
        (T.MODEL_LOADED, "Unknown", False),
        (T.PROGRESSING, "False", False),
        (T.PROGRESSING, "True", False),
    ],
)
def test_problems_are_warnings_whatever_the_polarity(type_: T, status: str, abnormal: bool) -> None:
    (cond,) = conditions.merge([], [O(type_, status, R.AS_EXPECTED, "")], generation=1, now=NOW)  # type: ignore[arg-type]
    assert conditions.is_abnormal(cond) is abnormal


def test_a_paused_rollout_is_a_problem_though_progressing_is_neutral() -> None:
    (cond,) = conditions.merge(
        [], [O.false(T.PROGRESSING, R.ROLLOUT_PAUSED, "")], generation=1, now=NOW
    )
    assert conditions.is_abnormal(cond)


def test_a_new_object_announces_only_its_problems() -> None:
    first = conditions.merge(
        [],
        [
            O.true(T.PLACED, R.AS_EXPECTED, ""),
            O.false(T.MODEL_LOADED, R.NO_READY_REPLICAS, ""),
            O.false(T.PROGRESSING, R.NO_ROLLOUT, ""),
            O.false(T.METRICS_AVAILABLE, R.METRICS_API_MISSING, ""),
        ],
        generation=1,
        now=NOW,
    )
    announced = [c.type for c in conditions.transitions([], first)]
    assert announced == ["ModelLoaded", "MetricsAvailable"]
    later = conditions.merge(
        first,
        [
            O.true(T.PLACED, R.AS_EXPECTED, ""),
            O.true(T.MODEL_LOADED, R.AS_EXPECTED, ""),
            O.false(T.PROGRESSING, R.NO_ROLLOUT, ""),
            O.false(T.METRICS_AVAILABLE, R.METRICS_API_MISSING, ""),
        ],
        generation=1,
        now=NOW,
    )
    assert [c.type for c in conditions.transitions(first, later)] == ["ModelLoaded"]


def test_ready_repeating_a_gate_gets_no_event_of_its_own() -> None:
    pending = [
        O.false(T.READY, R.NO_READY_REPLICAS, "none ready"),
        O.false(T.MODEL_LOADED, R.NO_READY_REPLICAS, "none ready"),
    ]
    first = conditions.merge([], pending, generation=1, now=NOW)
    assert [c.type for c in conditions.transitions([], first)] == ["ModelLoaded"]
    ready = [
        O.true(T.READY, R.AS_EXPECTED, "All conditions are met."),
        O.true(T.MODEL_LOADED, R.AS_EXPECTED, "2 of 2 ready."),
    ]
    later = conditions.merge(first, ready, generation=1, now=NOW)
    assert [c.type for c in conditions.transitions(first, later)] == ["Ready", "ModelLoaded"]


@pytest.mark.parametrize(
    ("reason", "abnormal"),
    [
        (R.MIRROR_UNSUPPORTED, True),
        (R.MIRROR_SUPPORT_UNKNOWN, True),
        (R.ROLLOUT_PROGRESSING, False),
    ],
    ids=[
        "a gateway that cannot mirror is a warning while Progressing",
        "unknown mirror support is a warning while Progressing",
        "a progressing rollout is normal",
    ],
)
def test_held_rollouts_are_warnings_though_progressing(reason: R, abnormal: bool) -> None:
    obs = O(T.PROGRESSING, "True", reason, "")
    (cond,) = conditions.merge([], [obs], generation=1, now=NOW)
    assert conditions.is_abnormal(cond) is abnormal
