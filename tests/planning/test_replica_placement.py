"""Per-replica placement of InferenceServices and its enforcement in the pod template.

Covers: 2-GPU nvlink-required replicas land on NVLink pairs around an unschedulable GPU; GPUs
others hold are avoided; recorded placements are kept while valid and dropped when not; the
specific reasons (NoNodeFits, InsufficientGPUs, TopologyUnsatisfiable, PoolNotFound,
PlacementPending); DRA mode renders a ResourceClaimTemplate with one firstAvailable subrequest
per planned set (at most 8) and a pod without nvidia.com/gpu; node pinning otherwise; Events
only for new decisions; the rendered Deployment carries the constraints.
"""

from __future__ import annotations

import functools

import pytest

from kubeinfer.api import inference_service as api
from kubeinfer.gpu import recordings
from kubeinfer.planning import children, inference_service
from kubeinfer.planning.gpu import placement_report, replica_placement, topology
from tests.gpu import paths

PAIRS = frozenset({frozenset({0, 1}), frozenset({2, 3}), frozenset({4, 5}), frozenset({6, 7})})
OWNER = children.Owner("kubeinfer.io/v1alpha1", "InferenceService", "llm", "ns", "uid-1")


@functools.cache
def _topology() -> topology.NodeTopology:
    return recordings.topology_of(
        recordings.load(paths.SYNTHETIC / "pcie-a100x8-nvlink-pairs-2socket.txt")
    )


def _node(
    name: str,
    *,
    bad: frozenset[int] = frozenset(),
    taken: frozenset[int] = frozenset(),
    dra: bool = True,
) -> replica_placement.PoolNode:
    return replica_placement.PoolNode(
        name=name,
        topology=_topology(),
        uuids={i: f"GPU-{name}-{i}" for i in range(8)},
        schedulable=frozenset(range(8)) - bad,
        taken=taken,
        dra=dra,
    )


def _spec(
    gpus: int = 2, replicas: int = 2, topology: str = "nvlink-required"
) -> api.InferenceServiceSpec:
    return api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "m", "version": "v1", "uri": "hf://m"},
            "resources": {"gpus": gpus},
            "placement": {"gpuPool": "pool", "topology": topology},
            "replicas": {"min": replicas, "max": replicas},
            "traffic": {"provider": "none"},
        }
    )


def _decide(
    spec: api.InferenceServiceSpec, *nodes: replica_placement.PoolNode, previous=()
) -> replica_placement.Outcome:  # type: ignore[no-untyped-def]
    pool = replica_placement.PoolState(exists=True, nodes=nodes)
    return replica_placement.decide(spec, pool, previous=previous, current_pods=0)


def test_replicas_take_nvlink_pairs_around_an_unhealthy_gpu() -> None:
    outcome = _decide(_spec(replicas=3), _node("a", bad=frozenset({3})), _node("b"))
    assert outcome.no_fit is None and len(outcome.placements) == 3
    for p in outcome.placements:
        assert frozenset(p.gpus) in PAIRS
        assert not (p.node == "a" and {2, 3} & set(p.gpus))
        assert "bottleneck" in p.explanation
    assert outcome.new == (0, 1, 2)


def test_gpus_held_by_others_are_not_chosen() -> None:
    outcome = _decide(_spec(replicas=2), _node("a", taken=frozenset({0, 2, 4, 6})), _node("b"))
    assert all(p.node == "b" for p in outcome.placements)


def test_recorded_placements_are_kept_while_valid() -> None:
    spec = _spec(replicas=2)
    first = _decide(spec, _node("a"), _node("b"))
    again = _decide(spec, _node("a"), _node("b"), previous=first.placements)
    assert again.placements == first.placements and again.new == ()
    assert placement_report.events(again) == ()
    gone = first.placements[0]
    nodes = [_node(n, bad=frozenset(gone.gpus) if n == gone.node else frozenset()) for n in "ab"]
    moved = _decide(spec, *nodes, previous=first.placements)
    assert moved.new == (0,)
    assert moved.placements[1] == first.placements[1]
    again = moved.placements[0]
    assert again.node != gone.node or not set(again.gpus) & set(gone.gpus)


@pytest.mark.parametrize(
    ("spec", "nodes", "reason"),
    [
        (_spec(gpus=16, replicas=1, topology="any"), (_node("a"),), "NoNodeFits"),
        (_spec(replicas=5), (_node("a"),), "InsufficientGPUs"),
        (_spec(gpus=3, replicas=1), (_node("a"),), "TopologyUnsatisfiable"),
    ],
    ids=["bigger than any node", "pool full", "no NVLink triple"],
)
def test_no_fit_reasons_are_specific(
    spec: api.InferenceServiceSpec, nodes: tuple[replica_placement.PoolNode, ...], reason: str
) -> None:
    pool = replica_placement.PoolState(exists=True, nodes=nodes)
    outcome = replica_placement.decide(spec, pool, previous=(), current_pods=0)
    placed = placement_report.placed(spec, pool, outcome)
    assert (placed.status, placed.reason.value) == ("False", reason)


def test_pool_missing_or_without_inventory() -> None:
    spec = _spec()
    missing = placement_report.placed(spec, replica_placement.PoolState(exists=False), None)
    assert missing.reason.value == "PoolNotFound"
    empty = replica_placement.PoolState(exists=True, nodes_without_inventory=2)
    assert placement_report.placed(spec, empty, None).reason.value == "PlacementPending"
    assert placement_report.capacity(spec, empty, None).reason.value == "PoolNotReady"


def test_dra_mode_names_each_planned_set_and_drops_the_device_plugin_count() -> None:
    spec = _spec(replicas=2)
    pool = replica_placement.PoolState(exists=True, nodes=(_node("a"), _node("b")))
    observed = inference_service.Observed(pool=pool)
    plan = inference_service.plan(OWNER, spec, observed)
    template = next(c for c in plan.children if c["kind"] == "ResourceClaimTemplate")
    (request,) = template["spec"]["spec"]["devices"]["requests"]
    subrequests = request["firstAvailable"]
    assert len(subrequests) == 2 and all(s["count"] == 2 for s in subrequests)
    placed = plan.status.placement
    first = f"GPU-{placed[0].node}-{placed[0].gpus[0]}"
    assert first in subrequests[0]["selectors"][0]["cel"]["expression"]
    deployment = next(c for c in plan.children if c["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["resourceClaims"] == [
        {"name": "gpus", "resourceClaimTemplateName": template["metadata"]["name"]}
    ]
    limits = pod["containers"][0]["resources"]["limits"]
    assert "nvidia.com/gpu" not in limits
    assert pod["containers"][0]["resources"]["claims"] == [{"name": "gpus"}]
    hosts = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert hosts["nodeSelectorTerms"][0]["matchFields"][0]["values"] == sorted(
        {p.node for p in placed}
    )
    placed_condition = next(o for o in plan.observations if o.type.value == "Placed")
    assert placed_condition.status == "True" and "DRA" in placed_condition.message
    assert [e.reason for e in plan.events] == ["ReplicaPlaced", "ReplicaPlaced"]


def test_more_than_eight_replicas_share_a_last_subrequest() -> None:
    spec = _spec(gpus=1, replicas=12, topology="any")
    outcome = _decide(spec, _node("a"), _node("b"))
    assert outcome.enforcement is not None
    template = replica_placement.build_claim_template(OWNER, "llm-v1", outcome.enforcement)
    subrequests = template["spec"]["spec"]["devices"]["requests"][0]["firstAvailable"]
    assert len(subrequests) == replica_placement.MAX_SUBREQUESTS
    assert subrequests[-1]["name"] == "rest"


def test_node_pinning_without_resource_slices_keeps_the_gpu_count() -> None:
    spec = _spec(replicas=1)
    pool = replica_placement.PoolState(exists=True, nodes=(_node("a", dra=False),))
    plan = inference_service.plan(OWNER, spec, inference_service.Observed(pool=pool))
    assert not any(c["kind"] == "ResourceClaimTemplate" for c in plan.children)
    pod = next(c for c in plan.children if c["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert "resourceClaims" not in pod
    message = next(o for o in plan.observations if o.type.value == "Placed").message
    assert "device plugin picks the GPUs" in message


def test_mig_pools_pin_to_their_mig_nodes_without_gpu_sets() -> None:
    spec = _spec(gpus=1, replicas=2, topology="any")
    pool = replica_placement.PoolState(
        exists=True, nodes=(_node("a"), _node("b", bad=frozenset(range(8)))), mig=True
    )
    plan = inference_service.plan(OWNER, spec, inference_service.Observed(pool=pool))
    placed = next(o for o in plan.observations if o.type.value == "Placed")
    assert placed.status == "True" and "MIG pool" in placed.message
    pod = next(c for c in plan.children if c["kind"] == "Deployment")["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchFields"][0]["values"] == ["a"]
    assert "schedulingGates" not in pod and plan.status.placement == []
