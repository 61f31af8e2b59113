"""Topology-aware placement: a node and a GPU set for every replica of a k-GPU request.

Owns :func:`place` (all replicas) and :func:`place_replica` (one decision), their frozen inputs
(:class:`Request`, :class:`NodeState`) and outputs (:class:`Placement` with an
:class:`Explanation`, or :class:`NoFit` with a specific reason).

Objectives, in the order they decide:

1. **Bottleneck bandwidth** of the set (``topology_score.bottleneck_gbps``): a ring all-reduce
   runs at its slowest edge, so a 4-GPU set with one PCIe SYS hop runs at SYS speed (NCCL's
   maintainers: a random 4-of-8 set on a DGX-1 reaches ~5 GB/s instead of 40-60 GB/s). NVSwitch
   boxes count as all-to-all NVLink; the device plugin scores them as PCIe.
2. **NUMA span**: fewer NUMA nodes keep host-to-device traffic off the socket interconnect.
3. **Packing** (``binpack`` fills the fullest node that fits, keeping whole nodes free for big
   requests; ``spread`` takes the emptiest, so replicas land on different nodes).
4. **Pair score**: the NVIDIA device plugin's own measure (go-gpuallocator best-effort), so
   kubeinfer is never worse on it among sets of equal bottleneck.
5. **Protection of future requests** (``topology_score.future_value``): a 1-GPU request takes
   the GPU whose loss hurts least (the orphan of a broken NVLink pair), not the first free one.
6. Node name, then GPU indices, so equal inputs always give equal output.

Within a node the set is chosen by ``gpu_selection`` (bottleneck, then pair score, NUMA span,
NIC, future value). Topology policies: ``nvlink-required`` admits only all-NVLink sets,
``nvlink-preferred`` ranks as above, ``same-numa`` admits only single-NUMA sets, ``any`` puts
packing ahead of topology when ranking nodes (the set on the chosen node is still the best).

Speed: no partition enumeration. Nodes are visited in order of an optimistic key (the best
bottleneck their topology could give, exact packing) and the walk stops when no remaining node
can beat the best found; per-node set searches are memoised by (topology, free mask, k).

Must not do: I/O, clocks, reading cluster objects (controllers build the inputs).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubeinfer.api import conditions, inference_service
from kubeinfer.planning.gpu import selection as gpu_selection
from kubeinfer.planning.gpu import topology, topology_score


@dataclass(frozen=True)
class Request:
    """What one InferenceService asks for."""

    gpus: int
    """GPUs per replica (k)."""
    replicas: int = 1
    policy: inference_service.TopologyPolicy = "nvlink-preferred"
    packing: inference_service.Packing = "binpack"
    node_selector: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Labels a node must carry."""


@dataclass(frozen=True)
class NodeState:
    """One node as placement sees it."""

    name: str
    topology: topology.NodeTopology
    free: frozenset[int]
    """GPUs neither allocated nor in MIG mode."""
    unhealthy: frozenset[int] = frozenset()
    """GPUs the health checks took out (never chosen even when free)."""
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)

    @functools.cached_property
    def usable_mask(self) -> int:
        """Bitmask of GPUs placement may take."""
        return topology.mask_of(self.free - self.unhealthy)


@dataclass(frozen=True)
class Alternative:
    """A node whose best set lost, and the objective it lost on."""

    node: str
    gpus: tuple[int, ...]
    bottleneck_gbps: float | None
    numa_span: int
    pair_score: int
    lost_on: str


@dataclass(frozen=True)
class Explanation:
    """Why this node and set: scores, search effort and the runners-up."""

    policy: str
    packing: str
    objective: tuple[str, ...]
    """Names of the ranking keys in order."""
    nodes_total: int
    nodes_eligible: int
    """Nodes past the label selector with enough usable GPUs."""
    nodes_searched: int
    """Nodes whose set search ran (the rest were pruned by their optimistic key)."""
    sets_considered: int
    """Candidate sets scored on the chosen node."""
    levels_without_set: tuple[float, ...]
    """Faster bandwidth levels on the chosen node that had no k-set."""
    ties_in_node: int
    nic_level: str | None
    future_value: float
    alternatives: tuple[Alternative, ...]

    def summary(self) -> str:
        """One line for ``status.placement[].explanation``."""
        text = (
            f"{self.policy}/{self.packing}: searched {self.nodes_searched} of "
            f"{self.nodes_eligible} eligible nodes; {self.sets_considered} sets scored"
        )
        if self.levels_without_set:
            faster = ", ".join(f"{lv:g}" for lv in self.levels_without_set)
            text += f"; no set at {faster} GB/s"
        if self.alternatives:
            alt = self.alternatives[0]
            text += f"; runner-up {alt.node} {list(alt.gpus)} lost on {alt.lost_on}"
        return text


@dataclass(frozen=True)
class Placement:
    """Where one replica goes."""

    replica: int
    node: str
    gpus: tuple[int, ...]
    numa_nodes: tuple[int, ...]
    bottleneck_gbps: float | None
    """Slowest link in the set (None for one GPU)."""
    pair_score: int
    """go-gpuallocator's set score (NVSwitch links counted)."""
    explanation: Explanation


@dataclass(frozen=True)
class NoFit:
    """Why a replica could not be placed."""

    replica: int
    reason: conditions.Reason
    message: str
    rejected: Mapping[str, int] = field(default_factory=dict, hash=False)
    """Why each node was rejected → how many nodes."""


@dataclass(frozen=True)
class Plan:
    """Every replica's placement, or the first replica that did not fit."""

    placements: tuple[Placement, ...]
    no_fit: NoFit | None = None


_OBJECTIVES: Mapping[bool, tuple[str, ...]] = {
    False: ("bottleneck", "numa span", "packing", "pair score", "future value", "name"),
    True: ("packing", "bottleneck", "numa span", "pair score", "future value", "name"),
}

_Key = tuple[float, ...]


def _packing_key(request: Request, usable: int) -> float:
    left = usable.bit_count() - request.gpus
    return float(-left if request.packing == "binpack" else left)


def _rank(request: Request, parts: Mapping[str, float]) -> _Key:
    order = _OBJECTIVES[request.policy == "any"][:-1]
    return tuple(parts[name] for name in order)


def _parts(request: Request, usable: int, sel: gpu_selection.Selection) -> dict[str, float]:
    return {
        "bottleneck": sel.bottleneck_gbps if sel.bottleneck_gbps is not None else math.inf,
        "numa span": -float(sel.numa_span),
        "packing": _packing_key(request, usable),
        "pair score": float(sel.pair_score),
        "future value": sel.future_value,
    }


@functools.lru_cache(maxsize=4096)
def _best_possible(topo: topology.NodeTopology, k: int, require_nvlink: bool) -> float:
    """Upper bound on a node's bottleneck for k GPUs: the best with every GPU free."""
    if k == 1:
        return math.inf
    best = gpu_selection.select(topo, (1 << len(topo.gpus)) - 1, k, require_nvlink=require_nvlink)
    return -math.inf if best is None or best.bottleneck_gbps is None else best.bottleneck_gbps


def _optimistic(request: Request, node: NodeState) -> _Key:
    parts = {
        "bottleneck": _best_possible(
            node.topology, request.gpus, request.policy == "nvlink-required"
        ),
        "numa span": -1.0,
        "packing": _packing_key(request, node.usable_mask),
        "pair score": math.inf,
        "future value": math.inf,
    }
    return _rank(request, parts)


def _search_node(request: Request, node: NodeState) -> gpu_selection.Selection | None:
    usable = node.usable_mask
    nvlink = request.policy == "nvlink-required"
    if request.policy != "same-numa":
        return gpu_selection.select(node.topology, usable, request.gpus, require_nvlink=nvlink)
    best: gpu_selection.Selection | None = None
    for numa_mask in node.topology.numa_masks.values():
        sel = gpu_selection.select(node.topology, usable & numa_mask, request.gpus)
        if sel is not None and (best is None or _within_key(sel) > _within_key(best)):
            best = sel
    return best


def _within_key(sel: gpu_selection.Selection) -> tuple[float, int, int, float, tuple[int, ...]]:
    bottleneck = sel.bottleneck_gbps if sel.bottleneck_gbps is not None else math.inf
    return (
        bottleneck,
        sel.pair_score,
        -sel.numa_span,
        sel.future_value,
        tuple(-g for g in sel.gpus),
    )


def _rejection(request: Request, node: NodeState) -> str | None:
    if any(node.labels.get(key) != value for key, value in request.node_selector.items()):
        return "label selector does not match"
    if node.usable_mask.bit_count() < request.gpus:
        return f"fewer than {request.gpus} free healthy GPUs"
    return None


_POLICY_MISS = {
    "nvlink-required": "no NVLink-connected set among free GPUs",
    "same-numa": "no set within one NUMA node among free GPUs",
}


def _no_fit(replica: int, request: Request, rejected: Mapping[str, int], total: int) -> NoFit:
    counts = dict(sorted(rejected.items()))
    detail = "; ".join(f"{n} nodes: {why}" for why, n in counts.items()) or "no nodes in the pool"
    if request.gpus < 1:
        return NoFit(replica, conditions.Reason.NO_NODE_FITS, "a replica must ask for >= 1 GPU")
    policy_miss = _POLICY_MISS.get(request.policy)
    if policy_miss is not None and counts.get(policy_miss):
        reason = conditions.Reason.TOPOLOGY_UNSATISFIABLE
    elif total and counts.get(f"fewer than {request.gpus} free healthy GPUs") == total:
        reason = conditions.Reason.INSUFFICIENT_GPUS
    else:
        reason = conditions.Reason.NO_NODE_FITS
    message = f"replica {replica}: no node fits {request.gpus} GPU(s) ({request.policy}): {detail}"
    return NoFit(replica, reason, message, counts)


def _lost_on(request: Request, winner: _Key, other: _Key) -> str:
    names = _OBJECTIVES[request.policy == "any"]
    for name, a, b in zip(names, winner, other, strict=False):
        if a != b:
            return name
    return names[-1]


def place_replica(
    request: Request, nodes: tuple[NodeState, ...] | list[NodeState], *, replica: int = 0
) -> Placement | NoFit:
    """Choose the node and GPU set for one replica."""
    if request.gpus < 1:
        return _no_fit(replica, request, {}, len(nodes))
    rejected: dict[str, int] = {}
    eligible: list[tuple[_Key, str, NodeState]] = []
    for node in nodes:
        why = _rejection(request, node)
        if why is None:
            eligible.append((_optimistic(request, node), node.name, node))
        else:
            rejected[why] = rejected.get(why, 0) + 1
    eligible.sort(key=lambda item: (tuple(-v for v in item[0]), item[1]))

    best: tuple[_Key, str, NodeState, gpu_selection.Selection] | None = None
    runners: list[tuple[_Key, str, gpu_selection.Selection]] = []
    searched = 0
    pruned: list[tuple[_Key, str, NodeState]] = []
    for position, (optimistic, name, node) in enumerate(eligible):
        if best is not None and optimistic < best[0]:
            pruned = eligible[position : position + 3]
            break  # sorted by optimistic key: no later node can beat the best
        searched += 1
        sel = _search_node(request, node)
        if sel is None:
            why = _POLICY_MISS.get(request.policy, "no qualifying set")
            rejected[why] = rejected.get(why, 0) + 1
            continue
        key = _rank(request, _parts(request, node.usable_mask, sel))
        if best is None or key > best[0] or (key == best[0] and name < best[1]):
            if best is not None:
                runners.append((best[0], best[1], best[3]))
            best = (key, name, node, sel)
        else:
            runners.append((key, name, sel))
    if best is None:
        return _no_fit(replica, request, rejected, len(nodes))

    key, name, node, sel = best
    runners.sort(key=lambda r: (tuple(-v for v in r[0]), r[1]))
    alternatives = tuple(
        Alternative(
            node=r_name,
            gpus=r_sel.gpus,
            bottleneck_gbps=r_sel.bottleneck_gbps,
            numa_span=r_sel.numa_span,
            pair_score=r_sel.pair_score,
            lost_on=_lost_on(request, key, r_key) if r_key != key else "name",
        )
        for r_key, r_name, r_sel in runners[:3]
    ) + tuple(
        Alternative(
            node=p_name,
            gpus=(),
            bottleneck_gbps=None,
            numa_span=0,
            pair_score=0,
            lost_on=f"{_lost_on(request, key, p_key)} (pruned: best possible was worse)",
        )
        for p_key, p_name, _ in pruned[: max(0, 3 - len(runners))]
    )
    explanation = Explanation(
        policy=request.policy,
        packing=request.packing,
        objective=_OBJECTIVES[request.policy == "any"],
        nodes_total=len(nodes),
        nodes_eligible=len(eligible),
        nodes_searched=searched,
        sets_considered=sel.sets_considered,
        levels_without_set=sel.levels_without_set,
        ties_in_node=sel.ties,
        nic_level=sel.nic_level.name if sel.nic_level is not None else None,
        future_value=sel.future_value,
        alternatives=alternatives,
    )
    return Placement(
        replica=replica,
        node=name,
        gpus=sel.gpus,
        numa_nodes=topology_score.numa_nodes(node.topology, sel.gpus),
        bottleneck_gbps=sel.bottleneck_gbps,
        pair_score=sel.pair_score,
        explanation=explanation,
    )


def place(request: Request, nodes: tuple[NodeState, ...] | list[NodeState]) -> Plan:
    """Place every replica in turn, each seeing the GPUs the previous ones took."""
    state = list(nodes)
    placements: list[Placement] = []
    for replica in range(request.replicas):
        outcome = place_replica(request, state, replica=replica)
        if isinstance(outcome, NoFit):
            return Plan(tuple(placements), outcome)
        placements.append(outcome)
        state = [
            dataclasses.replace(n, free=n.free - frozenset(outcome.gpus))
            if n.name == outcome.node
            else n
            for n in state
        ]
    return Plan(tuple(placements))
