"""The controllers' reads of GPU state from the watch store (a real in-memory store, no client).

Covers: allocated ResourceClaims of kubeinfer's driver name their holder and GPU; recorded
placements hold GPUs, a retired blue-green version's too; a GPU another namespace's service holds
is held for this namespace's placement and pool status alike; an InferenceService's pool view leaves out what others hold (but not its
own claims), knows which nodes publish ResourceSlices and skips nodes without inventory; the
Prometheus series of a pool's GPUs are replaced, not accumulated.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from kubeinfer import metrics
from kubeinfer.agent import snapshot
from kubeinfer.api import gpu_pool as pool_api
from kubeinfer.api import node_inventory as inv
from kubeinfer.controllers import gpu_nodes, gpu_placement, gpu_pool
from kubeinfer.gpu import recordings
from kubeinfer.kube import store as kube_store
from kubeinfer.planning import children
from kubeinfer.planning import gpu_pool as gpu_pool_planner
from kubeinfer.planning.labels import INFERENCE_SERVICE_LABEL, INVENTORY_ANNOTATION
from tests.gpu import paths

OWNER = children.Owner("kubeinfer.io/v1alpha1", "InferenceService", "me", "ns", "uid-me")
POOL = children.Owner("kubeinfer.io/v1alpha1", "GPUPool", "pool", "ns", "uid-pool")


def _node(name: str) -> dict[str, Any]:
    machine = recordings.load(paths.SYNTHETIC / "pcie-a100x8-nvlink-pairs-2socket.txt")
    found = recordings.inventory_of(machine)
    text = inv.dump(snapshot.inventory(found, trends={}, time="2026-01-01T00:00:00Z"))
    return {"metadata": {"name": name, "labels": {}, "annotations": {INVENTORY_ANNOTATION: text}}}


def _claim(name: str, holder: str, node: str, gpus: list[int]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": {INFERENCE_SERVICE_LABEL: holder}},
        "status": {
            "allocation": {
                "devices": {
                    "results": [
                        {
                            "driver": inv.DRIVER,
                            "pool": node,
                            "device": f"gpu-{g}",
                            "request": "gpus",
                        }
                        for g in gpus
                    ]
                }
            }
        },
    }


def _service(name: str, node: str, gpus: list[int], namespace: str = "ns") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"placement": {"gpuPool": "pool"}},
        "status": {"placement": [{"replica": 0, "node": node, "gpus": gpus}]},
    }


def _store() -> kube_store.Store:
    store = kube_store.Store()
    for name in ("n0", "n1", "bare"):
        store.put("Node", _node(name) if name != "bare" else {"metadata": {"name": name}})
    store.put("ResourceClaim", _claim("c-me", "me", "n0", [0, 1]))
    store.put("ResourceClaim", _claim("c-other", "other", "n0", [2, 3]))
    store.put("InferenceService", _service("other2", "n1", [6, 7]))
    store.put("InferenceService", _service("me", "n0", [0, 1]))
    store.put(
        "ResourceSlice",
        {
            "metadata": {"name": "s"},
            "spec": {"driver": inv.DRIVER, "nodeName": "n0", "devices": [{}]},
        },
    )
    return store


def test_claims_and_placements_name_their_holders() -> None:
    held = gpu_nodes.held(_store())
    assert held["n0"][2] == ("ns/other",) and held["n0"][0] == ("ns/me",)
    assert held["n1"][6] == ("ns/other2",)


def test_a_retired_blue_green_version_still_holds_its_sets() -> None:
    service = _service("bg", "n1", [0, 1])
    service["status"]["rollout"] = {
        "retired": {
            "version": "v1",
            "scaleDownAt": "2026-01-01T00:00:30Z",
            "placement": [{"replica": 0, "node": "n1", "gpus": [2, 3]}],
        }
    }
    (recorded,) = gpu_nodes.recorded([service])
    assert recorded.gpus == (("n1", 0), ("n1", 1), ("n1", 2), ("n1", 3))


def test_pool_view_excludes_what_others_hold_and_knows_dra_nodes() -> None:
    store = _store()
    pool = {
        "status": {
            "nodes": [
                {
                    "name": n,
                    "gpus": [
                        {"index": i, "uuid": f"u{i}", "schedulable": i != 5} for i in range(8)
                    ],
                }
                for n in ("n0", "n1")
            ]
            + [{"name": "bare", "gpus": [], "inventoryProblem": "no inventory"}]
        }
    }
    view = gpu_placement.pool_state(store, OWNER, pool)
    nodes = {n.name: n for n in view.nodes}
    assert nodes["n0"].taken == frozenset({2, 3})  # its own claim on 0, 1 is not "taken"
    assert nodes["n1"].taken == frozenset({6, 7})
    assert 5 not in nodes["n0"].schedulable
    assert nodes["n0"].dra and not nodes["n1"].dra
    assert view.nodes_without_inventory == 1
    assert view.held == (("n0", frozenset({0, 1})),)  # the claim labelled with its name
    assert gpu_placement.pool_state(store, OWNER, None).exists is False


def test_a_gpu_another_namespace_holds_is_held_for_placement_and_the_pool() -> None:
    """Nodes are cluster-scoped: a service of another namespace (naming another pool) holds
    its GPUs for this namespace's pool and services too."""
    store = _store()
    store.put("InferenceService", _service("tenant", "n1", [0, 1], namespace="elsewhere"))
    pool = {"status": {"nodes": [{"name": "n1", "gpus": [{"index": i} for i in range(8)]}]}}
    (node,) = gpu_placement.pool_state(store, OWNER, pool).nodes
    assert node.taken == frozenset({0, 1, 6, 7})
    spec = pool_api.GPUPoolSpec.model_validate({})
    views = {v.name: v for v in gpu_pool.node_views(store, spec)}
    assert views["n1"].holders == {
        0: ("elsewhere/tenant",),
        1: ("elsewhere/tenant",),
        6: ("ns/other2",),
        7: ("ns/other2",),
    }
    status = gpu_pool_planner.plan(
        POOL, spec, gpu_pool_planner.Observed(nodes=(views["n1"],))
    ).status
    (n1,) = status.nodes
    assert n1.gpus[0].allocated_to == ["elsewhere/tenant"]
    assert status.allocated == 4 and status.free == 4


def test_gpu_series_of_a_pool_are_replaced() -> None:
    registry = CollectorRegistry()
    recorder = metrics.Metrics(registry)
    recorder.record_gpu_pool(
        "ns", "p", [("n0", 0, "High", 600.0, 1024.0), ("n0", 1, "None", None, 1.0)]
    )
    labels = {"namespace": "ns", "pool": "p", "node": "n0", "gpu": "0"}
    assert registry.get_sample_value("kubeinfer_gpu_oom_risk", labels) == 3
    assert registry.get_sample_value("kubeinfer_gpu_seconds_to_exhaustion", labels) == 600
    recorder.record_gpu_pool("ns", "p", [("n0", 1, "None", None, 1.0)])
    assert registry.get_sample_value("kubeinfer_gpu_oom_risk", labels) is None
