"""Reading a node agent's published inventory into the shapes planning works with.

Owns :func:`topology_of` (the placement topology), :func:`health_sample` (the counters the
health checks judge) and :func:`verdicts` (every GPU judged against a pool's health policy).
Pure: the controllers parse the annotation (``api.node_inventory.parse``) and pass it in.

Must not: parse JSON, read cluster objects, or choose placements.
"""

from __future__ import annotations

from kubeinfer.api import gpu_pool as pool_api
from kubeinfer.api import node_inventory as inv
from kubeinfer.planning.gpu import health as gpu_health
from kubeinfer.planning.gpu import topology


def _level(text: str) -> topology.PcieLevel:
    return topology.PcieLevel[text]


def _architecture(text: str) -> topology.Architecture:
    try:
        return topology.Architecture(text)
    except ValueError:
        return topology.Architecture.UNKNOWN


def topology_of(inventory: inv.NodeInventory, *, name: str = "") -> topology.NodeTopology:
    """The node's topology; a lost GPU keeps its index with SYS links and no NVLink.

    Raises ``ValueError`` when a pair is missing or a level is unknown (a malformed inventory).
    """
    gpus = tuple(
        topology.Gpu(
            index=g.index,
            numa_node=g.numa_node,
            architecture=_architecture(g.architecture),
            nvlink_gbps=g.nvlink_gbps,
            pcie_generation=g.pcie_generation,
            pcie_width=g.pcie_width,
            nic_levels=tuple(_level(n) for n in g.nic_levels),
        )
        for g in sorted(inventory.gpus, key=lambda g: g.index)
    )
    links: dict[tuple[int, int], topology.Link] = {}
    for key, text in inventory.links.items():
        a, _, b = key.partition("-")
        pcie, nvlinks, switch = inv.parse_link(text)
        pair = (min(int(a), int(b)), max(int(a), int(b)))
        try:
            links[pair] = topology.Link(_level(pcie), nvlinks, via_nvswitch=switch)
        except KeyError as err:
            msg = f"unknown PCIe level {pcie!r} for GPU pair {key}"
            raise ValueError(msg) from err
    return topology.NodeTopology(gpus=gpus, links=links, name=name)


def health_sample(gpu: inv.Gpu) -> gpu_health.HealthSample:
    """The counters of one published GPU, as the health checks read them."""
    h = gpu.health
    return gpu_health.HealthSample(
        index=gpu.index,
        lost=h.lost,
        xids=tuple(h.xids),
        ecc_uncorrected_volatile=h.ecc_uncorrected,
        retired_pages=h.retired_pages,
        retired_pages_pending=h.retired_pending,
        remapped_rows=h.remapped_rows,
        remap_pending=h.remap_pending,
        remap_failure=h.remap_failure,
        temperature_c=h.temperature_c,
        slowdown_c=h.slowdown_c,
        pcie_generation=(h.pcie_gen[0], h.pcie_gen[1]) if h.pcie_gen else None,
        pcie_width=(h.pcie_width[0], h.pcie_width[1]) if h.pcie_width else None,
    )


def verdicts(
    inventory: inv.NodeInventory, policy: pool_api.HealthPolicy
) -> dict[int, gpu_health.Verdict]:
    """Every GPU of the node judged against ``policy``, by index."""
    return {g.index: gpu_health.assess(health_sample(g), policy) for g in inventory.gpus}


def nvlink_peers(topo: topology.NodeTopology, index: int) -> list[int]:
    """Indices of the GPUs ``index`` reaches over NVLink (directly or through an NVSwitch)."""
    return list(topology.indices_of(topo.nvlink_mask[index]))
