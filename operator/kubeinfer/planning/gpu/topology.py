"""The GPU topology model of one node: devices, pairwise links and their nominal bandwidth.

Owns the frozen shapes that discovery (``kubeinfer.gpu``) fills from NVML and that placement
reads: PCIe common-ancestor levels, NVLink link counts (direct or through an NVSwitch), NUMA
and NIC affinity, and the nominal per-pair bandwidth model. It also owns the NVIDIA device
plugin's pair score (go-gpuallocator's best-effort policy) so both can be compared on one scale.

Must not do: I/O, clocks, or import pynvml / kopf / the Kubernetes client. Numbers here are
nominal (datasheet-derived, unidirectional GB/s); they rank GPU sets, they do not predict NCCL
throughput to the percent.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field


class PcieLevel(enum.IntEnum):
    """PCIe common ancestor of two devices, closest first (``nvidia-smi topo -m`` legend).

    The integer order is closeness: a lower value is a shorter path.
    """

    SAME_BOARD = 0
    """Both GPUs on one board (NVML_TOPOLOGY_INTERNAL, e.g. a dual-GPU card)."""
    PIX = 1
    """At most a single PCIe bridge between them."""
    PXB = 2
    """Multiple PCIe bridges, without the host bridge."""
    PHB = 3
    """Through a PCIe host bridge (the CPU)."""
    NODE = 4
    """Between PCIe host bridges within one NUMA node."""
    SYS = 5
    """Across the SMP interconnect between NUMA nodes (QPI / UPI / Infinity Fabric)."""


#: go-gpuallocator's points for a PCIe level (calculateGPUPairScore in its best-effort policy).
ALLOCATOR_PCIE_POINTS: Mapping[PcieLevel, int] = {
    PcieLevel.SYS: 10,
    PcieLevel.NODE: 20,
    PcieLevel.PHB: 30,
    PcieLevel.PXB: 40,
    PcieLevel.PIX: 50,
    PcieLevel.SAME_BOARD: 60,
}
#: go-gpuallocator's points per NVLink between a pair.
ALLOCATOR_NVLINK_POINTS = 100

#: Fraction of a PCIe link's raw rate a peer-to-peer copy reaches over each path. Crossing the
#: host bridge and, worse, the socket interconnect costs bandwidth; SYS often means staging
#: through host memory. Nominal figures that order the levels.
PCIE_PATH_EFFICIENCY: Mapping[PcieLevel, float] = {
    PcieLevel.SAME_BOARD: 0.90,
    PcieLevel.PIX: 0.85,
    PcieLevel.PXB: 0.80,
    PcieLevel.PHB: 0.70,
    PcieLevel.NODE: 0.60,
    PcieLevel.SYS: 0.35,
}

#: Raw unidirectional GB/s per PCIe lane by generation (after line coding).
PCIE_LANE_GBPS: Mapping[int, float] = {
    1: 0.25,
    2: 0.5,
    3: 0.985,
    4: 1.969,
    5: 3.938,
    6: 7.563,
}


class Architecture(enum.StrEnum):
    """GPU architecture, as NVML's nvmlDeviceGetArchitecture names it."""

    KEPLER = "Kepler"
    MAXWELL = "Maxwell"
    PASCAL = "Pascal"
    VOLTA = "Volta"
    TURING = "Turing"
    AMPERE = "Ampere"
    ADA = "Ada"
    HOPPER = "Hopper"
    BLACKWELL = "Blackwell"
    UNKNOWN = "Unknown"


#: Unidirectional GB/s of one NVLink by architecture (NVLink 1.0 on Pascal: 20; 2.0-4.0: 25;
#: 5.0 on Blackwell: 50). Used when NVML does not report the link version.
NVLINK_GBPS_BY_ARCHITECTURE: Mapping[Architecture, float] = {
    Architecture.PASCAL: 20.0,
    Architecture.VOLTA: 25.0,
    Architecture.TURING: 25.0,
    Architecture.AMPERE: 25.0,
    Architecture.HOPPER: 25.0,
    Architecture.BLACKWELL: 50.0,
}

#: Unidirectional GB/s of one NVLink by NVML link version (NVML_NVLINK_VERSION_*).
NVLINK_GBPS_BY_VERSION: Mapping[int, float] = {
    1: 20.0,  # 1.0
    2: 25.0,  # 2.0
    3: 25.0,  # 2.2
    4: 25.0,  # 3.0
    5: 25.0,  # 3.1
    6: 25.0,  # 4.0
    7: 50.0,  # 5.0
    8: 100.0,  # 6.0
}

#: Physical NVLinks per GPU by architecture: a GPU whose matrix shows more links than this
#: summed over its peers must reach them through an NVSwitch.
NVLINKS_PER_GPU: Mapping[Architecture, int] = {
    Architecture.PASCAL: 4,
    Architecture.VOLTA: 6,
    Architecture.TURING: 2,
    Architecture.AMPERE: 12,
    Architecture.HOPPER: 18,
    Architecture.BLACKWELL: 18,
}

#: PCIe generation a GPU of each architecture trains at when nothing else is known.
PCIE_GENERATION_BY_ARCHITECTURE: Mapping[Architecture, int] = {
    Architecture.PASCAL: 3,
    Architecture.VOLTA: 3,
    Architecture.TURING: 3,
    Architecture.AMPERE: 4,
    Architecture.ADA: 4,
    Architecture.HOPPER: 5,
    Architecture.BLACKWELL: 5,
}


@dataclass(frozen=True)
class Link:
    """How two GPUs reach each other."""

    pcie: PcieLevel
    """PCIe common ancestor (NVML_TOPOLOGY_*)."""
    nvlinks: int = 0
    """NVLinks usable between the pair: direct links, or min(link counts) through an NVSwitch."""
    via_nvswitch: bool = False
    """True when the NVLinks go through an NVSwitch (the device plugin does not see those)."""

    @property
    def allocator_visible_nvlinks(self) -> int:
        """NVLinks as go-gpuallocator counts them: remote PCI bus id equal to the peer's."""
        return 0 if self.via_nvswitch else self.nvlinks


@dataclass(frozen=True)
class Gpu:
    """One GPU as placement sees it."""

    index: int
    """NVML device index."""
    numa_node: int | None = None
    """NUMA node the GPU hangs off; None when the platform does not say."""
    architecture: Architecture = Architecture.UNKNOWN
    """GPU architecture; picks the NVLink and PCIe rates."""
    nvlink_gbps: float = 0.0
    """Unidirectional GB/s of one NVLink; 0 when the GPU has none."""
    pcie_generation: int = 4
    """PCIe generation the GPU is built for."""
    pcie_width: int = 16
    """PCIe lane count the GPU is built for."""
    nic_levels: tuple[PcieLevel, ...] = ()
    """PCIe level to each NIC of the node, in NIC order; empty when unknown."""


def _pair_key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


@dataclass(frozen=True)
class NodeTopology:
    """All GPUs of a node and the link between every pair.

    Derived tables (bandwidth matrix, adjacency bitmasks) are computed once per object and kept
    on it; build a topology once per distinct machine and share it between nodes of that shape.
    """

    gpus: tuple[Gpu, ...]
    """GPUs ordered by index; ``gpus[i].index == i``."""
    links: Mapping[tuple[int, int], Link] = field(hash=False, compare=True)
    """Link per unordered pair, keyed (low index, high index)."""
    name: str = ""
    """Free-form label (machine type or fixture name) for explanations."""

    def __post_init__(self) -> None:
        for position, gpu in enumerate(self.gpus):
            if gpu.index != position:
                msg = f"GPU at position {position} has index {gpu.index}; indices must be 0..n-1"
                raise ValueError(msg)
        for a in range(len(self.gpus)):
            for b in range(a + 1, len(self.gpus)):
                if (a, b) not in self.links:
                    msg = f"topology {self.name!r} has no link for GPU pair ({a}, {b})"
                    raise ValueError(msg)

    def __hash__(self) -> int:
        return self._hash

    @functools.cached_property
    def _hash(self) -> int:
        return hash((self.gpus, tuple(sorted(self.links.items())), self.name))

    def link(self, a: int, b: int) -> Link:
        """The link between GPUs ``a`` and ``b`` (order does not matter)."""
        return self.links[_pair_key(a, b)]

    @functools.cached_property
    def bandwidth(self) -> tuple[tuple[float, ...], ...]:
        """Nominal unidirectional GB/s between every pair (0 on the diagonal)."""
        n = len(self.gpus)
        return tuple(
            tuple(0.0 if a == b else pair_gbps(self, a, b) for b in range(n)) for a in range(n)
        )

    @functools.cached_property
    def allocator_score(self) -> tuple[tuple[int, ...], ...]:
        """go-gpuallocator's pair score with NVSwitch links counted (kubeinfer's view)."""
        n = len(self.gpus)
        return tuple(
            tuple(
                0 if a == b else allocator_pair_score(self.link(a, b), nvswitch_aware=True)
                for b in range(n)
            )
            for a in range(n)
        )

    @functools.cached_property
    def levels(self) -> tuple[float, ...]:
        """Distinct pair bandwidths, fastest first."""
        n = len(self.gpus)
        values = {self.bandwidth[a][b] for a in range(n) for b in range(a + 1, n)}
        return tuple(sorted(values, reverse=True))

    @functools.cached_property
    def adjacency(self) -> Mapping[float, tuple[int, ...]]:
        """Per bandwidth level: bitmask of peers each GPU reaches at that level or faster."""
        n = len(self.gpus)
        table: dict[float, tuple[int, ...]] = {}
        for level in self.levels:
            table[level] = tuple(
                sum(1 << b for b in range(n) if b != a and self.bandwidth[a][b] >= level)
                for a in range(n)
            )
        return table

    @functools.cached_property
    def numa_masks(self) -> Mapping[int | None, int]:
        """Bitmask of GPUs per NUMA node (None collects GPUs with unknown affinity)."""
        masks: dict[int | None, int] = {}
        for gpu in self.gpus:
            masks[gpu.numa_node] = masks.get(gpu.numa_node, 0) | (1 << gpu.index)
        return masks

    @functools.cached_property
    def numa_bits(self) -> tuple[int, ...]:
        """Per GPU, one bit standing for its NUMA node (for counting the nodes a set spans)."""
        nodes = dict.fromkeys(g.numa_node for g in self.gpus)
        order = {node: bit for bit, node in enumerate(nodes)}
        return tuple(1 << order[g.numa_node] for g in self.gpus)

    @functools.cached_property
    def nvlink_mask(self) -> tuple[int, ...]:
        """Bitmask of NVLink peers of each GPU."""
        n = len(self.gpus)
        return tuple(
            sum(1 << b for b in range(n) if b != a and self.link(a, b).nvlinks > 0)
            for a in range(n)
        )


def pcie_gbps(level: PcieLevel, *, generation: int, width: int) -> float:
    """Nominal peer-to-peer GB/s over a PCIe path of ``level`` at the given link training."""
    lane = PCIE_LANE_GBPS.get(generation, PCIE_LANE_GBPS[4])
    return round(lane * width * PCIE_PATH_EFFICIENCY[level], 2)


def pair_gbps(topology: NodeTopology, a: int, b: int) -> float:
    """Nominal unidirectional GB/s between two GPUs: NVLink when present, else PCIe."""
    link = topology.link(a, b)
    gpu_a, gpu_b = topology.gpus[a], topology.gpus[b]
    pcie = pcie_gbps(
        link.pcie,
        generation=min(gpu_a.pcie_generation, gpu_b.pcie_generation),
        width=min(gpu_a.pcie_width, gpu_b.pcie_width),
    )
    if link.nvlinks == 0:
        return pcie
    per_link = min(gpu_a.nvlink_gbps, gpu_b.nvlink_gbps)
    return max(pcie, round(link.nvlinks * per_link, 2))


def allocator_pair_score(link: Link, *, nvswitch_aware: bool) -> int:
    """go-gpuallocator's score of a pair: PCIe level points plus 100 per NVLink.

    With ``nvswitch_aware`` false, links through an NVSwitch count zero, as the device plugin
    sees them (its NVLink peers are the switch, never the other GPU).
    """
    nvlinks = link.nvlinks if nvswitch_aware else link.allocator_visible_nvlinks
    return ALLOCATOR_PCIE_POINTS[link.pcie] + ALLOCATOR_NVLINK_POINTS * nvlinks


def mask_of(indices: tuple[int, ...] | list[int] | frozenset[int]) -> int:
    """Bitmask with a bit set for each GPU index."""
    mask = 0
    for index in indices:
        mask |= 1 << index
    return mask


def indices_of(mask: int) -> tuple[int, ...]:
    """GPU indices whose bit is set in ``mask``, ascending."""
    out: list[int] = []
    index = 0
    while mask:
        if mask & 1:
            out.append(index)
        mask >>= 1
        index += 1
    return tuple(out)
