"""The InferenceService controller's view of its GPU pool, as replica placement needs it.

Owns :func:`pool_state` (the pool's usable nodes: topology from each Node's agent inventory,
schedulable GPUs from the pool's status, the GPUs others hold (``planning.gpu.holders``, every
namespace), and whether the node publishes kubeinfer's DRA
ResourceSlice) and :func:`previous_placement` (the service's own ``status.placement``).

Must not: decide placements (``planning.gpu.replica_placement`` does), write anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from kubeinfer.api import inference_service as api
from kubeinfer.api import node_inventory as inv
from kubeinfer.controllers import gpu_nodes
from kubeinfer.kube import store as kube_store
from kubeinfer.planning import children
from kubeinfer.planning.gpu import replica_placement
from kubeinfer.planning.labels import INFERENCE_SERVICE_LABEL

Body = Mapping[str, Any]


def _dra_nodes(store: kube_store.Store) -> set[str]:
    return {
        str(s["spec"].get("nodeName"))
        for s in store.all("ResourceSlice")
        if s["spec"].get("driver") == inv.DRIVER and s["spec"].get("devices")
    }


def pool_state(
    store: kube_store.Store, owner: children.Owner, pool: Body | None
) -> replica_placement.PoolState:
    """The pool's nodes with usable inventory, minus what others hold."""
    if pool is None:
        return replica_placement.PoolState(exists=False)
    taken = gpu_nodes.held(store, excluding=f"{owner.namespace}/{owner.name}")
    dra = _dra_nodes(store)
    nodes: list[replica_placement.PoolNode] = []
    missing = 0
    for entry in (pool.get("status") or {}).get("nodes") or []:
        name = str(entry.get("name"))
        body = store.get("Node", "", name)
        topo = gpu_nodes.topology_of(body) if body is not None else None
        gpus = entry.get("gpus") or []
        if topo is None or entry.get("inventoryProblem") or not gpus:
            missing += 1
            continue
        nodes.append(
            replica_placement.PoolNode(
                name=name,
                topology=topo,
                uuids={int(g["index"]): str(g.get("uuid", "")) for g in gpus},
                schedulable=frozenset(int(g["index"]) for g in gpus if g.get("schedulable", True)),
                taken=frozenset(taken.get(name, {})),
                labels=dict(body["metadata"].get("labels") or {}) if body is not None else {},
                dra=name in dra,
                oom={
                    int(g["index"]): (str(g.get("oomRisk", "None")), g.get("secondsToExhaustion"))
                    for g in gpus
                    if "memoryUsedMib" in g
                },
            )
        )
    return replica_placement.PoolState(
        exists=True,
        nodes=tuple(nodes),
        nodes_without_inventory=missing,
        held=_held(store, owner),
        mig=((pool.get("spec") or {}).get("sharing") or {}).get("mode") == "mig",
    )


def _held(store: kube_store.Store, owner: children.Owner) -> tuple[tuple[str, frozenset[int]], ...]:
    """(node, GPUs) of each allocated claim generated for this service's pods."""
    out = []
    for claim in store.all("ResourceClaim"):
        meta = claim["metadata"]
        labels = meta.get("labels") or {}
        if (
            meta.get("namespace") != owner.namespace
            or labels.get(INFERENCE_SERVICE_LABEL) != owner.name
        ):
            continue
        sets = gpu_nodes.claim_devices(claim)
        out.extend(sorted(sets.items()))
    return tuple(sorted(out, key=lambda item: (item[0], sorted(item[1]))))


def previous_placement(body: Body | None) -> tuple[api.ReplicaPlacement, ...]:
    """The service's recorded ``status.placement`` (empty when absent or unreadable)."""
    raw = ((body or {}).get("status") or {}).get("placement") or []
    try:
        return tuple(api.ReplicaPlacement.model_validate(p) for p in raw)
    except ValidationError:
        return ()
