"""Rollout state machine and analysis: healthy candidates promote through every step, degraded
ones roll back within two analysis intervals, low traffic and Prometheus outages wait instead of
failing, denied versions are not rolled again, strategies split traffic as documented, a shadow whose
gateway cannot mirror mirrors nothing and waits, then is judged from scratch once it can, and the
state survives a round trip through status (an operator restart resumes at the same step)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning.conditions import Observation
from kubeinfer.planning.rollout import analysis, timing
from kubeinfer.planning.rollout import machine as rollout
from kubeinfer.planning.rollout import status as rollout_status

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STABLE = rollout.Version("v1", "hf://org/m")
HEALTHY = {"success-rate": (0.999, 0.999), "latency-p95": (120.0, 118.0)}


def _spec(**rollout_over: Any) -> api.InferenceServiceSpec:
    return api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "m", "version": "v2", "uri": "hf://org/m"},
            "resources": {"gpus": 1},
            "placement": {"gpuPool": "p"},
            "replicas": {"min": 2, "max": 4},
            "traffic": {"provider": "none"},
            "rollout": {
                "steps": [{"weight": 10, "pause": "1m"}, {"weight": 50, "pause": "1m"}],
                **rollout_over,
            },
        }
    )


def _samples(
    values: dict[str, tuple[float | None, float | None]], count: float = 500, error: str = ""
) -> tuple[analysis.Sample, ...]:
    return tuple(analysis.Sample(k, v, s, count=count, error=error) for k, (v, s) in values.items())


Traffic = Callable[[datetime], tuple[analysis.Sample, ...]]


def _pass(
    spec: api.InferenceServiceSpec,
    state: rollout.State,
    stable: rollout.Version | None,
    traffic: Traffic,
    now: datetime,
    *,
    analyse: bool = False,
    mirror_hold: Observation | None = None,
) -> rollout.Decision:
    """One pass with a ready candidate, analysing when one is due (or ``analyse`` says so) and
    the gateway holds no shadow's mirror (the controller queries nothing then)."""
    due = mirror_hold is None and (analyse or timing.analysis_due(spec, state, now))
    return rollout.decide(
        spec,
        state=state,
        stable=stable,
        candidate=rollout.Candidate(ready_replicas=1),
        samples=traffic(now) if due else None,
        now=now,
        mirror_hold=mirror_hold,
    )


def _run(
    spec: api.InferenceServiceSpec,
    traffic: Traffic,
    *,
    seconds: int,
    start: rollout.State | None = None,
    hold: Callable[[datetime], Observation | None] = lambda now: None,
) -> list[tuple[datetime, rollout.Decision]]:
    """Drive passes every 5 s, analysing whenever an interval is due, like the controller (which
    queries nothing while the gateway holds a shadow's mirror)."""
    state = start or rollout.State()
    stable: rollout.Version | None = STABLE
    out = []
    for tick in range(0, seconds, 5):
        now = T0 + timedelta(seconds=tick)
        d = _pass(
            spec, state, stable, traffic, now, analyse=state.phase == "Idle", mirror_hold=hold(now)
        )
        out.append((now, d))
        state, stable = d.state, d.stable
        if d.candidate is None and d.stable.version == "v2":
            break
    return out


def _condition(d: rollout.Decision, kind: ConditionType) -> tuple[str, str]:
    obs = next(o for o in d.observations if o.type == kind)
    return obs.status, obs.reason.value


def test_first_version_becomes_stable_without_a_rollout() -> None:
    d = rollout.decide(
        _spec(),
        state=rollout.State(),
        stable=None,
        candidate=rollout.Candidate(),
        samples=None,
        now=T0,
    )
    assert d.stable.version == "v2"
    assert d.candidate is None
    assert _condition(d, ConditionType.PROGRESSING) == ("False", "NoRollout")


def test_candidate_gets_no_traffic_until_its_pods_are_ready() -> None:
    d = rollout.decide(
        _spec(),
        state=rollout.State(),
        stable=STABLE,
        candidate=rollout.Candidate(ready_replicas=0),
        samples=None,
        now=T0,
    )
    assert d.candidate is not None
    assert d.candidate_weight == 0
    assert _condition(d, ConditionType.PROGRESSING) == ("True", "CandidateStarting")


def test_healthy_canary_promotes_through_every_step() -> None:
    passes = _run(_spec(), lambda now: _samples(HEALTHY), seconds=600)
    weights = [d.candidate_weight for _, d in passes if d.candidate is not None]
    assert weights[0] == 10
    assert 50 in weights
    last = passes[-1][1]
    assert last.state.phase == "Promoted"
    assert last.stable.version == "v2"
    assert ("Promoted", "Promoted v2 to stable after 2 steps.") in [
        (e.reason, e.message) for e in last.events
    ]


@pytest.mark.parametrize(
    "degraded",
    [
        pytest.param(
            {"success-rate": (0.95, 0.999), "latency-p95": (120.0, 118.0)}, id="5% errors"
        ),
        pytest.param(
            {"success-rate": (0.999, 0.999), "latency-p95": (240.0, 118.0)},
            id="doubled p95 latency",
        ),
    ],
)
def test_degraded_candidate_rolls_back_within_two_intervals(
    degraded: dict[str, tuple[float, float]],
) -> None:
    broken_at = T0 + timedelta(seconds=40)
    passes = _run(
        _spec(), lambda now: _samples(degraded if now >= broken_at else HEALTHY), seconds=300
    )
    rolled = next((now, d) for now, d in passes if d.state.phase == "RolledBack")
    assert rolled[0] - broken_at <= timedelta(seconds=60)
    d = rolled[1]
    assert d.candidate is None
    assert d.candidate_weight == 0
    assert d.stable == STABLE
    assert _condition(d, ConditionType.ROLLED_BACK) == ("True", "AnalysisFailed")
    assert d.state.denied == ("v2",)
    assert "success-rate=0.95" in d.state.evidence or "latency-p95=240" in d.state.evidence


def _timed(
    spec: api.InferenceServiceSpec, traffic: Traffic, *, seconds: int
) -> list[tuple[datetime, rollout.Decision]]:
    """Drive passes only when the last one asked to be looked at again, like the timers do,
    from the pass in which the candidate's pods became ready."""
    state, now, out = rollout.State(phase="Progressing"), T0, []
    stable: rollout.Version | None = STABLE
    while now < T0 + timedelta(seconds=seconds):
        d = _pass(spec, state, stable, traffic, now)
        out.append((now, d))
        state, stable = d.state, d.stable
        wait = timing.requeue_after(spec, d, now)
        if wait is None:
            break
        now += timedelta(seconds=wait)
    return out


def test_each_look_comes_exactly_when_the_next_analysis_is_due() -> None:
    passes = _timed(_spec(), lambda now: _samples(HEALTHY), seconds=300)
    analysed = [now - T0 for now, d in passes if d.judgements]
    assert analysed == [timedelta(seconds=s) for s in (0, 30, 60, 90, 120)]
    assert len(passes) == len(analysed), "no look without an analysis"
    assert passes[-1][1].state.phase == "Promoted"


def test_a_step_advances_when_its_pause_ends_between_two_intervals() -> None:
    spec = _spec(steps=[{"weight": 10, "pause": "40s"}, {"weight": 50, "pause": "40s"}])
    passes = _timed(spec, lambda now: _samples(HEALTHY), seconds=300)
    moves = [((now - T0).seconds, d.events[0].reason) for now, d in passes if d.events]
    assert moves == [(40, "RolloutStepAdvanced"), (80, "Promoted")]


def test_a_pass_between_analyses_asks_for_the_rest_of_the_interval() -> None:
    spec = _spec()
    state = rollout.State(phase="Progressing", step_started=T0, last_analysis=T0)
    later = T0 + timedelta(seconds=12)
    d = _pass(spec, state, STABLE, lambda now: _samples(HEALTHY), later)
    assert not d.judgements, "no analysis was due"
    assert timing.requeue_after(spec, d, later) == 18


def test_no_timer_while_paused_and_a_safety_net_while_the_candidate_starts() -> None:
    spec = _spec()
    starting = rollout.decide(
        spec,
        state=rollout.State(),
        stable=STABLE,
        candidate=rollout.Candidate(ready_replicas=0),
        samples=None,
        now=T0,
    )
    assert timing.requeue_after(spec, starting, T0) == 30
    paused = rollout.decide(
        spec,
        state=rollout.State(phase="Paused", step_started=T0, last_analysis=T0),
        stable=STABLE,
        candidate=rollout.Candidate(ready_replicas=1),
        samples=None,
        now=T0,
    )
    assert timing.requeue_after(spec, paused, T0) is None


@pytest.mark.parametrize(
    ("interval", "failure_limit", "window", "budget"),
    [
        pytest.param("30s", 1, 60, 90, id="defaults: four 15 s scrapes outlast the interval"),
        pytest.param("2m", 0, 120, 150, id="a long interval is its own window"),
    ],
)
def test_query_window_and_rollback_budget_follow_scrape_and_interval(
    interval: str, failure_limit: int, window: int, budget: float
) -> None:
    spec = _spec(analysis={"interval": interval, "failureLimit": failure_limit})
    assert analysis.window_seconds(spec) == window
    assert analysis.rollback_budget_seconds(spec) == budget


def test_denied_version_is_not_rolled_out_again_and_a_new_one_is() -> None:
    state = rollout.State(
        phase="RolledBack", rolled_back_from="v2", denied=("v2",), evidence="success-rate=0.95"
    )
    d = rollout.decide(
        _spec(),
        state=state,
        stable=STABLE,
        candidate=rollout.Candidate(ready_replicas=1),
        samples=None,
        now=T0,
    )
    assert d.candidate is None
    assert _condition(d, ConditionType.ROLLED_BACK) == ("True", "VersionDenied")
    v3 = _spec().model_copy(update={"model": api.Model(name="m", version="v3", uri="hf://org/m")})
    d3 = rollout.decide(
        v3,
        state=state,
        stable=STABLE,
        candidate=rollout.Candidate(ready_replicas=1),
        samples=None,
        now=T0,
    )
    assert d3.candidate is not None
    assert d3.candidate.version == "v3"
    assert d3.state.denied == ("v2",)


def test_low_traffic_waits_then_proceeds_when_traffic_arrives() -> None:
    arrives = T0 + timedelta(seconds=120)
    passes = _run(
        _spec(), lambda now: _samples(HEALTHY, count=500 if now >= arrives else 3), seconds=600
    )
    waiting = [d for now, d in passes if now < arrives and d.state.phase == "Waiting"]
    assert waiting
    assert _condition(waiting[-1], ConditionType.PROGRESSING) == ("True", "InsufficientData")
    assert "3 requests in the window; 20 needed" in waiting[-1].observations[0].message
    assert passes[-1][1].state.phase == "Promoted"


def test_too_little_traffic_past_the_deadline_pauses_instead_of_failing() -> None:
    spec = _spec(analysis={"insufficientDataDeadline": "2m"})
    passes = _run(spec, lambda now: _samples(HEALTHY, count=1), seconds=400)
    final = passes[-1][1]
    assert final.state.phase == "Paused"
    assert final.state.denied == ()
    assert _condition(final, ConditionType.PROGRESSING) == ("False", "RolloutPaused")


def test_prometheus_down_waits_and_never_rolls_back() -> None:
    passes = _run(
        _spec(),
        lambda now: _samples(
            {"success-rate": (None, None), "latency-p95": (None, None)}, error="connection refused"
        ),
        seconds=900,
    )
    assert all(d.state.phase != "RolledBack" for _, d in passes)
    assert _condition(passes[-1][1], ConditionType.PROGRESSING) == ("True", "PrometheusUnavailable")


@pytest.mark.parametrize(
    ("strategy", "weight", "mirror", "preview"),
    [("canary", 10, 0, False), ("shadow", 0, 10, False), ("blueGreen", 0, 0, True)],
)
def test_strategies_split_traffic_as_documented(
    strategy: str, weight: int, mirror: int, preview: bool
) -> None:
    spec = _spec(strategy=strategy)
    d = rollout.decide(
        spec,
        state=rollout.State(),
        stable=STABLE,
        candidate=rollout.Candidate(ready_replicas=1),
        samples=None,
        now=T0,
    )
    assert (d.candidate_weight, d.mirror_percent, d.preview) == (weight, mirror, preview)


def test_shadow_and_blue_green_switch_all_traffic_on_promotion() -> None:
    for strategy in ("shadow", "blueGreen"):
        passes = _run(_spec(strategy=strategy), lambda now: _samples(HEALTHY), seconds=600)
        assert passes[-1][1].stable.version == "v2"


def test_state_survives_status_round_trip_mid_rollout() -> None:
    spec = _spec()
    passes = _run(spec, lambda now: _samples(HEALTHY), seconds=95)
    now, d = passes[-1]
    fields = rollout_status.to_status(
        spec, d, stable_replicas=2, now=now, previous=api.RolloutStatus()
    )
    status = api.InferenceServiceStatus(
        stable=api.VersionStatus(version=d.stable.version, uri=d.stable.uri), rollout=fields
    )
    state, stable = rollout_status.from_status(status)
    assert (state, stable) == (d.state, d.stable)
    assert fields.plan == [
        api.RolloutPlanStep(weight=10, candidate_replicas=1, stable_replicas=2, gpus=1),
        api.RolloutPlanStep(weight=50, candidate_replicas=1, stable_replicas=2, gpus=1),
    ]
    assert fields.estimated_seconds == 120


@pytest.mark.parametrize(
    ("metric", "sample", "verdict"),
    [
        (
            api.AnalysisMetric(name="s", template="success-rate"),
            analysis.Sample("s", 0.995, 0.999, count=100),
            "Passed",
        ),
        (
            api.AnalysisMetric(name="s", template="success-rate"),
            analysis.Sample("s", 0.95, 0.999, count=100),
            "Failed",
        ),
        (
            api.AnalysisMetric(name="l", template="latency-p99", thresholdRange={"max": 300}),
            analysis.Sample("l", 310, 100, count=100),
            "Failed",
        ),
        (
            api.AnalysisMetric(name="l", template="latency-p99", thresholdRange={"max": 300}),
            analysis.Sample("l", 250, 100, count=100),
            "Passed",
        ),
        (
            api.AnalysisMetric(name="q", query="sum(x)", thresholdRange={"min": 1}),
            analysis.Sample("q", None, count=100),
            "Inconclusive",
        ),
        (
            api.AnalysisMetric(name="q", query="sum(x)"),
            analysis.Sample("q", 1, count=5),
            "Inconclusive",
        ),
        (
            api.AnalysisMetric(name="q", query="sum(x)"),
            analysis.Sample("q", None, error="timeout"),
            "Error",
        ),
    ],
    ids=[
        "success near stable passes",
        "5% errors fail",
        "p99 over bound fails",
        "p99 under bound passes",
        "no data is inconclusive",
        "few requests are inconclusive",
        "prometheus error",
    ],
)
def test_analysis_checks(metric: api.AnalysisMetric, sample: analysis.Sample, verdict: str) -> None:
    assert analysis.judge(metric, sample, min_samples=20).verdict == verdict


def test_queries_select_one_version_of_one_service() -> None:
    q = analysis.query(
        analysis.DEFAULT_METRICS[0], namespace="ns", name="chat", version="v2", window="30s"
    )
    assert 'kubeinfer_io_inferenceservice="chat"' in q
    assert 'kubeinfer_io_model_version="v2"' in q
    assert "[30s]" in q


def _children(decision: rollout.Decision, provider: str = "gateway-api") -> dict[str, Any]:
    from kubeinfer.planning import children, inference_service

    spec = _spec(strategy="shadow").model_copy(
        update={
            "traffic": api.Traffic(
                provider=provider,
                parent_refs=[api.ParentReference(name="gw")] if provider == "gateway-api" else [],
            )
        }
    )
    owner = children.Owner("kubeinfer.io/v1alpha1", "InferenceService", "m", "ns", "u")
    out = inference_service.render(owner, spec, decision=decision, stable_replicas=4)
    return {f"{c['kind']}/{c['metadata']['name']}": c for c in out}


def _first_shadow_pass(hold: Observation | None = None, **rollout_over: Any) -> rollout.Decision:
    """The first pass of a shadow rollout whose candidate is ready."""
    return rollout.decide(
        _spec(strategy="shadow", **rollout_over),
        state=rollout.State(),
        stable=STABLE,
        candidate=rollout.Candidate(ready_replicas=1),
        samples=None,
        now=T0,
        mirror_hold=hold,
    )


def test_shadow_rollout_renders_candidate_and_mirror_filter() -> None:
    d = _first_shadow_pass()
    objs = _children(d)
    assert objs["Deployment/m-v2"]["spec"]["replicas"] == 1
    assert "replicas" not in objs["Deployment/m-v1"]["spec"]
    rule = objs["HTTPRoute/m"]["spec"]["rules"][0]
    assert rule["backendRefs"] == [
        {"name": "m-v1", "port": 8080, "weight": 100},
        {"name": "m-v2", "port": 8080, "weight": 0},
    ]
    assert rule["filters"][0]["requestMirror"] == {
        "backendRef": {"name": "m-v2", "port": 8080},
        "percent": 10,
    }
    assert objs["HorizontalPodAutoscaler/m"]["spec"]["scaleTargetRef"]["name"] == "m-v1"
    vs = _children(d, provider="istio")["VirtualService/m"]["spec"]["http"][0]
    assert vs["mirrorPercentage"] == {"value": 10.0}


HOLD = Observation.true(
    ConditionType.PROGRESSING, Reason.MIRROR_UNSUPPORTED, "GatewayClass gc lacks the feature."
)


def test_shadow_held_by_its_gateway_mirrors_nothing_and_waits_on_stable() -> None:
    passes = _run(
        _spec(strategy="shadow"), lambda now: _samples(HEALTHY), seconds=600, hold=lambda now: HOLD
    )
    assert len(passes) == 120, "a held shadow never promotes"
    for _, d in passes:
        assert d.candidate is not None and d.candidate.version == "v2"
        assert (d.mirror_percent, d.candidate_weight) == (0, 0)
        assert d.state.phase == "Waiting"
        assert d.state.step_started is None
        assert _condition(d, ConditionType.PROGRESSING) == ("True", "MirrorUnsupported")
        assert _condition(d, ConditionType.ROLLED_BACK)[0] == "False"


def test_held_shadow_is_judged_from_scratch_once_its_gateway_can_mirror() -> None:
    released = T0 + timedelta(seconds=300)
    passes = _run(
        _spec(strategy="shadow"),
        lambda now: _samples(HEALTHY),
        seconds=900,
        hold=lambda now: HOLD if now < released else None,
    )
    first = next(d for now, d in passes if now >= released)
    assert first.mirror_percent == 10
    assert first.state.step_started == released
    assert _condition(first, ConditionType.PROGRESSING) == ("True", "RolloutProgressing")
    promoted_at, last = passes[-1]
    assert last.stable.version == "v2"
    assert promoted_at - released >= timedelta(minutes=2), "both steps' pauses count from release"


def test_held_shadow_sets_no_timer_but_a_released_one_does() -> None:
    spec = _spec(strategy="shadow")
    assert timing.requeue_after(spec, _first_shadow_pass(HOLD), T0) is None
    # released, its first analysis is due as the step starts: at once (the floor)
    assert timing.requeue_after(spec, _first_shadow_pass(), T0) == timing.REQUEUE_FLOOR_SECONDS


def test_hold_in_mid_step_stops_mirroring_and_restarts_the_step_clock() -> None:
    spec = _spec(strategy="shadow")
    passes = _run(spec, lambda now: _samples(HEALTHY), seconds=40)
    _, running = passes[-1]
    assert running.mirror_percent == 10 and running.state.step_started is not None
    d = rollout.decide(
        spec,
        state=running.state,
        stable=STABLE,
        candidate=rollout.Candidate(ready_replicas=1),
        samples=None,
        now=T0 + timedelta(seconds=45),
        mirror_hold=HOLD,
    )
    assert d.mirror_percent == 0
    assert (d.state.step, d.state.step_started, d.state.last_analysis) == (0, None, None)


def test_a_remembered_hold_is_not_repeated_once_released() -> None:
    held = rollout.State(phase="Waiting", step_started=T0, last_analysis=T0, note=HOLD)
    d = rollout.decide(
        _spec(strategy="shadow"),
        state=held,
        stable=STABLE,
        candidate=rollout.Candidate(ready_replicas=1),
        samples=None,
        now=T0 + timedelta(seconds=5),
    )
    assert d.mirror_percent == 10
    assert _condition(d, ConditionType.PROGRESSING) == ("True", "RolloutProgressing")


def test_held_state_survives_status_round_trip() -> None:
    spec = _spec(strategy="shadow")
    (now, d), *_ = _run(spec, lambda now: _samples(HEALTHY), seconds=5, hold=lambda now: HOLD)
    fields = rollout_status.to_status(
        spec, d, stable_replicas=2, now=now, previous=api.RolloutStatus()
    )
    status = api.InferenceServiceStatus(
        stable=api.VersionStatus(version="v1", uri="hf://org/m"), rollout=fields
    )
    assert rollout_status.from_status(status)[0] == d.state
    assert fields.reason == "MirrorUnsupported"


def test_held_shadow_renders_no_mirror_filter() -> None:
    d = _first_shadow_pass(HOLD)
    objs = _children(d)
    assert "Deployment/m-v2" in objs, "the candidate runs, ready for when mirroring can begin"
    rule = objs["HTTPRoute/m"]["spec"]["rules"][0]
    assert "filters" not in rule
    assert [b["weight"] for b in rule["backendRefs"]] == [100, 0]


def test_mirroring_every_request_leaves_percent_out() -> None:
    d = _first_shadow_pass(mirrorPercent=100)
    assert d.mirror_percent == 100
    (mirror,) = _children(d)["HTTPRoute/m"]["spec"]["rules"][0]["filters"]
    assert mirror["requestMirror"] == {"backendRef": {"name": "m-v2", "port": 8080}}


def test_stable_keeps_its_own_model_while_the_candidate_rolls() -> None:
    old = rollout.Version("v1", "s3://bucket/m-v1")
    d = rollout.decide(
        _spec(),
        state=rollout.State(),
        stable=old,
        candidate=rollout.Candidate(ready_replicas=1),
        samples=None,
        now=T0,
    )
    objs = _children(d)
    env = {
        e["name"]: e["value"]
        for e in objs["Deployment/m-v1"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["KUBEINFER_MODEL_URI"] == "s3://bucket/m-v1"
