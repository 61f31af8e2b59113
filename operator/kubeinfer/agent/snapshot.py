"""What the node agent publishes, built from one discovery snapshot.

Owns :func:`inventory` (the ``gpu.kubeinfer.io/inventory`` annotation's content), :func:`labels`
(GPU Feature Discovery-compatible ``nvidia.com/*`` labels plus a few ``gpu.kubeinfer.io/*``
ones) and :func:`resource_slice` (the node's GPUs as DRA devices of driver
``gpu.kubeinfer.io``, so the scheduler can allocate the exact GPUs placement chose).

Facts only: the agent reports counters and topology; health verdicts and placement are the
operator's, judged against each pool's policy.

Must not: talk to NVML or the API server (``run`` does both).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kubeinfer.api import node_inventory as inv
from kubeinfer.gpu import discovery
from kubeinfer.planning.labels import (
    INVENTORY_VERSION_LABEL,
    NUMA_NODES_LABEL,
    NVLINK_LABEL,
    NVSWITCH_LABEL,
)

MIB = 1024**2
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


def _gpu(
    device: discovery.Device,
    snapshot: discovery.NodeInventory,
    trend: inv.MemoryTrend | None,
) -> inv.Gpu:
    model = snapshot.topology.gpus[device.index]
    sample = next(s for s in snapshot.health if s.index == device.index)
    return inv.Gpu(
        index=device.index,
        uuid=device.uuid,
        name=device.name,
        architecture=device.architecture.value,
        memory_mib=device.memory_total_bytes // MIB,
        pci_bus_id=device.pci_bus_id,
        numa_node=device.numa_node,
        nvlink_gbps=model.nvlink_gbps,
        pcie_generation=model.pcie_generation,
        pcie_width=model.pcie_width,
        nic_levels=[level.name for level in model.nic_levels],
        mig=device.mig_enabled,
        mig_devices=[
            inv.MigInstance(
                uuid=m.uuid,
                gi=m.gpu_instance_id,
                ci=m.compute_instance_id,
                memory_mib=m.memory_total_bytes // MIB,
            )
            for m in device.mig_devices
        ],
        health=inv.Health(
            xids=sorted(set(sample.xids)),
            ecc_uncorrected=sample.ecc_uncorrected_volatile,
            retired_pages=sample.retired_pages,
            retired_pending=sample.retired_pages_pending,
            remapped_rows=sample.remapped_rows,
            remap_pending=sample.remap_pending,
            remap_failure=sample.remap_failure,
            temperature_c=sample.temperature_c,
            slowdown_c=sample.slowdown_c,
            pcie_gen=list(sample.pcie_generation) if sample.pcie_generation else None,
            pcie_width=list(sample.pcie_width) if sample.pcie_width else None,
        ),
        memory=trend,
    )


def _lost(index: int, snapshot: discovery.NodeInventory) -> inv.Gpu:
    sample = next(s for s in snapshot.health if s.index == index)
    return inv.Gpu(
        index=index,
        uuid="",
        name="",
        architecture="Unknown",
        memory_mib=0,
        pci_bus_id="",
        health=inv.Health(lost=True, xids=sorted(set(sample.xids))),
    )


def inventory(
    snapshot: discovery.NodeInventory,
    *,
    trends: Mapping[int, inv.MemoryTrend],
    time: str,
) -> inv.NodeInventory:
    """The annotation's content for ``snapshot`` with the memory trends of the sample window."""
    gpus = [_gpu(d, snapshot, trends.get(d.index)) for d in snapshot.devices]
    gpus += [_lost(i, snapshot) for i in snapshot.lost]
    topo = snapshot.topology
    links = {
        f"{a}-{b}": inv.link_text(link.pcie.name, link.nvlinks, via_switch=link.via_nvswitch)
        for (a, b), link in sorted(topo.links.items())
    }
    return inv.NodeInventory(
        time=time,
        driver_version=snapshot.driver_version,
        gpus=sorted(gpus, key=lambda g: g.index),
        links=links,
    )


def _value(text: str) -> str:
    return _LABEL_VALUE.sub("-", text).strip("-_.")[:63]


def labels(snapshot: discovery.NodeInventory, *, gfd: bool = True) -> dict[str, str]:
    """GPU Feature Discovery's labels for the node (unless ``gfd`` is off), plus kubeinfer's."""
    if not gfd:
        return {k: v for k, v in labels(snapshot).items() if not k.startswith("nvidia.com/")}
    devices = snapshot.devices
    if not devices:
        return {"nvidia.com/gpu.present": "false"}
    first = devices[0]
    driver = snapshot.driver_version.split(".")
    links = snapshot.topology.links.values()
    out = {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.count": str(len(devices)),
        "nvidia.com/gpu.product": _value(first.name),
        "nvidia.com/gpu.memory": str(first.memory_total_bytes // MIB),
        "nvidia.com/gpu.family": first.architecture.value.lower(),
        "nvidia.com/mig.capable": str(first.mig_enabled is not None).lower(),
        "nvidia.com/cuda.driver-version.full": _value(snapshot.driver_version),
        "nvidia.com/cuda.driver-version.major": driver[0],
        "nvidia.com/cuda.driver-version.minor": driver[1] if len(driver) > 1 else "0",
        "nvidia.com/cuda.driver-version.revision": driver[2] if len(driver) > 2 else "0",
        NVLINK_LABEL: str(any(link.nvlinks for link in links)).lower(),
        NVSWITCH_LABEL: str(any(link.via_nvswitch for link in links)).lower(),
        NUMA_NODES_LABEL: str(len({d.numa_node for d in devices})),
        INVENTORY_VERSION_LABEL: str(inv.SCHEMA_VERSION),
    }
    if any(d.mig_enabled for d in devices):
        out["nvidia.com/mig.strategy"] = "single"
    return out


def slice_name(node: str) -> str:
    """The node's ResourceSlice name."""
    return f"{node}-{inv.DRIVER}"


def device_name(index: int) -> str:
    """The DRA device name of GPU ``index``."""
    return f"gpu-{index}"


def resource_slice(
    snapshot: discovery.NodeInventory, *, node: str, node_uid: str
) -> dict[str, Any]:
    """The node's whole GPUs (not lost, not in MIG mode) as one DRA ResourceSlice."""
    devices = [
        {
            "name": device_name(d.index),
            "attributes": {
                "uuid": {"string": d.uuid},
                "index": {"int": d.index},
                "productName": {"string": d.name},
                "architecture": {"string": d.architecture.value},
                "numaNode": {"int": d.numa_node if d.numa_node is not None else -1},
                "resource.kubernetes.io/pciBusID": {"string": d.pci_bus_id.lower()[4:]},
            },
            "capacity": {"memory": {"value": f"{d.memory_total_bytes // MIB}Mi"}},
        }
        for d in snapshot.devices
        if not d.mig_enabled
    ]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {
            "name": slice_name(node),
            "labels": {"app.kubernetes.io/managed-by": "kubeinfer-agent"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}
            ],
        },
        "spec": {
            "driver": inv.DRIVER,
            "nodeName": node,
            "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
            "devices": devices,
        },
    }
