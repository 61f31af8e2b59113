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

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubeinfer.api import inference_service as api
from kubeinfer.gpu import recordings
from kubeinfer.planning import (
    analysis,
    children,
    inference_service,
    replica_moves,
    replica_placement,
    rollout,
    rollout_status,
    topology,
)
from tests.gpu import paths

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OWNER = children.Owner("kubeinfer.io/v1alpha1", "InferenceService", "llm", "ns", "uid-1")
HEALTHY = {"success-rate": (0.999, 0.999), "latency-p95": (120.0, 118.0)}
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
    seconds, table = rollout.estimate(spec, 2, state)
    assert table == [(50, 1, 1, 0)]
    assert seconds == 30
    surge_seconds, surge_table = rollout.estimate(spec, 2)
    assert surge_table == [(50, 1, 2, 4)] and surge_seconds == 30


# --- whole passes against a simulated pool -------------------------------------------------


@functools.cache
def _topology() -> topology.NodeTopology:
    return recordings.topology_of(
        recordings.load(paths.SYNTHETIC / "pcie-a100x8-nvlink-pairs-2socket.txt")
    )


def _spec(version: str = "v2", **rollout_over: Any) -> api.InferenceServiceSpec:
    return api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "m", "version": version, "uri": "hf://org/m"},
            "resources": {"gpus": 4},
            "placement": {"gpuPool": "p", "topology": "any"},
            "replicas": {"min": 2, "max": 2},
            "traffic": {"provider": "none"},
            "rollout": {"steps": [{"weight": 50, "pause": "30s"}], **rollout_over},
        }
    )


@dataclass
class Pod:
    version: str
    ready: bool = False
    terminating: bool = False


@dataclass
class Cluster:
    """One 8-GPU node, every pod taking 4 GPUs: two GPU sets, each pod holding one."""

    sets: int = 2
    pods: list[Pod] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    waited_on_held_set: int = 0
    autoscaled: dict[str, int] = field(default_factory=dict)

    def observed(self, now: datetime, samples: dict[str, tuple[float, float]]) -> Any:
        status = api.InferenceServiceStatus.model_validate(self.status)
        state, _ = rollout_status.from_status(status)
        spec_samples = (
            tuple(analysis.Sample(k, v, s, count=500) for k, (v, s) in samples.items())
            if rollout.analysis_due(SPEC, state, now)
            else None
        )
        views: dict[str, inference_service.DeploymentView] = {}
        pods: dict[str, tuple[int, int]] = {}
        for p in self.pods:
            active, dying = pods.get(p.version, (0, 0))
            pods[p.version] = (active + (not p.terminating), dying + p.terminating)
        for version, (active, _) in pods.items():
            ready = sum(1 for p in self.pods if p.version == version and p.ready)
            views[version] = inference_service.DeploymentView(
                replicas=active, ready_replicas=ready, available=ready > 0
            )
        node = replica_placement.PoolNode(
            name="node-0",
            topology=_topology(),
            uuids={i: f"GPU-{i}" for i in range(8)},
            schedulable=frozenset(range(8)),
            dra=True,
        )
        held = tuple(("node-0", frozenset()) for _ in self.pods)
        return inference_service.Observed(
            pool=replica_placement.PoolState(exists=True, nodes=(node,), held=held),
            previous_placement=tuple(p for p in status.placement),
            deployments=views,
            pods=pods,
            status=status,
            samples=spec_samples,
            now=now,
        )

    def apply(self, plan: inference_service.Plan) -> dict[str, int | None]:
        """Act like the controllers for one tick; return each Deployment's asked replicas."""
        self.pods = [p for p in self.pods if not p.terminating]  # terminated pods are gone
        for p in self.pods:
            p.ready = True
        deployments = {
            c["metadata"]["labels"][inference_service.VERSION_LABEL]: c
            for c in plan.children
            if c["kind"] == "Deployment"
        }
        autoscaler = next(
            (c for c in plan.children if c["kind"] == "HorizontalPodAutoscaler"), None
        )
        asked: dict[str, int | None] = {}
        for version in {p.version for p in self.pods} | set(deployments):
            dep = deployments.get(version)
            if dep is None:
                want = 0
            elif "replicas" in dep["spec"]:
                want = dep["spec"]["replicas"]
            else:
                assert autoscaler is not None, "a Deployment without replicas has an autoscaler"
                assert autoscaler["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
                want = max(self.autoscaled.get(version, 0), autoscaler["spec"]["minReplicas"])
            self.autoscaled[version] = want
            asked[version] = dep["spec"].get("replicas") if dep is not None else None
            mine = [p for p in self.pods if p.version == version and not p.terminating]
            for p in mine[want:]:
                p.terminating = True
            for _ in range(want - len(mine)):
                if len(self.pods) >= self.sets:
                    self.waited_on_held_set += 1  # this pod would be Pending on a held set
                    continue
                self.pods.append(Pod(version))
        self.status = plan.status
        return asked

    def run(
        self, spec: api.InferenceServiceSpec, *, seconds: int, samples: Any = HEALTHY
    ) -> list[tuple[inference_service.Plan, dict[str, int | None]]]:
        out = []
        for tick in range(0, seconds, 5):
            now = T0 + timedelta(seconds=tick)
            plan = inference_service.plan(OWNER, spec, self.observed(now, samples))
            out.append((plan, self.apply(plan)))
            assert len(self.pods) <= self.sets
        return out


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
    assert first.status["rollout"]["mode"] == "ZeroSpare"
    assert first.status["rollout"]["plan"] == [
        {"weight": 50, "candidateReplicas": 1, "stableReplicas": 1, "gpus": 0}
    ]
    assert any(reason == "ZeroSpareRollout" for reason, _ in first.events)
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
    promoted = next(
        i for i, (p, _) in enumerate(passes) if p.status["rollout"]["phase"] == "Promoted"
    )
    plan, _ = passes[promoted]
    assert plan.handover == "llm-v2"
    assert (
        "Promoted",
        "Promoted v2 to stable after moving 2 replicas one at a time.",
    ) in plan.events
    assert [p.version for p in cluster.pods] == ["v2", "v2"]
    weights = [p.status["traffic"]["candidateWeight"] for p, _ in passes[:promoted]]
    assert weights[0] == 0 and set(weights) == {0, 50}, "traffic follows the ready pods' share"
    moves = [m for p, _ in passes for r, m in p.events if r == "ReplicaMoving"]
    assert moves == ["Moving replica 2 of 2 from v1 to v2: stable 0, candidate 2."]
    stable_sizes = [a.get("v1") for _, a in passes[:promoted]]
    assert stable_sizes[0] == 1 and 0 in stable_sizes, "stable is sized by the rollout"
    after = cluster.run(SPEC, seconds=10)
    assert any(c["kind"] == "HorizontalPodAutoscaler" for c in after[-1][0].children)


def test_a_failed_move_moves_replicas_back_and_returns_stable_to_the_autoscaler() -> None:
    cluster = _settled_on_v1()
    passes = cluster.run(SPEC, seconds=200, samples=FAILING)
    phases = [p.status["rollout"]["phase"] for p, _ in passes]
    back = phases.index("RolledBack")
    assert "Progressing" in phases[:back]
    assert cluster.waited_on_held_set == 0
    assert [p.version for p in cluster.pods] == ["v1", "v1"]
    restoring = [a.get("v1") for _, a in passes[back:]]
    assert restoring[0] == 1, "stable grows back only onto the set the candidate releases"
    handed = next(p for p, _ in passes[back:] if p.handover == "llm-v1")
    assert handed.status["rollout"]["mode"] == ""
    assert any(c["kind"] == "HorizontalPodAutoscaler" for c in handed.children)


def test_shadow_without_free_gpus_waits_and_starts_no_candidate() -> None:
    cluster = _settled_on_v1()
    plan, asked = cluster.run(_spec(strategy="shadow"), seconds=5)[0]
    assert asked == {"v1": None}
    assert plan.status["rollout"]["phase"] == "Waiting"
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
    assert plan.status["rollout"]["mode"] == "Surge"
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
    assert [row["candidateReplicas"] for row in passes[0][0].status["rollout"]["plan"]] == [1, 2, 3]
    assert {row["gpus"] for row in passes[0][0].status["rollout"]["plan"]} == {0}
    moves = [m for p, _ in passes for r, m in p.events if r == "ReplicaMoving"]
    assert moves == [
        f"Moving replica {k} of 4 from v1 to v2: stable {4 - k}, candidate {k}." for k in (2, 3, 4)
    ]
    weights = {p.status["traffic"]["candidateWeight"] for p, _ in passes}
    assert weights == {0, 25, 50, 75}, "traffic follows each move"
    assert cluster.waited_on_held_set == 0
    assert [p.version for p in cluster.pods] == ["v2"] * 4
