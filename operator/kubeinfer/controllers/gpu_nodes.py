"""What the store says about GPU nodes: published inventories and who holds which GPU.

Owns the reads that the GPUPool and InferenceService controllers share:

- :func:`inventory` — a Node's ``gpu.kubeinfer.io/inventory`` annotation parsed (memoised on the
  annotation text, so an unchanged node costs nothing and yields the same topology object);
- :func:`pool_nodes` — the Nodes a pool's selector picks (kubelet GPUs or an agent inventory);
- :func:`claims` and :func:`recorded` — the allocated ResourceClaims of driver
  ``gpu.kubeinfer.io`` and the GPU sets InferenceServices recorded in their status, as the
  shapes :mod:`kubeinfer.planning.gpu.holders` decides from, and :func:`held`, that decision
  over the store.

Must not: write anything, decide anything (who holds a GPU is ``planning.gpu.holders``'s).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from kubeinfer.api import base, kinds
from kubeinfer.api import gpu_pool as pool_api
from kubeinfer.api import node_inventory as inv
from kubeinfer.kube import store as kube_store
from kubeinfer.planning.gpu import holders, topology
from kubeinfer.planning.gpu import inventory as gpu_inventory
from kubeinfer.planning.labels import INFERENCE_SERVICE_LABEL, INVENTORY_ANNOTATION

GPU_RESOURCE = "nvidia.com/gpu"
Body = Mapping[str, Any]


@functools.lru_cache(maxsize=2048)
def _parse(text: str) -> tuple[inv.NodeInventory | None, str]:
    try:
        return inv.parse(text), ""
    except inv.InventoryError as err:
        return None, str(err)


@functools.lru_cache(maxsize=2048)
def _topology(text: str, node: str) -> topology.NodeTopology | None:
    parsed, _ = _parse(text)
    if parsed is None:
        return None
    try:
        return gpu_inventory.topology_of(parsed, name=node)
    except ValueError:
        return None


def inventory(node: Body) -> tuple[inv.NodeInventory | None, str]:
    """The node's parsed inventory, or None and why."""
    text = (node["metadata"].get("annotations") or {}).get(INVENTORY_ANNOTATION)
    if not text:
        return None, ""
    return _parse(text)


def topology_of(node: Body) -> topology.NodeTopology | None:
    """The node's topology from its inventory (one shared object per distinct annotation)."""
    text = (node["metadata"].get("annotations") or {}).get(INVENTORY_ANNOTATION)
    return _topology(text, node["metadata"]["name"]) if text else None


def kubelet_gpus(node: Body) -> int:
    """``nvidia.com/gpu`` allocatable (the device plugin's count)."""
    return int((node.get("status") or {}).get("allocatable", {}).get(GPU_RESOURCE, 0))


def pool_nodes(store: kube_store.Store, spec: pool_api.GPUPoolSpec) -> list[Body]:
    """Nodes of the pool: selected by its selector and carrying GPUs (kubelet or agent)."""
    return [
        n
        for n in store.all("Node")
        if (kubelet_gpus(n) > 0 or INVENTORY_ANNOTATION in (n["metadata"].get("annotations") or {}))
        and spec.node_selector.matches(n["metadata"].get("labels") or {})
    ]


def _holder(claim: Body) -> str:
    meta = claim["metadata"]
    owner = (meta.get("labels") or {}).get(INFERENCE_SERVICE_LABEL)
    return f"{meta['namespace']}/{owner or meta['name']}"


def claim_devices(claim: Body) -> dict[str, frozenset[int]]:
    """node -> GPU indices a ResourceClaim was allocated from kubeinfer's driver."""
    allocation = (claim.get("status") or {}).get("allocation") or {}
    out: dict[str, set[int]] = defaultdict(set)
    for result in (allocation.get("devices") or {}).get("results") or []:
        device = str(result.get("device", ""))
        if result.get("driver") == inv.DRIVER and device.startswith("gpu-"):
            out[str(result.get("pool"))].add(int(device[4:]))
    return {node: frozenset(gpus) for node, gpus in out.items()}


def claims(store: kube_store.Store) -> tuple[holders.Claim, ...]:
    """Every allocated ResourceClaim of kubeinfer's driver, with its holder."""
    found = ((claim, claim_devices(claim)) for claim in store.all("ResourceClaim"))
    return tuple(holders.Claim(_holder(claim), gpus) for claim, gpus in found if gpus)


def recorded(services: Iterable[Body]) -> tuple[holders.Recorded, ...]:
    """The GPU sets InferenceServices recorded: stable's ``status.placement``, and a blue-green
    version's still running until its scale-down time."""
    out = []
    for body in services:
        meta = body["metadata"]
        status = body.get("status") or {}
        retired = (status.get("rollout") or {}).get("retired") or {}
        gpus = tuple(
            (str(replica.get("node")), int(index))
            for replica in [*(status.get("placement") or []), *(retired.get("placement") or [])]
            for index in replica.get("gpus") or []
        )
        out.append(holders.Recorded(f"{meta['namespace']}/{meta['name']}", gpus))
    return tuple(out)


def held(store: kube_store.Store, *, excluding: str | None = None) -> holders.Held:
    """Who holds which GPU, over every namespace (:func:`kubeinfer.planning.gpu.holders.held`)."""
    return holders.held(
        claims=claims(store),
        recorded=recorded(store.all(kinds.INFERENCE_SERVICE.kind)),
        excluding=excluding,
    )


def requested_mib(service: Body) -> float | None:
    """The InferenceService's ``resources.gpuMemory`` in MiB, if it set one."""
    quantity = ((service.get("spec") or {}).get("resources") or {}).get("gpuMemory")
    if not quantity:
        return None
    try:
        return base.quantity_value(str(quantity)) / 2**20
    except ValueError:
        return None
