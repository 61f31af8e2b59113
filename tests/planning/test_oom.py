"""GPU out-of-memory prediction: the trend fit, the risk verdict, and the trace replay report.

Covers: Theil-Sen ignores a burst at the window's end; the floor rise separates leaks from
sawtooth; budgets (request, MIG slice, shared fraction); Critical at the peak; nothing before
the window is full; levels by time to exhaustion; the ``OOMRisk`` condition over placed GPUs;
and the synthetic-trace replay (``e2e/bench_oom.py``) keeps precision and recall up with
minutes of lead time.
"""

from __future__ import annotations

import pytest

from e2e import bench_oom
from kubeinfer.api import inference_service as api
from kubeinfer.planning.gpu import oom, replica_placement, topology

WINDOW = 600.0


def _trend(samples: list[tuple[float, float]]) -> oom.inv.MemoryTrend:
    trend = oom.fit(samples)
    assert trend is not None
    return trend


def _linear(start: float, rate: float, n: int = 61) -> list[tuple[float, float]]:
    return [(i * 10.0, start + rate * i * 10.0) for i in range(n)]


def test_a_burst_at_the_window_end_does_not_tilt_the_trend() -> None:
    flat = [(i * 10.0, 20000.0) for i in range(61)]
    burst = flat[:-5] + [(t, 30000.0) for t, _ in flat[-5:]]
    trend = _trend(burst)
    assert trend.slope_mib_per_s == 0
    assert trend.peak_mib == 30000
    verdict = oom.predict(trend, budget=40960, threshold=0.9, window_s=WINDOW)
    assert verdict.risk == "None"


def test_a_leak_is_predicted_with_its_time_to_exhaustion() -> None:
    trend = _trend(_linear(20000, 2.0))  # 120 MiB/min, at 21200 MiB now
    verdict = oom.predict(trend, budget=40960, threshold=0.9, window_s=WINDOW)
    assert verdict.seconds_to_exhaustion == pytest.approx((36864 - 21200) / 2.0, rel=0.01)
    assert verdict.risk == "Low"  # 2.2 h away
    fast = oom.predict(_trend(_linear(30000, 5.0)), budget=40960, threshold=0.9, window_s=WINDOW)
    assert fast.risk == "High"  # 13 min away


def test_no_slope_verdict_before_the_window_is_full() -> None:
    trend = _trend(_linear(20000, 20.0, n=20))
    assert oom.predict(trend, budget=40960, threshold=0.9, window_s=WINDOW).risk == "None"


def test_sawtooth_does_not_raise_the_floor() -> None:
    saw = [(i * 10.0, 20000 + 4000 * ((i * 10) % 120) / 120) for i in range(61)]
    trend = _trend(saw)
    assert abs(trend.floor_rise_mib) < 400
    assert oom.predict(trend, budget=40960, threshold=0.9, window_s=WINDOW).risk == "None"


def test_a_peak_at_the_limit_is_critical_even_when_flat() -> None:
    samples = [(i * 10.0, 30000.0 if i != 30 else 37500.0) for i in range(61)]
    verdict = oom.predict(_trend(samples), budget=40960, threshold=0.9, window_s=WINDOW)
    assert verdict.risk == "Critical" and verdict.seconds_to_exhaustion == 0


@pytest.mark.parametrize(
    ("kwargs", "budget"),
    [
        ({"card_mib": 81920, "requested_mib": 40960}, 40960),
        ({"card_mib": 81920, "mig_slice_mib": 10240}, 10240),
        ({"card_mib": 81920, "sharers": 4}, 20480),
        ({"card_mib": 81920}, 81920),
    ],
    ids=["request", "mig slice", "time-sliced share", "whole card"],
)
def test_budget_is_what_the_workload_may_use(kwargs: dict[str, float], budget: float) -> None:
    assert oom.budget_mib(**kwargs) == budget  # type: ignore[arg-type]


def _pool(risk: str, seconds: float | None) -> replica_placement.PoolState:
    topo = topology.NodeTopology(
        gpus=(topology.Gpu(0), topology.Gpu(1)),
        links={(0, 1): topology.Link(topology.PcieLevel.PIX)},
    )
    node = replica_placement.PoolNode(
        name="n0",
        topology=topo,
        uuids={0: "a", 1: "b"},
        schedulable=frozenset({0, 1}),
        oom={0: ("None", None), 1: (risk, seconds)},
    )
    return replica_placement.PoolState(exists=True, nodes=(node,))


def test_oom_risk_condition_names_the_worst_placed_gpu() -> None:
    spec = api.InferenceServiceSpec.model_validate(
        {"model": {"name": "m", "version": "v", "uri": "hf://m"}, "placement": {"gpuPool": "p"}}
    )
    placed = (api.ReplicaPlacement(replica=0, node="n0", gpus=[0, 1]),)
    bad = oom.observation(spec, _pool("High", 600.0), placed)
    assert (bad.status, bad.reason) == ("True", "MemoryExhaustionPredicted")
    assert "n0 GPU 1 risk High" in bad.message and "10.0 min" in bad.message
    fine = oom.observation(spec, _pool("Low", 9000.0), placed)
    assert (fine.status, fine.reason) == ("False", "MemoryWithinBudget")
    none = oom.observation(spec, _pool("Low", 9000.0), ())
    assert (none.status, none.reason) == ("Unknown", "NoMemorySamples")


def test_trace_replay_keeps_precision_recall_and_lead_time() -> None:
    replays = [bench_oom.replay(t) for t in bench_oom.traces(seed=4, per_family=6)]
    report = bench_oom.evaluate(replays)
    assert report.recall == 1.0
    assert report.precision >= 0.9
    assert report.lead_min_s is not None and report.lead_min_s >= 10 * 60
