"""GPUPool handlers: observe the pool's nodes, their agents' inventories and who holds each GPU.

Reads come from the watch store (``controllers.gpu_nodes``); the plan is
:mod:`kubeinfer.planning.gpu_pool`. Who holds a GPU is :mod:`kubeinfer.planning.gpu.holders`'s
decision, the one placement reads too: an allocated ResourceClaim of driver ``gpu.kubeinfer.io``
or an InferenceService's recorded placement, in any namespace. GPUs that other pods take through
the device plugin are counted per node.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubeinfer.api import gpu_pool as api
from kubeinfer.api import kinds
from kubeinfer.controllers import context, gpu_nodes
from kubeinfer.controllers.reconcile import Controller
from kubeinfer.kube import store as kube_store
from kubeinfer.planning import children
from kubeinfer.planning import gpu_pool as planner
from kubeinfer.planning.labels import INFERENCE_SERVICE_LABEL

log = logging.getLogger(__name__)


async def observe(owner: children.Owner, spec: api.GPUPoolSpec) -> planner.Observed:
    """Gather the pool's nodes, inventories and GPU holders from the store."""
    return planner.Observed(nodes=node_views(context.current().store, spec), now=datetime.now(UTC))


def node_views(store: kube_store.Store, spec: api.GPUPoolSpec) -> tuple[planner.NodeView, ...]:
    """The pool's nodes as the planner sees them, with every GPU's holders in any namespace."""
    held = gpu_nodes.held(store)
    requests = {
        f"{s['metadata']['namespace']}/{s['metadata']['name']}": gpu_nodes.requested_mib(s)
        for s in store.all(kinds.INFERENCE_SERVICE.kind)
    }
    device_plugin = _device_plugin_gpus(store.all("Pod"))
    views = []
    for node in gpu_nodes.pool_nodes(store, spec):
        name = node["metadata"]["name"]
        parsed, error = gpu_nodes.inventory(node)
        if error:
            log.warning("Ignored malformed GPU inventory on node %s: %s", name, error)
        holders = held.get(name, {})
        views.append(
            planner.NodeView(
                name=name,
                allocatable_gpus=gpu_nodes.kubelet_gpus(node),
                inventory=parsed,
                inventory_error=error,
                holders=holders,
                requested_mib={
                    i: mib
                    for i, names in holders.items()
                    for mib in [max((requests.get(n) or 0) for n in names)]
                    if mib
                },
                unattributed=device_plugin.get(name, 0),
            )
        )
    return tuple(views)


def _device_plugin_gpus(pods: Any) -> Mapping[str, int]:
    """Per node: ``nvidia.com/gpu`` held by running pods that kubeinfer did not place."""
    out: dict[str, int] = {}
    for pod in pods:
        node = pod.get("spec", {}).get("nodeName")
        labels = pod.get("metadata", {}).get("labels") or {}
        if not node or INFERENCE_SERVICE_LABEL in labels:
            continue
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for container in pod.get("spec", {}).get("containers") or []:
            limits = (container.get("resources") or {}).get("limits") or {}
            out[node] = out.get(node, 0) + int(limits.get(gpu_nodes.GPU_RESOURCE, 0))
    return out


def plan(owner: children.Owner, spec: api.GPUPoolSpec, observed: planner.Observed) -> planner.Plan:
    """Plan the pool and publish its per-GPU OOM risk and memory as Prometheus series."""
    result = planner.plan(owner, spec, observed)
    rows = [
        (node.name, gpu.index, gpu.oom_risk, gpu.seconds_to_exhaustion, gpu.memory_used_mib)
        for node in result.status.nodes
        for gpu in node.gpus
    ]
    context.current().metrics.record_gpu_pool(owner.namespace, owner.name, rows)
    return result


CONTROLLER = Controller(kinds.GPU_POOL, observe, plan)
