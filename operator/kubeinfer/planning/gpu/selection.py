"""Choosing k GPUs on one node: bottleneck-threshold search over the node's bandwidth levels.

Owns :func:`select`. A node has few distinct pair bandwidths (an 8-GPU box has 1-4), so instead
of enumerating partitions of the free GPUs (what go-gpuallocator does: millions for 16 GPUs)
the search walks the levels fastest first and asks, at each, whether the free GPUs joined by
links at least that fast contain a k-clique. The first level that does is the best possible
bottleneck; only cliques at that level are enumerated (after k-core pruning), and among them
the objective picks, in order:

1. the highest go-gpuallocator pair score (its own measure, NVSwitch links counted),
2. the fewest NUMA nodes,
3. the closest NIC shared by the whole set (where NICs are known),
4. the most ``future_value`` left in the node's remaining free GPUs,
5. the lowest GPU indices (determinism).

A 1-GPU request has no links to optimise; it takes the GPU whose loss lowers the node's
``future_value`` least (an orphan whose NVLink partner is taken), then the fullest NUMA node.

Results are memoised per (topology, free mask, k, constraint); the topology caches its own
derived tables, so nodes sharing one topology object share the work.

Must not do: I/O, clocks, node choice (``placement`` ranks nodes).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from kubeinfer.planning.gpu import topology, topology_score


@dataclass(frozen=True)
class Selection:
    """The best k-GPU set on one node and how it was found."""

    gpus: tuple[int, ...]
    bottleneck_gbps: float | None
    """Slowest pair in the set; None for one GPU."""
    pair_score: int
    """go-gpuallocator's set score (NVSwitch links counted)."""
    numa_span: int
    nic_level: topology.PcieLevel | None
    future_value: float
    """``topology_score.future_value`` of the free GPUs left after taking the set."""
    sets_considered: int
    """Candidate sets scored."""
    levels_without_set: tuple[float, ...]
    """Faster bandwidth levels that had no k-set among the free GPUs."""
    ties: int
    """Sets equal on pair score and NUMA span, broken by NIC, future value and index."""


#: Branches holding more k-sets than this are ordered by gain and bounded.
_BOUND_ABOVE = 40


def _popcount(mask: int) -> int:
    return mask.bit_count()


def _k_core(adj: tuple[int, ...], candidates: int, k: int) -> int:
    """Drop vertices with fewer than k-1 neighbours among the candidates, to a fixed point."""
    changed = True
    while changed and candidates:
        changed = False
        mask = candidates
        while mask:
            low = mask & -mask
            vertex = low.bit_length() - 1
            mask ^= low
            if _popcount(adj[vertex] & candidates) < k - 1:
                candidates &= ~low
                changed = True
    return candidates


def _cliques(
    topo: topology.NodeTopology, adj: tuple[int, ...], candidates: int, k: int
) -> tuple[list[tuple[int, ...]], int, int]:
    """Best cliques of size k by (pair score, -NUMA span): (ties, their score, sets scored).

    Branch and bound: candidates are tried in order of their gain to the partial set, and a
    branch is cut when even the best gains plus the best pair score for every pair still to
    add cannot reach the best score found (ties are kept: the cut is strict).
    """
    score = topo.allocator_score
    numa_bits = topo.numa_bits
    top_pair = max((max(row) for row in score), default=0)
    best: list[tuple[int, ...]] = []
    best_key = (-1, 0)
    scored = 0

    def extend(members: tuple[int, ...], cand: int, partial: int, numas: int) -> None:
        nonlocal best_key, scored
        need = k - len(members)
        if need == 0:
            scored += 1
            key = (partial, -_popcount(numas))
            if key > best_key:
                best_key, best[:] = key, [tuple(sorted(members))]
            elif key == best_key:
                best.append(tuple(sorted(members)))
            return
        gains = [(sum(score[v][m] for m in members), v) for v in topology.indices_of(cand)]
        if math.comb(len(gains), need) > _BOUND_ABOVE:  # small branches: walk, do not bound
            gains.sort(reverse=True)
            bound = partial + sum(g for g, _ in gains[:need]) + top_pair * need * (need - 1) // 2
            if bound < best_key[0]:
                return
        for gain, vertex in gains:
            if _popcount(cand) < need:
                return
            rest = cand & ~(1 << vertex)
            numas_with = numas | numa_bits[vertex]
            extend((*members, vertex), rest & adj[vertex], partial + gain, numas_with)
            cand = rest

    extend((), candidates, 0, 0)
    return best, best_key[0], scored


def _tie_break(
    topo: topology.NodeTopology, free: int, sets: list[tuple[int, ...]]
) -> tuple[tuple[int, ...], topology.PcieLevel | None, float]:
    def key(members: tuple[int, ...]) -> tuple[int, float, tuple[int, ...]]:
        nic = topology_score.nic_level(topo, members)
        left = topology_score.future_value(topo, free & ~topology.mask_of(members))
        return (int(nic) if nic is not None else 0, -left, members)

    chosen = min(sets, key=key) if len(sets) > 1 else sets[0]
    left = topology_score.future_value(topo, free & ~topology.mask_of(chosen))
    return chosen, topology_score.nic_level(topo, chosen), left


def _select_one(topo: topology.NodeTopology, free: int) -> Selection:
    losses = topology_score.removal_losses(topo, free)
    numa_free = {node: _popcount(mask & free) for node, mask in topo.numa_masks.items()}

    def key(gpu: int) -> tuple[float, int, int]:
        return (losses[gpu], numa_free[topo.gpus[gpu].numa_node], gpu)

    members = topology.indices_of(free)
    chosen = min(members, key=key)
    return Selection(
        gpus=(chosen,),
        bottleneck_gbps=None,
        pair_score=0,
        numa_span=1,
        nic_level=topology_score.nic_level(topo, (chosen,)),
        future_value=topology_score.future_value(topo, free & ~(1 << chosen)),
        sets_considered=len(members),
        levels_without_set=(),
        ties=sum(1 for g in members if key(g)[:2] == key(chosen)[:2]) - 1,
    )


@functools.lru_cache(maxsize=1 << 16)
def select(
    topo: topology.NodeTopology, free: int, k: int, *, require_nvlink: bool = False
) -> Selection | None:
    """Best k-GPU set among the GPUs in bitmask ``free``; None when no set qualifies.

    ``require_nvlink`` admits only sets whose every pair is NVLink-connected.
    """
    if k < 1 or _popcount(free) < k:
        return None
    if k == 1:
        return _select_one(topo, free)
    skipped: list[float] = []
    nvlink = topo.nvlink_mask
    for level in topo.levels:
        adj = topo.adjacency[level]
        if require_nvlink:
            adj = tuple(row & nvlink[v] for v, row in enumerate(adj))
        candidates = _k_core(adj, free, k)
        if _popcount(candidates) < k:
            skipped.append(level)
            continue
        sets, score, scored = _cliques(topo, adj, candidates, k)
        if not sets:
            skipped.append(level)
            continue
        chosen, nic, left = _tie_break(topo, free, sets)
        return Selection(
            gpus=chosen,
            bottleneck_gbps=topology_score.bottleneck_gbps(topo, chosen),
            pair_score=score,
            numa_span=topology_score.numa_span(topo, chosen),
            nic_level=nic,
            future_value=left,
            sets_considered=scored,
            levels_without_set=tuple(skipped),
            ties=len(sets) - 1,
        )
    return None
