"""Plan a GPUPool: aggregate its nodes into status and render the device plugin's sharing config.

Per node and GPU the status carries identity, memory (total and in use), NUMA node, NVLink
peers, the health verdict (the agent's raw counters judged here against the pool's
``healthPolicy``), who holds it, whether placement may choose it, and the OOM risk of its
memory trend against the holder's budget. Pool totals count *slots*: schedulable GPUs times
``replicasPerGpu`` (timeSlicing, mps), or MIG devices (mig). ``fragmentation`` is documented in
:mod:`kubeinfer.planning.gpu.fragmentation`.

A node whose agent has published nothing usable (missing, malformed, older than
``healthPolicy.inventoryMaxAge``) counts with the kubelet's ``nvidia.com/gpu`` allocatable
alone, and ``Discovered`` says which node and why.

Pure: the controller gathers :class:`Observed` (with ``now``) from the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import yaml

from kubeinfer.api import base
from kubeinfer.api import gpu_pool as api
from kubeinfer.api import node_inventory as inv
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning import children, plans
from kubeinfer.planning.conditions import Observation, with_ready
from kubeinfer.planning.gpu import fragmentation, oom, topology
from kubeinfer.planning.gpu import health as gpu_health
from kubeinfer.planning.gpu import inventory as gpu_inventory

GATES = (ConditionType.DISCOVERED, ConditionType.HEALTHY)
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class NodeView:
    """One node as the controller observed it."""

    name: str
    allocatable_gpus: int
    inventory: inv.NodeInventory | None = None
    """The agent's published inventory; None when absent or unparsable."""
    inventory_error: str = ""
    """Why the annotation could not be parsed."""
    holders: Mapping[int, tuple[str, ...]] = field(default_factory=dict, hash=False)
    """GPU index -> namespace/name of InferenceServices holding or placed on it."""
    requested_mib: Mapping[int, float] = field(default_factory=dict, hash=False)
    """GPU index -> the holder's ``resources.gpuMemory`` in MiB, where it set one."""
    unattributed: int = 0
    """GPUs held by bound pods through the device plugin (indices unknown)."""


@dataclass(frozen=True)
class Observed:
    """The pool's nodes, at ``now``."""

    nodes: tuple[NodeView, ...] = field(default_factory=tuple)
    now: datetime | None = None


Plan = plans.Plan[api.GPUPoolStatus]
"""Desired children (the device plugin's sharing config) and status."""


@dataclass(frozen=True)
class NodeVerdict:
    """One node after judgment: usable inventory or the problem, GPU statuses, slot counts."""

    name: str
    problem: str
    gpus: tuple[api.GpuStatus, ...]
    capacity: int
    allocated: int
    free_mask: int
    topology: topology.NodeTopology | None


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


def slots_per_gpu(spec: api.GPUPoolSpec) -> int:
    """Pods one whole GPU takes under the sharing mode."""
    return spec.sharing.replicas_per_gpu if spec.sharing.mode in ("timeSlicing", "mps") else 1


def _age_problem(node: NodeView, spec: api.GPUPoolSpec, now: datetime | None) -> str:
    inventory = node.inventory
    if inventory is None:
        return node.inventory_error or "no inventory published by the kubeinfer node agent"
    if now is None:
        return ""
    try:
        stamp = datetime.fromisoformat(inventory.time.replace("Z", "+00:00"))
    except ValueError:
        return f"inventory time {inventory.time!r} is not RFC 3339"
    age = (now - stamp).total_seconds()
    limit = base.duration_seconds(spec.health_policy.inventory_max_age)
    if age > limit:
        return f"inventory is {age:.0f}s old (healthPolicy.inventoryMaxAge {limit:.0f}s)"
    return ""


def _gpu_status(
    gpu: inv.Gpu,
    verdict: gpu_health.Verdict,
    *,
    node: NodeView,
    topo: topology.NodeTopology,
    spec: api.GPUPoolSpec,
) -> api.GpuStatus:
    holders = sorted(set(node.holders.get(gpu.index, ())))
    schedulable = verdict.health in ("Healthy", "Degraded") and not gpu.health.lost
    if spec.sharing.mode == "mig":
        schedulable = schedulable and bool(gpu.mig_devices)
    else:
        schedulable = schedulable and not gpu.mig
    risk: api.RiskLevel = "None"
    seconds: float | None = None
    if spec.oom_prediction.enabled and gpu.memory is not None and gpu.memory_mib:
        budget = oom.budget_mib(
            card_mib=gpu.memory_mib,
            requested_mib=node.requested_mib.get(gpu.index),
            mig_slice_mib=min((m.memory_mib for m in gpu.mig_devices), default=None),
            sharers=slots_per_gpu(spec),
        )
        prediction = oom.predict(
            gpu.memory,
            budget=budget,
            threshold=spec.oom_prediction.threshold,
            window_s=base.duration_seconds(spec.oom_prediction.window),
        )
        risk, seconds = prediction.risk, prediction.seconds_to_exhaustion
    return api.GpuStatus(
        index=gpu.index,
        uuid=gpu.uuid,
        model=gpu.name,
        memory_mib=gpu.memory_mib,
        memory_used_mib=gpu.memory.used_mib if gpu.memory else None,
        mig=gpu.mig,
        numa_node=gpu.numa_node,
        pci_bus_id=gpu.pci_bus_id,
        nvlink_peers=gpu_inventory.nvlink_peers(topo, gpu.index),
        health=verdict.health,
        health_reason=f"{verdict.reason}: {verdict.message}" if verdict.reason else "",
        allocated_to=holders,
        schedulable=schedulable,
        oom_risk=risk,
        seconds_to_exhaustion=seconds,
    )


def judge_node(node: NodeView, spec: api.GPUPoolSpec, now: datetime | None) -> NodeVerdict:
    """Judge one node's GPUs against the pool's policies."""
    per_gpu = slots_per_gpu(spec)
    problem = _age_problem(node, spec, now)
    inventory = node.inventory
    topo: topology.NodeTopology | None = None
    if not problem and inventory is not None:
        try:
            topo = gpu_inventory.topology_of(inventory, name=node.name)
        except ValueError as err:
            problem = f"inventory topology is malformed: {err}"
    if problem or inventory is None or topo is None:
        capacity = node.allocatable_gpus * per_gpu
        allocated = min(node.unattributed, capacity)
        return NodeVerdict(node.name, problem, (), capacity, allocated, 0, None)
    verdicts = gpu_inventory.verdicts(inventory, spec.health_policy)
    gpus = tuple(
        _gpu_status(g, verdicts[g.index], node=node, topo=topo, spec=spec)
        for g in sorted(inventory.gpus, key=lambda g: g.index)
    )
    by_index = {g.index: g for g in inventory.gpus}
    if spec.sharing.mode == "mig":
        slots = {g.index: len(by_index[g.index].mig_devices) for g in gpus if g.schedulable}
    else:
        slots = {g.index: per_gpu for g in gpus if g.schedulable}
    held = sum(slots[g.index] for g in gpus if g.schedulable and g.allocated_to)
    capacity = sum(slots.values())
    allocated = min(capacity, held + node.unattributed)
    free_mask = topology.mask_of([g.index for g in gpus if g.schedulable and not g.allocated_to])
    if spec.sharing.mode == "mig":
        free_mask = 0  # MIG slices are not NVLink sets: no fragmentation by topology
    return NodeVerdict(node.name, "", gpus, capacity, allocated, free_mask, topo)


def plan(owner: children.Owner, spec: api.GPUPoolSpec, observed: Observed) -> Plan:
    """Return the children and status of a GPUPool."""
    verdicts = [judge_node(n, spec, observed.now) for n in sorted(observed.nodes, key=_name)]
    capacity = sum(v.capacity for v in verdicts)
    allocated = sum(v.allocated for v in verdicts)
    figure = fragmentation.fragmentation(
        (v.topology, v.free_mask) for v in verdicts if v.topology is not None
    )
    by_name = {n.name: n for n in observed.nodes}
    status = api.GPUPoolStatus(
        nodes=[
            api.NodeStatus(
                name=v.name,
                gpus=list(v.gpus),
                inventory_time=_time(by_name[v.name]),
                inventory_problem=v.problem,
                allocated_unattributed=by_name[v.name].unattributed,
            )
            for v in verdicts
        ],
        node_count=len(verdicts),
        capacity=capacity,
        allocated=allocated,
        free=max(capacity - allocated, 0),
        fragmentation=figure,
        oom_at_risk=sum(1 for v in verdicts for g in v.gpus if g.oom_risk in oom.ALARM_LEVELS),
    )
    observations = (_discovered(verdicts, spec), _healthy(verdicts))
    sharing = build_sharing_config(owner, spec)
    return Plan((sharing,) if sharing else (), with_ready(observations, GATES), status)


def _name(node: NodeView) -> str:
    return node.name


def _time(node: NodeView) -> str:
    return node.inventory.time if node.inventory is not None else ""


def _discovered(verdicts: list[NodeVerdict], spec: api.GPUPoolSpec) -> Observation:
    kind = ConditionType.DISCOVERED
    if not verdicts:
        return Observation.false(kind, Reason.NO_NODES, "No node matches the pool's nodeSelector.")
    bad = [v for v in verdicts if v.problem]
    if bad:
        stale = any(v.problem.startswith("inventory is ") for v in bad)
        return Observation.false(
            kind,
            Reason.INVENTORY_STALE if stale else Reason.NO_INVENTORY,
            f"{len(bad)} of {len(verdicts)} nodes have no usable GPU inventory (first: "
            f"{bad[0].name}: {bad[0].problem}); their capacity is taken from the kubelet alone.",
        )
    gpus = sum(len(v.gpus) for v in verdicts)
    if spec.sharing.mode == "mig" and not any(g.mig for v in verdicts for g in v.gpus):
        return Observation.false(
            kind,
            Reason.UNSUPPORTED_SHARING,
            f"sharing.mode is mig but none of the pool's {gpus} GPUs has MIG enabled.",
        )
    slots = sum(v.capacity for v in verdicts)
    return Observation.true(
        kind, Reason.AS_EXPECTED, f"{len(verdicts)} nodes with {gpus} GPUs ({slots} slots)."
    )


def _healthy(verdicts: list[NodeVerdict]) -> Observation:
    kind = ConditionType.HEALTHY
    if not verdicts or any(v.problem for v in verdicts):
        return Observation.unknown(
            kind, Reason.NO_INVENTORY, "GPU health needs every node agent's current inventory."
        )
    excluded = [_named(v, g) for v in verdicts for g in v.gpus if g.health in ("Unhealthy", "Lost")]
    degraded = [_named(v, g) for v in verdicts for g in v.gpus if g.health == "Degraded"]
    if excluded or degraded:
        parts = []
        if excluded:
            parts.append(f"{len(excluded)} GPUs excluded from placement: {', '.join(excluded[:8])}")
        if degraded:
            parts.append(f"{len(degraded)} GPUs degraded, still placed: {', '.join(degraded[:8])}")
        return Observation.false(kind, Reason.UNHEALTHY_GPUS, "; ".join(parts) + ".")
    return Observation.true(kind, Reason.AS_EXPECTED, "Every GPU is healthy.")


def _named(verdict: NodeVerdict, gpu: api.GpuStatus) -> str:
    return f"{verdict.name}/{gpu.index} ({gpu.health_reason.split(':')[0]})"
