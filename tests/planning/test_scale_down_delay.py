"""Blue-green's delayed scale-down: after the switch the previous version keeps running for
``rollout.scaleDownDelay``, then its Deployment goes.

Covers: the promotion keeps the old version rendered (Deployment and Service, no traffic) and
says until when; a pass before that time keeps it, one after deletes it with a ``ScaledDown``
Event; setting the spec back within the delay switches back at once and retires the other
version in turn; canary and a zero delay retire nothing; the retired version survives a status
round trip; the controller is asked to come back at the scale-down time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType
from kubeinfer.planning import children, inference_service
from kubeinfer.planning.rollout import machine as rollout
from kubeinfer.planning.rollout import status as rollout_status
from kubeinfer.planning.rollout import timing
from tests.planning.test_rollout import HEALTHY, STABLE, _run, _samples, _spec

OWNER = children.Owner("kubeinfer.io/v1alpha1", "InferenceService", "m", "ns", "u")


def _promoted(**over: Any) -> tuple[api.InferenceServiceSpec, Any, rollout.Decision]:
    spec = _spec(strategy="blueGreen", **over)
    now, decision = _run(spec, lambda now: _samples(HEALTHY), seconds=600)[-1]
    assert decision.state.phase == "Promoted"
    return spec, now, decision


def _pass(spec: api.InferenceServiceSpec, previous: rollout.Decision, now: Any) -> rollout.Decision:
    return rollout.decide(
        spec,
        state=previous.state,
        stable=previous.stable,
        candidate=rollout.Candidate(),
        samples=None,
        now=now,
    )


def _objects(spec: api.InferenceServiceSpec, decision: rollout.Decision) -> dict[str, Any]:
    out = inference_service.render(OWNER, spec, decision=decision, stable_replicas=2)
    return {f"{c['kind']}/{c['metadata']['name']}": c for c in out}


def test_the_switch_keeps_the_previous_version_running_without_traffic() -> None:
    spec, now, decision = _promoted()
    assert decision.stable.version == "v2"
    assert decision.retired == STABLE
    assert decision.state.scale_down_at == now + timedelta(seconds=30)
    (promoted,) = [e.message for e in decision.events if e.reason == "Promoted"]
    assert "v1 keeps running for 30s" in promoted
    objs = _objects(spec, decision)
    assert "Deployment/m-v1" in objs and "Service/m-v1" in objs
    assert objs["Service/m"]["spec"]["selector"]["kubeinfer.io/model-version"] == "v2"
    assert objs["HorizontalPodAutoscaler/m"]["spec"]["scaleTargetRef"]["name"] == "m-v2"
    assert timing.requeue_after(spec, decision, now) == 30.0


def test_the_previous_version_goes_once_the_delay_has_passed() -> None:
    spec, now, decision = _promoted()
    before = _pass(spec, decision, now + timedelta(seconds=29))
    assert before.retired == STABLE
    assert timing.requeue_after(spec, before, now + timedelta(seconds=29)) == 1.0
    after = _pass(spec, before, now + timedelta(seconds=30))
    assert after.retired is None and after.state.retired is None
    assert [e.reason for e in after.events] == ["ScaledDown"]
    assert "Deployment/m-v1" not in _objects(spec, after)
    assert _pass(spec, after, now + timedelta(seconds=35)).events == ()


def test_setting_the_version_back_within_the_delay_switches_back_at_once() -> None:
    spec, now, decision = _promoted()
    back = spec.model_copy(update={"model": spec.model.model_copy(update={"version": "v1"})})
    switched = _pass(back, decision, now + timedelta(seconds=10))
    assert switched.stable == STABLE and switched.candidate is None
    assert switched.retired is not None and switched.retired.version == "v2"
    progressing = next(o for o in switched.observations if o.type == ConditionType.PROGRESSING)
    assert progressing.reason.value == "SwitchedBack"
    objs = _objects(back, switched)
    assert objs["Service/m"]["spec"]["selector"]["kubeinfer.io/model-version"] == "v1"
    assert "Deployment/m-v2" in objs, "the version switched away from keeps running in turn"
    late = _pass(back, decision, now + timedelta(seconds=31))
    assert late.candidate is not None, "past the delay it is an ordinary rollout"


def test_canary_and_a_zero_delay_retire_nothing() -> None:
    _, canary = _run(_spec(), lambda now: _samples(HEALTHY), seconds=600)[-1]
    assert canary.state.phase == "Promoted" and canary.retired is None
    spec, _, zero = _promoted(scaleDownDelay="0s")
    assert zero.retired is None and "Deployment/m-v1" not in _objects(spec, zero)


def test_the_retired_version_survives_a_status_round_trip() -> None:
    spec, now, decision = _promoted()
    fields = rollout_status.to_status(
        spec, decision, stable_replicas=2, now=now, previous=api.RolloutStatus()
    )
    assert fields.retired is not None and fields.retired.version == "v1"
    status = api.InferenceServiceStatus.model_validate(
        {"stable": {"version": "v2", "uri": decision.stable.uri}, "rollout": fields}
    )
    state, _ = rollout_status.from_status(status)
    assert state.retired == STABLE and state.scale_down_at == decision.state.scale_down_at
