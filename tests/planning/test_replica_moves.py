"""Zero-spare rollouts: replicas move one at a time when the pool cannot surge.

Covers: which mode each ``gpuSurge`` / strategy / capacity picks; the growth cap (a Deployment
shrinks at once and grows only onto released GPU sets); the move schedule (candidate pods, weight
and pause per move; the plan shows 0 extra GPUs); and whole passes of the planner against a
simulated one-node pool whose GPUs are all in use: the upgrade promotes with never more pods
than GPU sets and never a pod waiting on a set another still holds, traffic follows the ready
replicas, the autoscaler steps aside while replicas move and gets stable back afterwards; a
failed analysis moves replicas back; four replicas move in order; shadow and blue-green wait for
free GPUs instead.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubeinfer.api import inference_service as api
from kubeinfer.planning.rollout import machine as rollout
from kubeinfer.planning.rollout import replica_moves
from kubeinfer.planning.rollout import steps as rollout_steps
from tests.planning import gpu_cluster
from tests.planning.gpu_cluster import Cluster

FAILING = {"success-rate": (0.90, 0.999), "latency-p95": (120.0, 118.0)}


@pytest.mark.parametrize(
    ("surge", "strategy", "fits", "mode"),
    [
        ("auto", "canary", True, "Surge"),
        ("auto", "canary", False, "ZeroSpare"),
        ("auto", "shadow", False, None),
        ("auto", "blueGreen", False, None),
        ("auto", "blueGreen", True, "Surge"),
        ("always", "canary", False, "Surge"),
        ("never", "canary", True, "ZeroSpare"),
    ],
    ids=[
        "auto surges when the candidate fits beside stable",
        "auto moves replicas when it does not",
        "auto shadow waits for free GPUs rather than moving replicas",
        "auto blue-green waits for free GPUs rather than moving replicas",
        "auto blue-green surges when it fits",
        "always surges even without free GPUs",
        "never moves replicas even with free GPUs",
    ],
)
def test_mode_follows_gpu_surge_strategy_and_capacity(
    surge: str, strategy: str, fits: bool, mode: str | None
) -> None:
    settings = api.Rollout.model_validate({"strategy": strategy, "gpuSurge": surge})
    assert replica_moves.choose(settings, replica_moves.Capacity(surge_fits=fits)) == mode


@pytest.mark.parametrize(
    ("target", "active", "holding", "asked"),
    [
        (1, 2, 2, 1),
        (2, 1, 3, 1),
        (2, 1, 2, 2),
        (3, 0, 3, 0),
        (3, 1, 2, 2),
        (0, 3, 4, 0),
    ],
    ids=[
        "a shrinking Deployment shrinks at once",
        "growth waits while every set is held",
        "growth takes a released set",
        "no growth while a terminating pod still holds a set",
        "growth takes only the sets released so far",
        "scaling to zero never waits",
    ],
)
def test_a_deployment_grows_only_onto_released_sets(
    target: int, active: int, holding: int, asked: int
) -> None:
    assert replica_moves.capped(target, active=active, total=3, holding=holding) == asked


def test_moves_take_one_replica_each_with_the_canary_steps_pauses() -> None:
    settings = api.Rollout.model_validate(
        {"steps": [{"weight": 25, "pause": "1m"}, {"weight": 50, "pause": "2m"}]}
    )
    total = 4
    schedule = [
        (
            replica_moves.candidate_at(total, s),
            replica_moves.weight(total, replica_moves.candidate_at(total, s)),
            replica_moves.pause_at(settings, total, s),
        )
        for s in range(replica_moves.moves(total))
    ]
    assert schedule == [(1, 25, "1m"), (2, 50, "2m"), (3, 75, "2m")]
    assert replica_moves.candidate_at(total, replica_moves.moves(total)) == total
    assert replica_moves.moves(1) == 1 and replica_moves.candidate_at(1, 1) == 1


def test_the_plan_shows_no_extra_gpu_per_move() -> None:
    spec = _spec()
    state = rollout.State(phase="Progressing", mode="ZeroSpare", total=2)
    seconds, table = rollout_steps.estimate(spec, 2, state)
    assert table == [(50, 1, 1, 0)]
    assert seconds == 30
    surge_seconds, surge_table = rollout_steps.estimate(spec, 2)
    assert surge_table == [(50, 1, 2, 4)] and surge_seconds == 30


# --- whole passes against a simulated pool -------------------------------------------------


def _spec(version: str = "v2", **rollout_over: Any) -> api.InferenceServiceSpec:
    return gpu_cluster.spec(version, gpus=4, **rollout_over)


SPEC = _spec()


def _settled_on_v1() -> Cluster:
    cluster = Cluster()
    cluster.run(_spec("v1"), seconds=15)
    assert [p.version for p in cluster.pods] == ["v1", "v1"]
    return cluster


def test_with_every_gpu_in_use_an_upgrade_moves_replicas_and_promotes() -> None:
    cluster = _settled_on_v1()
    passes = cluster.run(SPEC, seconds=300)
    first = passes[0][0]
    assert first.status.rollout.mode == "ZeroSpare"
    assert first.status.rollout.plan == [
        api.RolloutPlanStep(weight=50, candidate_replicas=1, stable_replicas=1, gpus=0)
    ]
    assert any(e.reason == "ZeroSpareRollout" for e in first.events)
    kinds = {c["kind"] for c in first.children}
    assert "HorizontalPodAutoscaler" not in kinds, "the autoscaler steps aside while replicas move"
    candidate = next(
        c for c in first.children if c["kind"] == "Deployment" and c["metadata"]["name"] == "llm-v2"
    )
    pod = candidate["spec"]["template"]["spec"]
    assert "schedulingGates" not in pod, "the candidate is placed on stable's sets, not held"
    claims = {
        c["metadata"]["name"]: c for c in first.children if c["kind"] == "ResourceClaimTemplate"
    }
    stable_claim = next(v for k, v in claims.items() if k.startswith("llm-v1-gpus-"))
    candidate_claim = claims[pod["resourceClaims"][0]["resourceClaimTemplateName"]]
    assert candidate_claim["spec"] == stable_claim["spec"], "the same two planned sets"

    assert cluster.waited_on_held_set == 0
    promoted = next(i for i, (p, _) in enumerate(passes) if p.status.rollout.phase == "Promoted")
    plan, _ = passes[promoted]
    assert plan.handover == "llm-v2"
    assert (
        "Promoted",
        "Promoted v2 to stable after moving 2 replicas one at a time.",
    ) in [(e.reason, e.message) for e in plan.events]
    assert [p.version for p in cluster.pods] == ["v2", "v2"]
    weights = [p.status.traffic.candidate_weight for p, _ in passes[:promoted]]
    assert weights[0] == 0 and set(weights) == {0, 50}, "traffic follows the ready pods' share"
    moves = [e.message for p, _ in passes for e in p.events if e.reason == "ReplicaMoving"]
    assert moves == ["Moving replica 2 of 2 from v1 to v2: stable 0, candidate 2."]
    stable_sizes = [a.get("v1") for _, a in passes[:promoted]]
    assert stable_sizes[0] == 1 and 0 in stable_sizes, "stable is sized by the rollout"
    after = cluster.run(SPEC, seconds=10)
    assert any(c["kind"] == "HorizontalPodAutoscaler" for c in after[-1][0].children)


def test_a_failed_move_moves_replicas_back_and_returns_stable_to_the_autoscaler() -> None:
    cluster = _settled_on_v1()
    passes = cluster.run(SPEC, seconds=200, samples=FAILING)
    phases = [p.status.rollout.phase for p, _ in passes]
    back = phases.index("RolledBack")
    assert "Progressing" in phases[:back]
    assert cluster.waited_on_held_set == 0
    assert [p.version for p in cluster.pods] == ["v1", "v1"]
    restoring = [a.get("v1") for _, a in passes[back:]]
    assert restoring[0] == 1, "stable grows back only onto the set the candidate releases"
    handed = next(p for p, _ in passes[back:] if p.handover == "llm-v1")
    assert handed.status.rollout.mode == ""
    assert any(c["kind"] == "HorizontalPodAutoscaler" for c in handed.children)


def test_shadow_without_free_gpus_waits_and_starts_no_candidate() -> None:
    cluster = _settled_on_v1()
    plan, asked = cluster.run(_spec(strategy="shadow"), seconds=5)[0]
    assert asked == {"v1": None}
    assert plan.status.rollout.phase == "Waiting"
    progressing = next(o for o in plan.observations if o.type.value == "Progressing")
    assert progressing.reason.value == "SurgeUnavailable"
    assert "canary strategy moves replicas" in progressing.message


def test_with_free_gpus_the_candidate_surges_onto_them() -> None:
    cluster = _settled_on_v1()
    cluster.sets = 3
    spec = _spec().model_copy(
        update={"replicas": api.Replicas(min=1, max=1)}
    )  # one stable pod, one free set
    cluster.pods = cluster.pods[:1]
    plan, _ = cluster.run(spec, seconds=5)[0]
    assert plan.status.rollout.mode == "Surge"
    assert any(c["kind"] == "HorizontalPodAutoscaler" for c in plan.children)
    candidate = next(
        c for c in plan.children if c["kind"] == "Deployment" and c["metadata"]["name"] == "llm-v2"
    )
    assert "schedulingGates" not in candidate["spec"]["template"]["spec"]


def test_four_replicas_move_one_at_a_time_in_order() -> None:
    def sized(version: str) -> api.InferenceServiceSpec:
        return _spec(
            version, steps=[{"weight": 25, "pause": "30s"}, {"weight": 50, "pause": "30s"}]
        ).model_copy(
            update={"resources": api.Resources(gpus=2), "replicas": api.Replicas(min=4, max=4)}
        )

    cluster = Cluster(sets=4)
    cluster.run(sized("v1"), seconds=15)
    assert [p.version for p in cluster.pods] == ["v1"] * 4
    passes = cluster.run(sized("v2"), seconds=900)
    assert [row.candidate_replicas for row in passes[0][0].status.rollout.plan] == [1, 2, 3]
    assert {row.gpus for row in passes[0][0].status.rollout.plan} == {0}
    moves = [e.message for p, _ in passes for e in p.events if e.reason == "ReplicaMoving"]
    assert moves == [
        f"Moving replica {k} of 4 from v1 to v2: stable {4 - k}, candidate {k}." for k in (2, 3, 4)
    ]
    weights = {p.status.traffic.candidate_weight for p, _ in passes}
    assert weights == {0, 25, 50, 75}, "traffic follows each move"
    assert cluster.waited_on_held_set == 0
    assert [p.version for p in cluster.pods] == ["v2"] * 4
