"""Per-replica GPU placement of an InferenceService and how it is enforced.

Owns :func:`decide` (which node and GPU set each replica gets, from the pool's nodes as the
controller saw them) and the enforcement rendered into the model server's pod template (what
the decision reports, status, conditions and Events, is :mod:`placement_report`'s):

- **DRA** when every planned node publishes kubeinfer's ResourceSlice (driver
  ``gpu.kubeinfer.io``): a ResourceClaimTemplate whose one request lists each planned GPU set as
  a ``firstAvailable`` subrequest (a CEL selector naming the set's GPU UUIDs, ``count: k``), so
  the scheduler allocates each pod exactly one planned set; at most 8 subrequests exist
  (``FirstAvailableDeviceRequestMaxSize``), so from the 8th replica on the last subrequest admits
  any k GPUs among the remaining planned sets. The pod asks no ``nvidia.com/gpu``.
- **Node pinning** otherwise: required node affinity to the planned nodes plus the
  ``nvidia.com/gpu`` count; the device plugin then picks the GPUs on the node (the status says
  so rather than claiming the set).
- **Held** while there is no placement (no pool, no inventory, nothing fits): the pods carry a
  scheduling gate, so no replica runs off-plan.

Decisions are sticky: a replica keeps its recorded placement while that set is still
schedulable, free of other holders and allowed by the spec; only the rest are placed anew, by
:func:`kubeinfer.planning.gpu.placement.place`. Replicas planned: ``max(replicas.min,
replicas.desired, current pods, 1)``.

**Growth sets** (``status.growth``): one set per replica the autoscaler may add up to
``replicas.max``, placed the same way on free GPUs and enforced after the replicas' sets, so a
new pod takes the next one and scaling within the bounds leaves the pod template as it is. They
are kept while valid, planned anew only when the enforced sets change anyway or
``replicas.max`` does, and not held: another service may take one (this one then re-plans).

Must not: I/O, clocks, read cluster objects (the controller builds :class:`PoolNode`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from kubeinfer.api import inference_service as api
from kubeinfer.api import node_inventory as inv
from kubeinfer.api.conditions import Reason
from kubeinfer.planning import children
from kubeinfer.planning.gpu import placement, topology, topology_score
from kubeinfer.planning.labels import PLACEMENT_GATE

MAX_SUBREQUESTS = 8
REQUEST_NAME = "gpus"
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class PoolNode:
    """One node of the pool, as placement needs it."""

    name: str
    topology: topology.NodeTopology
    uuids: Mapping[int, str] = field(hash=False)
    """GPU index -> UUID."""
    schedulable: frozenset[int]
    """Healthy (or degraded), present, whole GPUs (the pool's verdict)."""
    taken: frozenset[int] = frozenset()
    """GPUs held or placed by anyone but this InferenceService."""
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    dra: bool = False
    """The node publishes kubeinfer's devices in a ResourceSlice."""
    oom: Mapping[int, tuple[str, float | None]] = field(default_factory=dict, hash=False)
    """GPU index -> (OOM risk level, seconds to exhaustion) from the pool's status."""


@dataclass(frozen=True)
class PoolState:
    """The pool as this InferenceService sees it."""

    exists: bool
    nodes: tuple[PoolNode, ...] = ()
    nodes_without_inventory: int = 0
    held: tuple[tuple[str, frozenset[int]], ...] = ()
    """(node, GPU indices) of each allocated ResourceClaim of this service's pods."""
    mig: bool = False
    """The pool shares GPUs as MIG slices (the device plugin allocates slices, not GPU sets)."""


@dataclass(frozen=True)
class Enforcement:
    """How the pod template pins replicas to their placements."""

    mode: Literal["dra", "node-pinning"]
    nodes: tuple[str, ...]
    gpu_sets: tuple[tuple[str, ...], ...]
    """GPU UUIDs per replica, in replica order (growth sets after the replicas')."""
    gpus: int


@dataclass(frozen=True)
class Outcome:
    """The decision for every planned replica."""

    wanted: int
    placements: tuple[api.ReplicaPlacement, ...]
    no_fit: placement.NoFit | None
    enforcement: Enforcement | None
    new: tuple[int, ...]
    """Replicas placed anew in this decision (the others kept their recorded placement)."""
    growth: tuple[api.ReplicaPlacement, ...] = ()
    """Sets for the replicas an autoscaler may add up to ``replicas.max``, in the order new pods
    take them (enforced after ``placements``; not held)."""


@dataclass(frozen=True)
class Growth:
    """The growth sets a decision remembers from the last one."""

    sets: tuple[api.ReplicaPlacement, ...] = ()
    replicas_max: int | None = None
    """The ``replicas.max`` they were planned for; None plans them anew."""

    @classmethod
    def of(cls, recorded: api.GrowthPlacement | None) -> Growth:
        """The growth recorded in ``status.growth``."""
        if recorded is None:
            return REPLAN
        return cls(tuple(recorded.placement), recorded.replicas_max)


REPLAN = Growth()
"""No growth remembered: plan the growth sets anew."""


def wanted_replicas(spec: api.InferenceServiceSpec, current: int) -> int:
    """How many replicas to place."""
    return max(spec.replicas.min, spec.replicas.desired or 0, current, 1)


def _request(spec: api.InferenceServiceSpec, replicas: int) -> placement.Request:
    return placement.Request(
        gpus=spec.resources.gpus,
        replicas=replicas,
        policy=spec.placement.topology,
        packing=spec.placement.packing,
        node_selector=dict(spec.placement.node_selector),
    )


def _still_valid(
    spec: api.InferenceServiceSpec, prior: api.ReplicaPlacement, node: PoolNode | None
) -> bool:
    gpus = frozenset(prior.gpus)
    if node is None or len(gpus) != spec.resources.gpus or len(prior.gpus) != len(gpus):
        return False
    if not gpus <= node.schedulable or gpus & node.taken:
        return False
    if any(node.labels.get(k) != v for k, v in spec.placement.node_selector.items()):
        return False
    topo = node.topology
    if spec.placement.topology == "nvlink-required":
        return all(topo.link(a, b).nvlinks > 0 for a in gpus for b in gpus if a < b)
    if spec.placement.topology == "same-numa":
        return topology_score.numa_span(topo, gpus) <= 1
    return True


def _explained(p: placement.Placement) -> api.ReplicaPlacement:
    bottleneck = p.bottleneck_gbps
    head = (
        f"bottleneck {bottleneck:g} GB/s, pair score {p.pair_score}"
        if bottleneck is not None
        else f"single GPU, future value left {p.explanation.future_value:g}"
    )
    return api.ReplicaPlacement(
        replica=p.replica,
        node=p.node,
        gpus=list(p.gpus),
        numa_nodes=list(p.numa_nodes),
        bottleneck_gbps=bottleneck or 0.0,
        explanation=f"{head}; {p.explanation.summary()}",
    )


def decide(
    spec: api.InferenceServiceSpec,
    pool: PoolState,
    *,
    previous: Sequence[api.ReplicaPlacement],
    current_pods: int,
    growth: Growth = REPLAN,
) -> Outcome:
    """Place every wanted replica, keeping valid recorded placements, and plan growth sets.

    A recorded placement beyond the wanted replicas (the autoscaler scaled down) and the
    remembered ``growth`` sets are spare: replicas placed anew take them first, in order, and
    the rest stay growth sets. New growth sets are only planned when the enforced sets change
    anyway or ``replicas.max`` changed, so that others' allocations do not churn the template.
    """
    wanted = wanted_replicas(spec, current_pods)
    if pool.mig:
        return _mig_outcome(spec, pool, wanted)
    by_name = {n.name: n for n in pool.nodes}
    used: dict[str, set[int]] = {}

    def usable(prior: api.ReplicaPlacement) -> bool:
        node = by_name.get(prior.node)
        if used.get(prior.node, set()) & set(prior.gpus) or not _still_valid(spec, prior, node):
            return False
        used.setdefault(prior.node, set()).update(prior.gpus)
        return True

    ordered = sorted(previous, key=lambda p: p.replica)
    kept = [p for p in ordered[:wanted] if usable(p)]
    spare = [p for p in (*ordered[wanted:], *growth.sets) if usable(p)]
    taken_ordinals = {p.replica for p in kept}
    free_ordinals = [i for i in range(wanted) if i not in taken_ordinals]
    reused = [
        p.model_copy(update={"replica": r}) for r, p in zip(free_ordinals, spare, strict=False)
    ]
    spare = spare[len(reused) :]
    free_ordinals = free_ordinals[len(reused) :]
    states = [
        placement.NodeState(
            name=n.name,
            topology=n.topology,
            free=n.schedulable - n.taken - frozenset(used.get(n.name, ())),
            labels=n.labels,
        )
        for n in pool.nodes
    ]
    result = placement.place(_request(spec, len(free_ordinals)), states)
    largest = max((len(n.schedulable) for n in pool.nodes), default=0)
    if result.no_fit is not None and largest < spec.resources.gpus:
        # even an empty node could not hold one replica: the request, not the load, is wrong
        message = (
            f"a replica needs {spec.resources.gpus} GPUs; the largest node of the pool has "
            f"{largest} schedulable"
        )
        result = placement.Plan(result.placements, placement.NoFit(0, Reason.NO_NODE_FITS, message))
    fresh = [
        _explained(dataclasses.replace(p, replica=free_ordinals[i]))
        for i, p in enumerate(result.placements)
    ]
    placements = tuple(sorted([*kept, *reused, *fresh], key=lambda p: p.replica))
    no_fit = result.no_fit
    if no_fit is not None:
        no_fit = dataclasses.replace(no_fit, replica=free_ordinals[len(fresh)])
    # re-plan growth only when the enforced sets change anyway, or the bound does
    changed = [_key(p) for p in (*ordered, *growth.sets)] != [
        _key(p) for p in (*placements, *spare)
    ]
    sets = _growth(
        spec,
        spare,
        replan=changed or growth.replicas_max != spec.replicas.max,
        states=_without(states, fresh),
        first=wanted,
    )
    return Outcome(
        wanted=wanted,
        placements=placements,
        no_fit=no_fit,
        enforcement=_enforcement(spec, [*placements, *sets], by_name),
        new=tuple(p.replica for p in (*reused, *fresh)),
        growth=sets,
    )


def _key(p: api.ReplicaPlacement) -> tuple[str, tuple[int, ...]]:
    return p.node, tuple(p.gpus)


def _without(
    states: Sequence[placement.NodeState], taken: Sequence[api.ReplicaPlacement]
) -> list[placement.NodeState]:
    gone: dict[str, set[int]] = {}
    for p in taken:
        gone.setdefault(p.node, set()).update(p.gpus)
    return [dataclasses.replace(n, free=n.free - frozenset(gone.get(n.name, ()))) for n in states]


def _growth(
    spec: api.InferenceServiceSpec,
    spare: Sequence[api.ReplicaPlacement],
    *,
    replan: bool,
    states: Sequence[placement.NodeState],
    first: int,
) -> tuple[api.ReplicaPlacement, ...]:
    """The growth sets: the ``spare`` ones, then, when re-planning, as many more as fit.

    ``states`` is the pool without the replicas' sets; ``first`` is the first growth ordinal.
    """
    room = max(spec.replicas.max - first, 0)
    sets = list(spare)
    if replan and len(sets) < room:
        more = placement.place(_request(spec, room - len(sets)), _without(states, sets))
        sets += [_explained(p) for p in more.placements]
    return tuple(p.model_copy(update={"replica": first + i}) for i, p in enumerate(sets[:room]))


def _mig_outcome(spec: api.InferenceServiceSpec, pool: PoolState, wanted: int) -> Outcome:
    """MIG slices have no GPU-set topology: pin to the pool's nodes with MIG GPUs."""
    nodes = tuple(sorted(n.name for n in pool.nodes if n.schedulable))
    if not nodes:
        message = "no node of the pool has a GPU with MIG devices"
        return Outcome(wanted, (), placement.NoFit(0, Reason.NO_NODE_FITS, message), None, ())
    enforcement = Enforcement("node-pinning", nodes, (), spec.resources.gpus)
    return Outcome(wanted, (), None, enforcement, ())


def _enforcement(
    spec: api.InferenceServiceSpec,
    placements: Sequence[api.ReplicaPlacement],
    nodes: Mapping[str, PoolNode],
) -> Enforcement | None:
    if not placements:
        return None
    names = tuple(sorted({p.node for p in placements}))
    dra = all(nodes[n].dra for n in names)
    return Enforcement(
        mode="dra" if dra else "node-pinning",
        nodes=names,
        gpu_sets=tuple(tuple(nodes[p.node].uuids[g] for g in p.gpus) for p in placements),
        gpus=spec.resources.gpus,
    )


def enforce(
    spec: api.InferenceServiceSpec,
    pool: PoolState | None,
    placements: Sequence[api.ReplicaPlacement],
) -> Enforcement | None:
    """The enforcement of ``placements`` as they stand, without deciding anything anew.

    For sets planned by an earlier decision (a candidate's, a retired version's): a set whose
    node or GPUs the pool no longer lists is left out.
    """
    nodes = {n.name: n for n in (pool.nodes if pool is not None else ())}
    known = [
        p for p in placements if p.node in nodes and all(g in nodes[p.node].uuids for g in p.gpus)
    ]
    return _enforcement(spec, known, nodes)


def _selector(uuids: Sequence[str]) -> dict[str, Any]:
    listed = ", ".join(json.dumps(u) for u in uuids)
    return {"cel": {"expression": f'device.attributes["{inv.DRIVER}"].uuid in [{listed}]'}}


def build_claim_template(
    owner: children.Owner, base_name: str, enforcement: Enforcement
) -> children.Manifest:
    """The ResourceClaimTemplate naming each planned GPU set (DRA mode).

    The sets are the replicas' then the growth sets (:attr:`Outcome.growth`), so scaling within
    ``replicas.max`` keeps the template. Its name carries a digest of the sets: templates are
    immutable, so a new decision makes a new template (and a rollout onto it); the old one is
    pruned.
    """
    sets = list(enforcement.gpu_sets)
    exact = sets if len(sets) <= MAX_SUBREQUESTS else sets[: MAX_SUBREQUESTS - 1]
    rest = [] if len(sets) <= MAX_SUBREQUESTS else sets[MAX_SUBREQUESTS - 1 :]
    subrequests = [
        {
            "name": f"set-{i}",
            "deviceClassName": inv.DEVICE_CLASS,
            "selectors": [_selector(s)],
            "allocationMode": "ExactCount",
            "count": enforcement.gpus,
        }
        for i, s in enumerate(exact)
    ]
    if rest:
        subrequests.append(
            {
                "name": "rest",
                "deviceClassName": inv.DEVICE_CLASS,
                "selectors": [_selector(sorted({u for s in rest for u in s}))],
                "allocationMode": "ExactCount",
                "count": enforcement.gpus,
            }
        )
    digest = children.content_hash(sets)[:10]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": children.metadata(owner, children.dns_name(base_name, "gpus", digest)),
        "spec": {
            "metadata": {"labels": {owner.label_key: owner.name}},
            "spec": {
                "devices": {"requests": [{"name": REQUEST_NAME, "firstAvailable": subrequests}]}
            },
        },
    }


def constrain_pod(
    pod_spec: children.Manifest,
    container: children.Manifest,
    enforcement: Enforcement,
    *,
    claim_template: str | None,
) -> None:
    """Pin the pod template to the planned nodes (and GPUs, with DRA); edits in place."""
    pod_spec["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        # the node's name itself (the hostname label may differ from it)
                        "matchFields": [
                            {
                                "key": "metadata.name",
                                "operator": "In",
                                "values": list(enforcement.nodes),
                            }
                        ]
                    }
                ]
            }
        }
    }
    if enforcement.mode != "dra" or claim_template is None:
        return
    pod_spec["resourceClaims"] = [
        {"name": REQUEST_NAME, "resourceClaimTemplateName": claim_template}
    ]
    resources = container["resources"]
    for key in ("requests", "limits"):
        resources[key].pop(GPU_RESOURCE, None)
    resources["claims"] = [{"name": REQUEST_NAME}]


def hold_pod(pod_spec: children.Manifest) -> None:
    """Keep the pods of a GPU service out of scheduling until it is placed; edits in place.

    Without it the scheduler would start replicas wherever a GPU count fits, and they would
    hold GPUs off-plan until a rollout replaced them.
    """
    pod_spec["schedulingGates"] = [{"name": PLACEMENT_GATE}]


def enforced(outcome: Outcome) -> tuple[api.ReplicaPlacement, ...]:
    """Every set ``outcome`` enforces, numbered in order: its replicas', then its growth sets."""
    return tuple(
        p.model_copy(update={"replica": i})
        for i, p in enumerate((*outcome.placements, *outcome.growth))
    )
