"""A simulated one-node GPU pool that runs the InferenceService planner pass after pass.

Each tick plans against what the previous ones left and acts like the controllers: Deployments
grow or shrink to what they ask (or what the autoscaler's minimum gives them), terminated pods
are gone a tick later, pods become ready at once; a Deployment the autoscaler does not target
and that asks no replicas (a retired blue-green version) keeps its pods. ``sets`` caps the pods the node holds; a pod
beyond it counts in ``waited_on_held_set`` (it would be Pending on a set another pod holds).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubeinfer.api import inference_service as api
from kubeinfer.gpu import recordings
from kubeinfer.planning import children, inference_service
from kubeinfer.planning.gpu import replica_placement, topology
from kubeinfer.planning.labels import MODEL_VERSION_LABEL
from kubeinfer.planning.rollout import analysis, timing
from kubeinfer.planning.rollout import status as rollout_status
from tests.gpu import paths

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OWNER = children.Owner("kubeinfer.io/v1alpha1", "InferenceService", "llm", "ns", "uid-1")
HEALTHY = {"success-rate": (0.999, 0.999), "latency-p95": (120.0, 118.0)}


def spec(version: str, *, gpus: int, **rollout_over: Any) -> api.InferenceServiceSpec:
    """Two replicas of ``gpus`` GPUs each, a canary of one 50% step unless ``rollout_over``."""
    return api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "m", "version": version, "uri": "hf://org/m"},
            "resources": {"gpus": gpus},
            "placement": {"gpuPool": "p", "topology": "any"},
            "replicas": {"min": 2, "max": 2},
            "traffic": {"provider": "none"},
            "rollout": {"steps": [{"weight": 50, "pause": "30s"}], **rollout_over},
        }
    )


@functools.cache
def node_topology() -> topology.NodeTopology:
    return recordings.topology_of(
        recordings.load(paths.SYNTHETIC / "pcie-a100x8-nvlink-pairs-2socket.txt")
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

    def observed(
        self,
        spec: api.InferenceServiceSpec,
        now: datetime,
        samples: dict[str, tuple[float, float]],
    ) -> Any:
        status = api.InferenceServiceStatus.model_validate(self.status)
        state, _ = rollout_status.from_status(status)
        spec_samples = (
            tuple(analysis.Sample(k, v, s, count=500) for k, (v, s) in samples.items())
            if timing.analysis_due(spec, state, now)
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
            topology=node_topology(),
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
            c["metadata"]["labels"][MODEL_VERSION_LABEL]: c
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
                if autoscaler["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]:
                    want = max(self.autoscaled.get(version, 0), autoscaler["spec"]["minReplicas"])
                else:  # a retired version: nobody sets its replicas, it keeps its pods
                    want = self.autoscaled[version]
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
            plan = inference_service.plan(OWNER, spec, self.observed(spec, now, samples))
            out.append((plan, self.apply(plan)))
            assert len(self.pods) <= self.sets
        return out
