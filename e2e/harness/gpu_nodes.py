"""Fake GPU nodes, run by kwok, that look like real ones to the scheduler and the operator.

Owns: the Node object of a GPU node (capacity and allocatable with ``nvidia.com/gpu``, the labels
NVIDIA GPU Feature Discovery puts on real nodes, the kwok annotation, an optional topology
annotation, an optional ``spec.podCIDR``), creating such nodes and waiting until kwok has made
them Ready.
Must not: describe GPU topology itself; the caller passes the ``gpu.kubeinfer.io/topology`` JSON.

Pod IPs: kwok gives a pod the next free address of its node's ``spec.podCIDR`` (else of its own
``--cidr``). A node with a loopback range (``pod_cidr="127.42.0.0/24"``; keep clear of
127.0.0.0/24, where the control plane and the fleet's own simulators listen) gives its pods IPs
a simulator can bind, so whatever calls a pod by its IP reaches that pod's simulator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import kubernetes

from e2e.harness import control_plane, waiting

GPU_RESOURCE = "nvidia.com/gpu"
TOPOLOGY_ANNOTATION = "gpu.kubeinfer.io/topology"
READY_TIMEOUT_SECONDS = 60.0


LOOPBACK_TAINT: Mapping[str, str] = {
    "key": "kubeinfer.io/e2e-loopback-pods",
    "value": "true",
    "effect": "NoSchedule",
}
"""Taint of a node with a loopback podCIDR, so only pods meant for it land there (any other
pod's EndpointSlice would be refused for its loopback address)."""


@dataclasses.dataclass(frozen=True)
class GpuNodeSpec:
    """One fake GPU node. Defaults describe an 8 x H100 80GB SXM server."""

    name: str
    gpus: int = 8
    product: str = "NVIDIA-H100-80GB-HBM3"
    gpu_memory_mib: int = 81559
    gpu_family: str = "hopper"
    cpu: str = "192"
    memory: str = "2015Gi"
    pods: int = 110
    ephemeral_storage: str = "3500Gi"
    topology: str | None = None  # opaque JSON for the gpu.kubeinfer.io/topology annotation
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    taints: Sequence[Mapping[str, str]] = ()
    pod_cidr: str | None = None  # spec.podCIDR(s): the range kwok takes pod IPs from


def build_node(spec: GpuNodeSpec) -> dict[str, Any]:
    """The Node manifest for ``spec``; kwok keeps the capacity given here and fills in the rest."""
    labels = {
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        # What GPU Feature Discovery labels a real node with.
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": spec.product,
        "nvidia.com/gpu.count": str(spec.gpus),
        "nvidia.com/gpu.memory": str(spec.gpu_memory_mib),
        "nvidia.com/gpu.family": spec.gpu_family,
        "nvidia.com/gpu.replicas": "1",
        "nvidia.com/gpu.sharing-strategy": "none",
        "nvidia.com/mig.capable": "false",
        **spec.labels,
    }
    annotations = {
        control_plane.KWOK_NODE_ANNOTATION: control_plane.KWOK_NODE_ANNOTATION_VALUE,
        "node.alpha.kubernetes.io/ttl": "0",
    }
    if spec.topology is not None:
        annotations[TOPOLOGY_ANNOTATION] = spec.topology
    resources = {
        "cpu": spec.cpu,
        "memory": spec.memory,
        "pods": str(spec.pods),
        "ephemeral-storage": spec.ephemeral_storage,
        GPU_RESOURCE: str(spec.gpus),
    }
    node_spec: dict[str, Any] = {}
    if spec.taints:
        node_spec["taints"] = [dict(t) for t in spec.taints]
    if spec.pod_cidr is not None:
        node_spec["podCIDR"] = spec.pod_cidr
        node_spec["podCIDRs"] = [spec.pod_cidr]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": spec.name, "labels": labels, "annotations": annotations},
        "spec": node_spec,
        "status": {
            "capacity": resources,
            "allocatable": dict(resources),
        },
    }


def create(api_client: Any, specs: Iterable[GpuNodeSpec], *, wait: bool = True) -> list[str]:
    """Create the nodes; by default wait until each is Ready and has its GPUs allocatable."""
    core: Any = kubernetes.client.CoreV1Api(api_client)  # manifests are plain dicts
    names = []
    for spec in specs:
        core.create_node(build_node(spec))
        names.append(spec.name)
    if wait:
        wait_ready(api_client, names)
    return names


def is_ready(node: Any) -> bool:
    """Ready=True and a non-zero ``nvidia.com/gpu`` allocatable."""
    conditions = node.status.conditions or []
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    gpus = (node.status.allocatable or {}).get(GPU_RESOURCE, "0")
    return ready and int(gpus) > 0


def wait_ready(
    api_client: Any, names: Sequence[str], *, timeout: float = READY_TIMEOUT_SECONDS
) -> None:
    """Wait until every named node is ready; ``TimeoutError`` names those that are not."""
    core: Any = kubernetes.client.CoreV1Api(api_client)
    pending = set(names)

    def all_ready() -> bool:
        pending.difference_update({n for n in pending if is_ready(core.read_node(n))})
        return not pending

    waiting.until(
        all_ready,
        what="GPU nodes to be Ready",
        timeout=timeout,
        on_timeout=lambda: str(sorted(pending)),
    )


def fleet(count: int, *, prefix: str = "gpu-node", **overrides: Any) -> list[GpuNodeSpec]:
    """``count`` identical nodes named ``<prefix>-0`` ... with ``GpuNodeSpec`` field overrides."""
    return [GpuNodeSpec(name=f"{prefix}-{i}", **overrides) for i in range(count)]


def open_ip_pool(api_client: Any, spec: GpuNodeSpec, *, namespace: str = "default") -> str:
    """Give a fresh ``pod_cidr`` node one pod and wait for its IP (returned), then delete it.

    kwok v0.7.0 creates a CIDR's address pool on first use with a load and a store that are not
    one atomic step (``PodController.ipPool``), so pods that start together on a new range can
    get two pools and the same IP. One pod first makes the pool; its address goes back to it
    when the pod is deleted.
    """
    core: Any = kubernetes.client.CoreV1Api(api_client)
    name = f"ip-pool-{spec.name}"[:63]
    core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "nodeName": spec.name,
                "tolerations": [{**t, "operator": "Equal"} for t in spec.taints],
                "containers": [{"name": "pause", "image": "registry.invalid/pause:3"}],
            },
        },
    )
    try:
        ip: str = waiting.first(
            lambda: core.read_namespaced_pod(name, namespace).status.pod_ip,
            what=f"the first pod IP on {spec.name}",
            timeout=READY_TIMEOUT_SECONDS,
        )
    finally:
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    return ip
