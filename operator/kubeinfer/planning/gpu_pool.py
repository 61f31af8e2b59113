"""Plan a GPUPool: aggregate its nodes into status and render the device plugin's sharing config.

Capacity comes from what the kubelet advertises (``nvidia.com/gpu`` allocatable) and allocation
from the pods bound to the pool's nodes; per-GPU inventory (topology, health) comes from the
node agents' published inventory. Pure: the controller gathers :class:`Observed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from kubeinfer.api import gpu_pool as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning import children
from kubeinfer.planning.conditions import Observation, with_ready

GATES = (ConditionType.DISCOVERED, ConditionType.HEALTHY)
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class NodeView:
    """One node as the controller observed it."""

    name: str
    allocatable_gpus: int
    allocated_gpus: int = 0
    product: str = ""
    memory_mib: int = 0
    inventory: tuple[api.GpuStatus, ...] | None = None
    """Per-GPU inventory from the node agent; None when the agent has published none."""
    inventory_time: str = ""


@dataclass(frozen=True)
class Observed:
    """The pool's nodes."""

    nodes: tuple[NodeView, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Plan:
    """Desired children and status."""

    children: tuple[children.Manifest, ...]
    observations: tuple[Observation, ...]
    status: dict[str, Any]


def build_sharing_config(owner: children.Owner, spec: api.GPUPoolSpec) -> children.Manifest | None:
    """Return the NVIDIA device plugin configuration (its ``version: v1`` format) for sharing.

    The device plugin reads the ``config.yaml`` key; exclusive mode needs no configuration.
    """
    sharing = spec.sharing
    config: dict[str, Any]
    if sharing.mode == "exclusive":
        return None
    if sharing.mode in ("timeSlicing", "mps"):
        config = {
            "version": "v1",
            "sharing": {
                sharing.mode: {
                    "renameByDefault": False,
                    "failRequestsGreaterThanOne": True,
                    "resources": [{"name": GPU_RESOURCE, "replicas": sharing.replicas_per_gpu}],
                }
            },
        }
    else:
        config = {"version": "v1", "flags": {"migStrategy": "single"}}
    return children.stamp_hash(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": children.metadata(owner, children.dns_name(owner.name, "device-plugin")),
            "data": {"config.yaml": yaml.safe_dump(config, sort_keys=True)},
        }
    )


def plan(owner: children.Owner, spec: api.GPUPoolSpec, observed: Observed) -> Plan:
    """Return the children and status of a GPUPool."""
    per_gpu = spec.sharing.replicas_per_gpu if spec.sharing.mode in ("timeSlicing", "mps") else 1
    nodes = observed.nodes
    capacity = sum(n.allocatable_gpus for n in nodes)
    allocated = sum(n.allocated_gpus for n in nodes)
    status_nodes = [
        {
            "name": n.name,
            "gpus": [g.model_dump(by_alias=True, exclude_none=True) for g in n.inventory or ()],
            "inventoryTime": n.inventory_time,
        }
        for n in sorted(nodes, key=lambda n: n.name)
    ]
    status = {
        "nodes": status_nodes,
        "nodeCount": len(nodes),
        "capacity": capacity,
        "allocated": allocated,
        "free": max(capacity - allocated, 0),
        "fragmentation": 0.0,
    }
    observations = (_discovered(nodes, per_gpu), _healthy(nodes))
    sharing = build_sharing_config(owner, spec)
    return Plan((sharing,) if sharing else (), with_ready(observations, GATES), status)


def _discovered(nodes: tuple[NodeView, ...], per_gpu: int) -> Observation:
    kind = ConditionType.DISCOVERED
    if not nodes:
        return Observation.false(kind, Reason.NO_NODES, "No node matches the pool's nodeSelector.")
    missing = sorted(n.name for n in nodes if n.inventory is None)
    if missing:
        return Observation.false(
            kind,
            Reason.NO_INVENTORY,
            f"{len(missing)} of {len(nodes)} nodes have no GPU inventory from the kubeinfer node "
            f"agent (first: {missing[0]}); capacity is taken from the kubelet alone.",
        )
    gpus = sum(len(n.inventory or ()) for n in nodes)
    return Observation.true(
        kind, Reason.AS_EXPECTED, f"{len(nodes)} nodes with {gpus} GPUs ({per_gpu} slots each)."
    )


def _healthy(nodes: tuple[NodeView, ...]) -> Observation:
    kind = ConditionType.HEALTHY
    if not nodes or any(n.inventory is None for n in nodes):
        return Observation.unknown(
            kind, Reason.NO_INVENTORY, "GPU health needs the node agents' inventory."
        )
    bad = [f"{n.name}/{g.index}" for n in nodes for g in n.inventory or () if g.health != "Healthy"]
    if bad:
        return Observation.false(
            kind,
            Reason.UNHEALTHY_GPUS,
            f"{len(bad)} GPUs excluded from placement: {', '.join(bad[:8])}.",
        )
    return Observation.true(kind, Reason.AS_EXPECTED, "Every GPU is healthy.")
