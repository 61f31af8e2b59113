"""The NCCL environment of multi-GPU replicas, chosen from the placed GPU sets' measured topology.

A Deployment's replicas share one pod template, so the environment fits the weakest placed set:

- ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` always: CUDA's default order (fastest first) differs from
  NVML's indices, which placement and the device allocation speak in;
- ``NCCL_P2P_LEVEL``: ``NVL`` when every pair of every set talks over NVLink (directly or through
  an NVSwitch), so NCCL never falls back to PCIe paths; otherwise the farthest PCIe distance
  inside one NUMA node (``PIX``, ``PXB``, ``PHB``), so peer-to-peer is used across the switches
  the sets really span; sets that cross NUMA nodes (``NODE``/``SYS``) keep NCCL's own default,
  which avoids peer-to-peer over the CPU interconnect where it is slower than shared memory;
- ``NCCL_CROSS_NIC=0`` keeps each ring on the NIC nearest its GPUs when sets are NUMA-local.

Pure: the planner passes the placements and the nodes' topologies.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

from kubeinfer.api import inference_service as api
from kubeinfer.planning.gpu import topology

_P2P_LEVEL = {
    topology.PcieLevel.SAME_BOARD: "PIX",
    topology.PcieLevel.PIX: "PIX",
    topology.PcieLevel.PXB: "PXB",
    topology.PcieLevel.PHB: "PHB",
}


def environment(
    placements: Iterable[api.ReplicaPlacement],
    topologies: Mapping[str, topology.NodeTopology],
) -> dict[str, str]:
    """Return the NCCL environment for pods whose GPU sets are ``placements``."""
    sets = [p for p in placements if len(p.gpus) > 1 and p.node in topologies]
    if not sets:
        return {}
    links = [
        topologies[p.node].link(a, b) for p in sets for a, b in itertools.combinations(p.gpus, 2)
    ]
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    if all(link.nvlinks > 0 for link in links):
        env["NCCL_P2P_LEVEL"] = "NVL"
    else:
        farthest = max(link.pcie for link in links if link.nvlinks == 0)
        if farthest in _P2P_LEVEL:
            env["NCCL_P2P_LEVEL"] = _P2P_LEVEL[farthest]
    if all(len(p.numa_nodes) <= 1 for p in sets):
        env["NCCL_CROSS_NIC"] = "0"
    return env
