"""Rollout state machine and analysis: healthy candidates promote through every step, degraded
ones roll back within two analysis intervals, low traffic and Prometheus outages wait instead of
failing, denied versions are not rolled again, strategies split traffic as documented, and the
state survives a round trip through status (an operator restart resumes at the same step)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType
from kubeinfer.planning import analysis, rollout, rollout_status

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


def _run(
    spec: api.InferenceServiceSpec,
    traffic: Traffic,
    *,
    seconds: int,
    start: rollout.State | None = None,
) -> list[tuple[datetime, rollout.Decision]]:
    """Drive passes every 5 s, analysing whenever an interval is due, like the controller."""
    state = start or rollout.State()
    stable: rollout.Version | None = STABLE
    out = []
    for tick in range(0, seconds, 5):
        now = T0 + timedelta(seconds=tick)
        samples = (
            traffic(now)
            if rollout.analysis_due(spec, state, now) or state.phase == "Idle"
            else None
        )
        d = rollout.decide(
            spec,
            state=state,
            stable=stable,
            candidate=rollout.Candidate(ready_replicas=1),
            samples=samples,
            now=now,
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
    assert ("Promoted", "Promoted v2 to stable after 2 steps.") in last.events


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
    status = api.InferenceServiceStatus.model_validate(
        {
            "stable": {"version": d.stable.version, "uri": d.stable.uri},
            "rollout": fields,
        }
    )
    state, stable = rollout_status.from_status(status)
    assert (state, stable) == (d.state, d.stable)
    assert fields["plan"] == [
        {"weight": 10, "candidateReplicas": 1, "stableReplicas": 2, "gpus": 1},
        {"weight": 50, "candidateReplicas": 1, "stableReplicas": 2, "gpus": 1},
    ]
    assert fields["estimatedSeconds"] == 120


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


def test_shadow_rollout_renders_candidate_and_mirror_filter() -> None:
    d = rollout.decide(
        _spec(strategy="shadow"),
        state=rollout.State(),
        stable=STABLE,
        candidate=rollout.Candidate(ready_replicas=1),
        samples=None,
        now=T0,
    )
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
