"""A zero-spare-GPU rollout on the real control plane: one KWOK node whose 8 GPUs are all held by
the stable version's two 4-GPU replicas, then a model version change.

Covers: the rollout runs in ZeroSpare mode (status and an Event say so, the plan shows 0 extra
GPUs), replicas move one at a time (each move an Event), the upgrade is Promoted with both pods
of the new version holding the node's GPUs through DRA claims, and at no time is a pod
unschedulable: the scheduler posts no ``FailedScheduling`` Event and no pod observed during the
rollout had ``PodScheduled=False``. Analysis runs on a real Prometheus with a query that always
answers 1, so each move is gated by a real analysis pass.
"""

from __future__ import annotations

import contextlib
import functools
import json
import pathlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import gpu_agents, gpu_nodes, operator_process, processes, prometheus, waiting

pytestmark = pytest.mark.e2e
RECORDING = gpu_agents.RECORDINGS / "pcie-a100x8-nvlink-pairs-2socket.txt"
NAME = "llm"

_eventually = functools.partial(waiting.first, timeout=90.0, interval=0.5)
"""Poll until the check holds; returns its first truthy result."""


@pytest.fixture
def analysing_operator(
    kubeinfer_crds: tuple[str, ...],
    operator_kubeconfig: pathlib.Path,
    tmp_path: pathlib.Path,
) -> Iterator[operator_process.RunningOperator]:
    """The operator as its ServiceAccount, analysing rollouts on a Prometheus of its own."""
    with processes.Supervisor() as supervisor:
        scraper = prometheus.start(supervisor, tmp_path / "prometheus")
        yield operator_process.start(
            supervisor,
            kubeconfig=operator_kubeconfig,
            log_path=tmp_path / "kubeinfer-operator.log",
            extra_args=["--prometheus-url", scraper.url],
        )


@pytest.fixture
def one_node(
    cluster: cluster_setup.Cluster, api: Any, namespace: str, tmp_path: pathlib.Path
) -> Iterator[str]:
    """One fresh 8-GPU KWOK node labelled for this test, with its agent publishing DRA devices."""
    spec = gpu_nodes.GpuNodeSpec(
        name=f"a100-{secrets.token_hex(3)}",
        product="NVIDIA-A100-80GB-PCIe",
        gpu_memory_mib=81920,
        gpu_family="ampere",
        labels={"kubeinfer.io/e2e-pool": namespace},
    )
    names = gpu_nodes.create(api, [spec])
    core: Any = kubernetes.client.CoreV1Api(api)
    try:
        with processes.Supervisor() as supervisor:
            gpu_agents.start(
                supervisor,
                cluster.kubectl,
                api,
                nodes=names,
                recording=RECORDING,
                work_dir=tmp_path / "agents",
                extra_args=["--sample-interval=1", "--resync=5"],
            )
            yield names[0]
    finally:
        gpu_agents.delete_identities(api, names)
        for name in names:
            with contextlib.suppress(kubernetes.client.ApiException):
                core.delete_node(name)


def _manifests(namespace: str, version: str) -> str:
    pool = {
        "apiVersion": "kubeinfer.io/v1alpha1",
        "kind": "GPUPool",
        "metadata": {"name": "a100", "namespace": namespace},
        "spec": {"nodeSelector": {"matchLabels": {"kubeinfer.io/e2e-pool": namespace}}},
    }
    service = {
        "apiVersion": "kubeinfer.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "model": {"name": "llm", "version": version, "uri": "hf://org/llm"},
            "resources": {"gpus": 4, "cpu": "1", "memory": "1Gi", "sharedMemory": "256Mi"},
            "placement": {"gpuPool": "a100", "topology": "any"},
            "replicas": {"min": 2, "max": 2},
            "sla": {"tier": "bronze"},
            "traffic": {"provider": "none"},
            "rollout": {
                "strategy": "canary",
                "steps": [{"weight": 50, "pause": "10s"}],
                "analysis": {
                    "interval": "10s",
                    "minSamples": 0,
                    "metrics": [
                        {"name": "up", "query": "vector(1)", "thresholdRange": {"min": 0.5}}
                    ],
                },
            },
        },
    }
    return yaml.safe_dump_all([pool, service])


def _get(cluster: cluster_setup.Cluster, ref: str, namespace: str) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl("get", ref, "-n", namespace, "-o", "json").stdout))


def _pods(cluster: cluster_setup.Cluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _get(cluster, "pods", namespace)["items"]
    return items


def _condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def _events(cluster: cluster_setup.Cluster, namespace: str, reason: str) -> list[str]:
    out = _get(cluster, "events", namespace)["items"]
    # condition transitions post Events with the condition's reason too ("Progressing is ...")
    return [
        e.get("message", "")
        for e in out
        if e.get("reason") == reason and not e.get("message", "").startswith("Progressing is")
    ]


def test_with_every_gpu_in_use_an_upgrade_moves_replicas_and_never_waits_on_a_gpu(
    cluster: cluster_setup.Cluster,
    namespace: str,
    analysing_operator: operator_process.RunningOperator,
    one_node: str,
) -> None:
    kubectl = cluster.kubectl
    kubectl("apply", "-f", "-", stdin=_manifests(namespace, "v1"))

    def settled() -> list[dict[str, Any]] | None:
        pods = [
            p
            for p in _pods(cluster, namespace)
            if _condition(p, "Ready").get("status") == "True"
            and p["spec"].get("nodeName") == one_node
        ]
        return pods if len(pods) == 2 else None

    _eventually(settled, timeout=120, what="two 4-GPU v1 pods holding all 8 GPUs")
    svc = _get(cluster, f"inferenceservice/{NAME}", namespace)
    assert _condition(svc, "Ready").get("status") == "True"

    patch = json.dumps({"spec": {"model": {"version": "v2"}}})
    kubectl("patch", "infsvc", NAME, "-n", namespace, "--type=merge", "-p", patch)
    started = time.monotonic()
    seen_pods: dict[str, dict[str, Any]] = {}
    modes: set[str] = set()
    plans: list[Any] = []

    def promoted() -> dict[str, Any] | None:
        for pod in _pods(cluster, namespace):
            name = pod["metadata"]["name"]
            if _condition(pod, "PodScheduled").get("status") == "False":
                seen_pods[name] = pod  # an unschedulable pod: kept as evidence
            seen_pods.setdefault(name, pod)
        status = _get(cluster, f"inferenceservice/{NAME}", namespace).get("status") or {}
        rollout = status.get("rollout") or {}
        modes.add(rollout.get("mode", ""))
        if rollout.get("plan"):
            plans.append(rollout["plan"])
        # Promoted lasts one pass; after it the rollout is Idle on the new stable
        done = status["stable"]["version"] == "v2" and not status.get("candidate")
        return status if done else None

    status = _eventually(
        promoted,
        timeout=300,
        interval=0.3,
        what="the upgrade to be promoted",
        on_timeout=lambda: json.dumps(
            (_get(cluster, f"inferenceservice/{NAME}", namespace).get("status") or {}).get(
                "rollout"
            )
        ),
    )
    print(f"v1 -> v2 with zero spare GPUs promoted after {time.monotonic() - started:.1f} s")
    assert "ZeroSpare" in modes
    assert any(
        p == [{"weight": 50, "candidateReplicas": 1, "stableReplicas": 1, "gpus": 0}] for p in plans
    ), plans
    assert _events(cluster, namespace, "ZeroSpareRollout"), "the mode is explained in an Event"
    assert _events(cluster, namespace, "Promoted") == [
        "Promoted v2 to stable after moving 2 replicas one at a time."
    ]
    assert _events(cluster, namespace, "ReplicaMoving") == [
        "Moving replica 2 of 2 from v1 to v2: stable 0, candidate 2."
    ]
    unschedulable = [
        n for n, p in seen_pods.items() if _condition(p, "PodScheduled").get("status") == "False"
    ]
    assert unschedulable == [], "no pod waited on a GPU another still held"
    assert _events(cluster, namespace, "FailedScheduling") == []

    def v2_holds_the_node() -> list[dict[str, Any]] | None:
        pods = [p for p in _pods(cluster, namespace) if not p["metadata"].get("deletionTimestamp")]
        versions = {p["metadata"]["labels"].get("kubeinfer.io/model-version") for p in pods}
        ready = all(_condition(p, "Ready").get("status") == "True" for p in pods)
        return pods if len(pods) == 2 and versions == {"v2"} and ready else None

    _eventually(v2_holds_the_node, what="both v2 pods ready on the node")
    claims = _get(cluster, "resourceclaims", namespace)["items"]
    held = [
        frozenset(
            d["device"]
            for d in ((c.get("status") or {}).get("allocation") or {})
            .get("devices", {})
            .get("results", [])
        )
        for c in claims
    ]
    held = [h for h in held if h]
    assert len(held) == 2 and len(frozenset().union(*held)) == 8, held
    deployments = kubectl("get", "deploy", "-n", namespace, "-o", "name").stdout.split()
    assert deployments == [f"deployment.apps/{NAME}-v2"]
    hpa = _get(cluster, f"hpa/{NAME}", namespace)
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{NAME}-v2", "the autoscaler is back"
    assert status["rollout"]["mode"] == ""
