"""Scores of a GPU set on one node: the measures placement ranks by, each explained.

Owns the set-level measures over a :class:`~kubeinfer.planning.gpu.topology.NodeTopology`:

- ``bottleneck_gbps``: the slowest pair in the set. Collective operations (all-reduce rings and
  trees) run at the pace of their slowest edge, so this is the first objective.
- ``pair_score``: go-gpuallocator's sum of pair scores (PCIe points + 100 per NVLink), with
  NVSwitch links counted (``nvswitch_aware``) or not (the device plugin's own view).
- ``numa_span``: NUMA nodes the set touches; every extra one puts host traffic on the socket
  interconnect.
- ``nic_level``: the PCIe level of the closest NIC all GPUs of the set share (GPUDirect RDMA).
- ``future_value``: how well the GPUs left free can still serve multi-GPU requests: each free
  GPU contributes the bandwidth to its best free peer, so a GPU whose NVLink partner is gone
  contributes little and taking it costs the node least.

Must not do: I/O, clocks, or choose anything (``gpu_selection`` and ``placement`` choose).
"""

from __future__ import annotations

from collections.abc import Iterable

from kubeinfer.planning.gpu import topology


def bottleneck_gbps(topo: topology.NodeTopology, gpus: Iterable[int]) -> float | None:
    """Slowest pair bandwidth in the set; None for fewer than two GPUs."""
    members = tuple(gpus)
    if len(members) < 2:
        return None
    table = topo.bandwidth
    return min(table[a][b] for i, a in enumerate(members) for b in members[i + 1 :])


def pair_score(
    topo: topology.NodeTopology, gpus: Iterable[int], *, nvswitch_aware: bool = True
) -> int:
    """go-gpuallocator's set score: the sum of its pair scores over every pair in the set."""
    members = tuple(gpus)
    if nvswitch_aware:
        table = topo.allocator_score
        return sum(table[a][b] for i, a in enumerate(members) for b in members[i + 1 :])
    return sum(
        topology.allocator_pair_score(topo.link(a, b), nvswitch_aware=False)
        for i, a in enumerate(members)
        for b in members[i + 1 :]
    )


def numa_nodes(topo: topology.NodeTopology, gpus: Iterable[int]) -> tuple[int, ...]:
    """NUMA nodes the set touches (unknown affinity is left out)."""
    found = {topo.gpus[g].numa_node for g in gpus}
    return tuple(sorted(n for n in found if n is not None))


def numa_span(topo: topology.NodeTopology, gpus: Iterable[int]) -> int:
    """How many NUMA nodes the set touches (unknown counts as one more)."""
    return len({topo.gpus[g].numa_node for g in gpus})


def nic_level(topo: topology.NodeTopology, gpus: Iterable[int]) -> topology.PcieLevel | None:
    """Closest NIC every GPU of the set reaches, as the farthest of their levels to it."""
    members = tuple(gpus)
    nic_count = min((len(topo.gpus[g].nic_levels) for g in members), default=0)
    if nic_count == 0:
        return None
    return min(max(topo.gpus[g].nic_levels[nic] for g in members) for nic in range(nic_count))


def future_value(topo: topology.NodeTopology, free_mask: int) -> float:
    """Sum over free GPUs of the bandwidth to their best free peer (higher keeps more options)."""
    table = topo.bandwidth
    members = topology.indices_of(free_mask)
    total = 0.0
    for a in members:
        row = table[a]
        total += max((row[b] for b in members if b != a), default=0.0)
    return round(total, 2)


def removal_losses(topo: topology.NodeTopology, free_mask: int) -> dict[int, float]:
    """For each free GPU, how much ``future_value`` drops if it is taken.

    Equal to ``future_value(free) - future_value(free without g)`` but in O(n²): taking g
    removes its own term, and every GPU whose single best free peer was g falls back to its
    second best.
    """
    table = topo.bandwidth
    members = topology.indices_of(free_mask)
    loss = dict.fromkeys(members, 0.0)
    for a in members:
        row = table[a]
        peers = sorted(((row[b], b) for b in members if b != a), reverse=True)
        if not peers:
            continue
        best = peers[0][0]
        second = peers[1][0] if len(peers) > 1 else 0.0
        loss[a] += best
        if best > second:
            loss[peers[0][1]] += best - second
    return {g: round(v, 2) for g, v in loss.items()}
