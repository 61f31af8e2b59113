"""GPU node agents, the GPUPool reconciler and topology-aware placement on KWOK GPU nodes.

Covers, against the real control plane with the operator and one ``kubeinfer agent`` per node
(each as the agent ServiceAccount bound to its node, replaying a recorded 8 x A100 PCIe machine
with NVLink pairs through the fake NVML):

- the agents publish GFD labels, the versioned inventory annotation and DRA ResourceSlices, take
  their memory sample window from the GPUPool selecting their node, and the GPUPool aggregates
  both nodes (GPUs, NUMA, NVLink peers, capacity, fragmentation);
- an XID injected into one agent's fake NVML reaches the GPUPool's status (the GPU Unhealthy and
  unschedulable, ``Healthy=False``) in under 5 seconds (the measured latency is printed);
- an InferenceService needing 2 NVLink-connected GPUs per replica is placed around the unhealthy
  GPU, ``Placed=True`` with the sets in ``status.placement``, and its pods land on the planned
  nodes holding exactly the planned GPUs (ResourceClaims allocated by the scheduler through the
  DRA claim template);
- memory use on one of its GPUs past 90 % of the replica's 40 GiB budget shows as Critical OOM
  risk in the pool, ``OOMRisk=True`` on the service and in the operator's Prometheus metrics;
- scaling a DRA-placed service's Deployment from 1 to 2 replicas (as its autoscaler would) keeps
  the first pod and the pod template: the new pod's claim takes the planned growth set.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import gpu_agents, metrics_text, objects, operator_process, waiting

pytestmark = pytest.mark.e2e
NVLINK_PAIRS = {frozenset({0, 1}), frozenset({2, 3}), frozenset({4, 5}), frozenset({6, 7})}
XID_BUDGET_S = 5.0


@pytest.fixture
def gpu_fleet(
    request: pytest.FixtureRequest,
    cluster: cluster_setup.Cluster,
    api: Any,
    namespace: str,
    tmp_path: Any,
) -> Iterator[list[gpu_agents.RunningAgent]]:
    """Two fresh KWOK A100 nodes labelled for this test, each with its agent running.

    Parametrize indirectly with False to run the agents without ResourceSlices (``--no-dra``).
    """
    dra = getattr(request, "param", True)
    with gpu_agents.a100_nodes(
        cluster.kubectl,
        api,
        count=2,
        pool=namespace,
        work_dir=tmp_path / "agents",
        extra_args=[
            "--sample-interval=1",
            "--resync=5",
            "--memory-publish=1",
            *([] if dra else ["--no-dra"]),
        ],
    ) as agents:
        yield agents


def _pool(namespace: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubeinfer.io/v1alpha1",
            "kind": "GPUPool",
            "metadata": {"name": "a100", "namespace": namespace},
            "spec": {
                "nodeSelector": {"matchLabels": {"kubeinfer.io/e2e-pool": namespace}},
                "oomPrediction": {"window": "1m"},
            },
        }
    )


def _claimed_sets(
    cluster: cluster_setup.Cluster, namespace: str
) -> set[tuple[str, frozenset[int]]]:
    """(node, GPU indices) of every allocated ResourceClaim of the namespace."""
    out = cluster.kubectl("get", "resourceclaims", "-n", namespace, "-o", "json").stdout
    sets = set()
    for claim in json.loads(out)["items"]:
        results = ((claim.get("status") or {}).get("allocation") or {}).get("devices", {})
        devices = results.get("results") or []
        if devices:
            sets.add((devices[0]["pool"], frozenset(int(d["device"][4:]) for d in devices)))
    return sets


def _service(namespace: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubeinfer.io/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": "tp2", "namespace": namespace},
            "spec": {
                "model": {"name": "llm", "version": "v1", "uri": "hf://org/llm"},
                "resources": {"gpus": 2, "gpuMemory": "40Gi", "cpu": "1", "memory": "1Gi"},
                "placement": {"gpuPool": "a100", "topology": "nvlink-required"},
                "replicas": {"min": 2, "max": 2},
                "sla": {"tier": "bronze"},
                "traffic": {"provider": "none"},
            },
        }
    )


def test_xid_reaches_pool_status_and_replicas_land_on_planned_nvlink_pairs(
    cluster: cluster_setup.Cluster,
    api: Any,
    namespace: str,
    operator: operator_process.RunningOperator,
    gpu_fleet: list[gpu_agents.RunningAgent],
) -> None:
    kubectl = cluster.kubectl
    nodes = [a.node for a in gpu_fleet]
    kubectl("apply", "-f", "-", stdin=_pool(namespace))

    def discovered() -> dict[str, Any] | None:
        pool = objects.get(cluster, "gpupool/a100", namespace=namespace)
        ready = objects.condition(pool, "Discovered").get("status") == "True"
        return pool if ready and pool["status"].get("capacity") == 16 else None

    pool = waiting.first(discovered, what="the pool to discover 2 x 8 GPUs", interval=0.2)
    first = pool["status"]["nodes"][0]
    assert [g["nvlinkPeers"] for g in first["gpus"]][:2] == [[1], [0]]
    assert {g["numaNode"] for g in first["gpus"]} == {0, 1}
    assert pool["status"]["fragmentation"] == 0
    labels = objects.get(cluster, f"node/{nodes[0]}", namespace="default")["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-80GB-PCIe"
    assert labels["gpu.kubeinfer.io/nvlink"] == "true"
    following = "to every 1s over 60s from 1 GPUPools"  # the window comes from the pool's spec
    waiting.first(
        lambda: all(following in a.log_path.read_text() for a in gpu_fleet),
        timeout=20,
        what="the agents to take the pool's oomPrediction window",
        interval=0.2,
    )
    slices = json.loads(kubectl("get", "resourceslices", "-o", "json").stdout)["items"]
    published = {s["spec"]["nodeName"]: len(s["spec"]["devices"]) for s in slices}
    assert all(published.get(n) == 8 for n in nodes), published

    # An XID 79 on GPU 3 of the first node, through the fake NVML's event set.
    sick = nodes[0]
    started = time.monotonic()
    gpu_fleet[0].inject("xid 3 79")

    def unhealthy() -> bool:
        pool = objects.get(cluster, "gpupool/a100", namespace=namespace)
        entry = next(n for n in pool["status"]["nodes"] if n["name"] == sick)
        gpu = entry["gpus"][3]
        return gpu["health"] == "Unhealthy" and gpu["schedulable"] is False

    waiting.first(unhealthy, timeout=30, what="XID 79 to reach the GPUPool status", interval=0.2)
    latency = time.monotonic() - started
    print(f"XID-to-GPUPool-status latency: {latency:.2f} s")
    assert latency < XID_BUDGET_S
    pool = objects.get(cluster, "gpupool/a100", namespace=namespace)
    healthy = objects.condition(pool, "Healthy")
    assert healthy["status"] == "False" and healthy["reason"] == "UnhealthyGPUs"
    assert f"{sick}/3 (CriticalXid)" in healthy["message"]

    # Two replicas of 2 NVLink-connected GPUs: placed, enforced through DRA, honoured.
    kubectl("apply", "-f", "-", stdin=_service(namespace))

    def placed() -> dict[str, Any] | None:
        svc = objects.get(cluster, "inferenceservice/tp2", namespace=namespace)
        ok = objects.condition(svc, "Placed").get("status") == "True"
        return svc if ok and len(svc["status"].get("placement") or []) == 2 else None

    svc = waiting.first(placed, what="Placed=True with two placements", interval=0.2)
    planned = {(p["node"], frozenset(p["gpus"])) for p in svc["status"]["placement"]}
    for node, gpus in planned:
        assert gpus in NVLINK_PAIRS, planned
        assert node in nodes
        assert not (node == sick and 3 in gpus), planned
    assert "DRA" in objects.condition(svc, "Placed")["message"]
    events = kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=ReplicaPlaced"
    ).stdout
    assert "Placed replica" in events

    def held() -> set[tuple[str, frozenset[int]]] | None:
        sets = _claimed_sets(cluster, namespace)
        return sets if len(sets) == 2 else None

    actual = waiting.first(held, timeout=90, what="two allocated ResourceClaims", interval=0.2)
    assert actual == planned
    waiting.first(
        lambda: (
            "2 of 2 hold their planned GPUs"
            in objects.condition(
                objects.get(cluster, "inferenceservice/tp2", namespace=namespace), "Placed"
            )["message"]
        ),
        timeout=30,
        what="Placed to report both replicas holding their planned GPUs",
        interval=0.2,
    )
    pods = json.loads(
        kubectl(
            "get", "pods", "-n", namespace, "-l", "kubeinfer.io/inferenceservice=tp2", "-o", "json"
        ).stdout
    )["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {n for n, _ in planned}

    # Memory on one placed GPU passes 90 % of the replica's 40 GiB budget.
    node, gpus = sorted(planned, key=lambda p: (p[0], sorted(p[1])))[0]
    index = min(gpus)
    next(a for a in gpu_fleet if a.node == node).inject(f"memory {index} 38000")

    def at_risk() -> dict[str, Any] | None:
        svc = objects.get(cluster, "inferenceservice/tp2", namespace=namespace)
        return svc if objects.condition(svc, "OOMRisk").get("status") == "True" else None

    svc = waiting.first(at_risk, timeout=30, what="OOMRisk=True on the service", interval=0.2)
    assert objects.condition(svc, "OOMRisk")["reason"] == "MemoryExhaustionPredicted"
    pool = objects.get(cluster, "gpupool/a100", namespace=namespace)
    gpu = next(n for n in pool["status"]["nodes"] if n["name"] == node)["gpus"][index]
    assert gpu["oomRisk"] == "Critical" and gpu["memoryUsedMib"] == 38000
    metrics = metrics_text.scrape(operator.liveness_url.replace("/healthz", "/metrics"))
    labels = {"gpu": str(index), "namespace": namespace, "node": node, "pool": "a100"}
    assert metrics_text.value(metrics, "kubeinfer_gpu_oom_risk", **labels) == 4.0


@pytest.mark.parametrize("gpu_fleet", [False], indirect=True, ids=["no-resource-slices"])
def test_without_resource_slices_replicas_are_pinned_to_the_planned_nodes(
    cluster: cluster_setup.Cluster,
    namespace: str,
    operator: operator_process.RunningOperator,
    gpu_fleet: list[gpu_agents.RunningAgent],
) -> None:
    kubectl = cluster.kubectl
    kubectl("apply", "-f", "-", stdin=_pool(namespace))
    kubectl("apply", "-f", "-", stdin=_service(namespace))

    def placed() -> dict[str, Any] | None:
        svc = objects.get(cluster, "inferenceservice/tp2", namespace=namespace)
        ok = objects.condition(svc, "Placed").get("status") == "True"
        return svc if ok and len(svc["status"].get("placement") or []) == 2 else None

    svc = waiting.first(placed, what="Placed=True with two placements", interval=0.2)
    assert "device plugin picks the GPUs" in objects.condition(svc, "Placed")["message"]
    nodes = {p["node"] for p in svc["status"]["placement"]}
    templates = kubectl("get", "resourceclaimtemplates", "-n", namespace, "-o", "name").stdout
    assert templates.strip() == ""

    def scheduled() -> list[dict[str, Any]] | None:
        out = kubectl(
            "get", "pods", "-n", namespace, "-l", "kubeinfer.io/inferenceservice=tp2", "-o", "json"
        ).stdout
        pods = [p for p in json.loads(out)["items"] if p["spec"].get("nodeName")]
        return pods if len(pods) == 2 else None

    pods = waiting.first(scheduled, timeout=90, what="two scheduled pods", interval=0.2)
    assert {p["spec"]["nodeName"] for p in pods} <= nodes
    limits = pods[0]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "2"


def _sets(placement: list[dict[str, Any]]) -> list[tuple[str, frozenset[int]]]:
    return [(p["node"], frozenset(p["gpus"])) for p in placement]


def test_scaling_the_deployment_keeps_its_pods_and_the_new_pod_takes_a_growth_set(
    cluster: cluster_setup.Cluster,
    namespace: str,
    operator: operator_process.RunningOperator,
    gpu_fleet: list[gpu_agents.RunningAgent],
) -> None:
    kubectl = cluster.kubectl
    kubectl("apply", "-f", "-", stdin=_pool(namespace))
    body = yaml.safe_load(_service(namespace))
    body["spec"]["resources"]["gpus"] = 1
    body["spec"]["placement"]["topology"] = "any"
    body["spec"]["replicas"] = {"min": 1, "max": 2}
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body))
    selector = "kubeinfer.io/inferenceservice=tp2"

    def placed() -> dict[str, Any] | None:
        svc = objects.get(cluster, "inferenceservice/tp2", namespace=namespace)
        status = svc.get("status") or {}
        ok = objects.condition(svc, "Placed").get("status") == "True"
        grown = len(((status.get("growth") or {}).get("placement")) or []) == 1
        return svc if ok and len(status.get("placement") or []) == 1 and grown else None

    svc = waiting.first(
        placed, what="Placed=True with one placement and one growth set", interval=0.2
    )
    planned = _sets(svc["status"]["placement"]) + _sets(svc["status"]["growth"]["placement"])
    waiting.first(
        lambda: _claimed_sets(cluster, namespace) == {planned[0]},
        timeout=90,
        what="the first pod's claim to hold the first planned set",
        interval=0.2,
    )

    def pods() -> list[dict[str, Any]]:
        out = kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
        return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]

    first = pods()
    assert len(first) == 1

    def replica_sets() -> set[str]:
        out = kubectl("get", "replicasets", "-n", namespace, "-l", selector, "-o", "name").stdout
        return set(out.split())

    before = replica_sets()
    deployment = kubectl("get", "deployments", "-n", namespace, "-l", selector, "-o", "name")
    kubectl("scale", deployment.stdout.strip(), "-n", namespace, "--replicas=2")
    waiting.first(
        lambda: _claimed_sets(cluster, namespace) == set(planned),
        timeout=90,
        what="the new pod's claim to take the planned growth set",
        interval=0.2,
    )
    now = pods()
    assert first[0]["metadata"]["uid"] in {p["metadata"]["uid"] for p in now}, "first pod kept"
    assert len(now) == 2
    assert replica_sets() == before, "the pod template did not change"
    hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in now}
    assert hashes == {first[0]["metadata"]["labels"]["pod-template-hash"]}

    def recorded() -> dict[str, Any] | None:
        svc = objects.get(cluster, "inferenceservice/tp2", namespace=namespace)
        return svc if len(svc["status"].get("placement") or []) == 2 else None

    svc = waiting.first(recorded, what="status.placement to record both replicas", interval=0.2)
    assert _sets(svc["status"]["placement"]) == planned
    assert svc["status"]["growth"]["placement"] == []
