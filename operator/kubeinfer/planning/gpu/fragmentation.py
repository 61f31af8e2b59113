"""The pool's fragmentation figure: how much of its free GPU capacity is stranded.

Owns :func:`usable` (per node) and :func:`fragmentation` (per pool), defined as

    fragmentation = 1 - sum(usable_n) / sum(free_n)

where ``free_n`` counts node n's free healthy GPUs and ``usable_n`` is the size of the largest
set of them whose bottleneck link is as fast as the best set of that size on the same node when
empty. 0 means every free GPU can still join a full-speed set (free NVLink pairs whole, free
GPUs together on one switch); it rises toward 1 as free GPUs are left as orphans whose NVLink
partners or PCIe neighbours are taken. A node with one free GPU counts it as usable.

Must not: I/O, clocks, choose placements.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from kubeinfer.planning.gpu import selection as gpu_selection
from kubeinfer.planning.gpu import topology


@functools.lru_cache(maxsize=4096)
def _empty_best(topo: topology.NodeTopology, k: int) -> float | None:
    sel = gpu_selection.select(topo, (1 << len(topo.gpus)) - 1, k)
    return None if sel is None else sel.bottleneck_gbps


def usable(topo: topology.NodeTopology, free_mask: int) -> int:
    """Largest k such that some k free GPUs are as fast as the best k on the empty node."""
    free = free_mask.bit_count()
    for k in range(free, 1, -1):
        sel = gpu_selection.select(topo, free_mask, k)
        if sel is not None and sel.bottleneck_gbps == _empty_best(topo, k):
            return k
    return min(free, 1)


def fragmentation(nodes: Iterable[tuple[topology.NodeTopology, int]]) -> float:
    """The pool's figure over (topology, free healthy GPU mask) per node; 0 with nothing free."""
    free = 0
    good = 0
    for topo, mask in nodes:
        free += mask.bit_count()
        good += usable(topo, mask)
    return 0.0 if free == 0 else round(1 - good / free, 4)
