"""GPUPool handlers: observe the pool's nodes and the GPUs bound pods hold.

Reads come from the watch store; the plan is :mod:`kubeinfer.planning.gpu_pool`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import ValidationError

from kubeinfer.api import gpu_pool as api
from kubeinfer.api import kinds
from kubeinfer.controllers import context
from kubeinfer.controllers.reconcile import Controller
from kubeinfer.planning import children
from kubeinfer.planning import gpu_pool as planner

INVENTORY_ANNOTATION = "gpu.kubeinfer.io/inventory"
"""Per-GPU inventory the node agent publishes on its Node (JSON list of GPU status objects)."""
INVENTORY_TIME_ANNOTATION = "gpu.kubeinfer.io/inventory-time"
log = logging.getLogger(__name__)


async def observe(owner: children.Owner, spec: api.GPUPoolSpec) -> planner.Observed:
    """Gather the pool's nodes and their GPU allocation from the store."""
    del owner
    store = context.current().store
    nodes = [
        n
        for n in store.all("Node")
        if _gpus(n) > 0 and spec.node_selector.matches(n["metadata"].get("labels") or {})
    ]
    allocated: dict[str, int] = {}
    for pod in store.all("Pod"):
        node = pod.get("spec", {}).get("nodeName")
        if node and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            allocated[node] = allocated.get(node, 0) + _pod_gpus(pod)
    return planner.Observed(
        nodes=tuple(_node_view(n, allocated.get(n["metadata"]["name"], 0)) for n in nodes)
    )


def _gpus(node: Any) -> int:
    return int((node.get("status") or {}).get("allocatable", {}).get(planner.GPU_RESOURCE, 0))


def _pod_gpus(pod: Any) -> int:
    total = 0
    for container in pod.get("spec", {}).get("containers") or []:
        limits = (container.get("resources") or {}).get("limits") or {}
        total += int(limits.get(planner.GPU_RESOURCE, 0))
    return total


def _node_view(node: Any, allocated: int) -> planner.NodeView:
    meta = node["metadata"]
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    inventory: tuple[api.GpuStatus, ...] | None = None
    raw = annotations.get(INVENTORY_ANNOTATION)
    if raw:
        try:
            inventory = tuple(api.GpuStatus.model_validate(g) for g in json.loads(raw))
        except (ValueError, ValidationError) as err:
            log.warning("Ignored malformed GPU inventory on node %s: %s", meta["name"], err)
    return planner.NodeView(
        name=meta["name"],
        allocatable_gpus=_gpus(node),
        allocated_gpus=allocated,
        product=labels.get("nvidia.com/gpu.product", ""),
        memory_mib=int(labels.get("nvidia.com/gpu.memory", "0") or 0),
        inventory=inventory,
        inventory_time=annotations.get(INVENTORY_TIME_ANNOTATION, ""),
    )


CONTROLLER = Controller(kinds.GPU_POOL, observe, planner.plan)
