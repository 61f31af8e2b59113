"""GPU discovery through an NVML backend: inventory, topology, health samples, processes.

Owns :func:`discover` (one snapshot of a node) and the frozen shapes it returns. The same code
runs against the real ``pynvml`` module on a GPU node and against ``fake_nvml.FakeNvml`` in
tests. What it reads, per GPU: identity (index, UUID, name, architecture), memory (memory-info
v2, falling back to v1), PCI bus id, MIG mode and MIG devices, NVLinks per link with the
remote device type, PCIe common ancestor per pair, CPU and NUMA affinity, health counters and
per-process memory.

NVSwitch: on HGX/DGX boards every NVLink ends at a switch, so no link names a peer GPU; two
GPUs that both have switch links reach each other over min(link counts) links.

A GPU that answers GPU_IS_LOST is reported in ``lost`` and kept in the topology (indices stay
0..n-1) with no links, so placement never picks it. NOT_SUPPORTED answers become None.

Must not do: decide health or placement (``planning`` does), talk to the API server.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pynvml

from kubeinfer.gpu import backend as nvml_backend
from kubeinfer.planning.gpu import health as gpu_health
from kubeinfer.planning.gpu import topology

T = TypeVar("T")

_CPU_WORDS = 16  # 1024 CPUs

ARCHITECTURES: Mapping[int, topology.Architecture] = {
    pynvml.NVML_DEVICE_ARCH_KEPLER: topology.Architecture.KEPLER,
    pynvml.NVML_DEVICE_ARCH_MAXWELL: topology.Architecture.MAXWELL,
    pynvml.NVML_DEVICE_ARCH_PASCAL: topology.Architecture.PASCAL,
    pynvml.NVML_DEVICE_ARCH_VOLTA: topology.Architecture.VOLTA,
    pynvml.NVML_DEVICE_ARCH_TURING: topology.Architecture.TURING,
    pynvml.NVML_DEVICE_ARCH_AMPERE: topology.Architecture.AMPERE,
    pynvml.NVML_DEVICE_ARCH_ADA: topology.Architecture.ADA,
    pynvml.NVML_DEVICE_ARCH_HOPPER: topology.Architecture.HOPPER,
    pynvml.NVML_DEVICE_ARCH_BLACKWELL: topology.Architecture.BLACKWELL,
}

PCIE_LEVELS: Mapping[int, topology.PcieLevel] = {
    pynvml.NVML_TOPOLOGY_INTERNAL: topology.PcieLevel.SAME_BOARD,
    pynvml.NVML_TOPOLOGY_SINGLE: topology.PcieLevel.PIX,
    pynvml.NVML_TOPOLOGY_MULTIPLE: topology.PcieLevel.PXB,
    pynvml.NVML_TOPOLOGY_HOSTBRIDGE: topology.PcieLevel.PHB,
    pynvml.NVML_TOPOLOGY_NODE: topology.PcieLevel.NODE,
    pynvml.NVML_TOPOLOGY_SYSTEM: topology.PcieLevel.SYS,
}


@dataclass(frozen=True)
class NvLink:
    """One active NVLink of a GPU."""

    link: int
    remote_bus_id: str
    remote_is_switch: bool
    version: int | None


@dataclass(frozen=True)
class MigDevice:
    """One MIG device of a GPU."""

    uuid: str
    gpu_instance_id: int
    compute_instance_id: int
    memory_total_bytes: int


@dataclass(frozen=True)
class Process:
    """A compute process and the GPU memory it holds (None when NVML cannot say)."""

    pid: int
    used_bytes: int | None


@dataclass(frozen=True)
class Device:
    """One present GPU."""

    index: int
    uuid: str
    name: str
    architecture: topology.Architecture
    memory_total_bytes: int
    memory_used_bytes: int
    memory_reserved_bytes: int
    pci_bus_id: str
    numa_node: int | None
    cpus: tuple[int, ...]
    mig_enabled: bool | None
    """None when the GPU cannot do MIG."""
    mig_devices: tuple[MigDevice, ...]
    nvlinks: tuple[NvLink, ...]
    pcie_generation: tuple[int, int] | None
    """(trained, max)."""
    pcie_width: tuple[int, int] | None
    processes: tuple[Process, ...]


@dataclass(frozen=True)
class NodeInventory:
    """One snapshot of a node's GPUs."""

    driver_version: str
    devices: tuple[Device, ...]
    lost: tuple[int, ...]
    """Indices that answered GPU_IS_LOST."""
    topology: topology.NodeTopology
    health: tuple[gpu_health.HealthSample, ...]

    @property
    def healthy_candidates(self) -> tuple[int, ...]:
        """Indices that are present and not in MIG mode (whole-GPU allocatable)."""
        return tuple(d.index for d in self.devices if not d.mig_enabled)


def optional(call: Callable[[], T]) -> T | None:
    """Run an NVML query; NOT_SUPPORTED (and a missing function) become None."""
    try:
        return call()
    except (pynvml.NVMLError_NotSupported, pynvml.NVMLError_FunctionNotFound):
        return None


def _memory(nvml: nvml_backend.NvmlBackend, handle: Any) -> tuple[int, int, int]:
    try:
        info = nvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
        return int(info.total), int(info.used), int(info.reserved)
    except (pynvml.NVMLError_FunctionNotFound, pynvml.NVMLError_ArgumentVersionMismatch):
        info = nvml.nvmlDeviceGetMemoryInfo(handle)
        return int(info.total), int(info.used), 0


def _cpus(nvml: nvml_backend.NvmlBackend, handle: Any) -> tuple[int, ...]:
    words = nvml.nvmlDeviceGetCpuAffinity(handle, _CPU_WORDS)
    return tuple(
        word_index * 64 + bit
        for word_index in range(_CPU_WORDS)
        for bit in range(64)
        if int(words[word_index]) >> bit & 1
    )


def _nvlinks(nvml: nvml_backend.NvmlBackend, handle: Any) -> tuple[NvLink, ...]:
    links: list[NvLink] = []
    for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
        try:
            state = nvml.nvmlDeviceGetNvLinkState(handle, link)
        except pynvml.NVMLError_NotSupported:
            if link == 0:
                break  # no NVLink on this GPU
            continue
        except pynvml.NVMLError_InvalidArgument:
            continue
        if state != pynvml.NVML_FEATURE_ENABLED:
            continue
        remote = nvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link)
        kind = optional(functools.partial(nvml.nvmlDeviceGetNvLinkRemoteDeviceType, handle, link))
        version = optional(functools.partial(nvml.nvmlDeviceGetNvLinkVersion, handle, link))
        links.append(
            NvLink(
                link=link,
                remote_bus_id=str(remote.busId).upper(),
                remote_is_switch=kind == pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH,
                version=version,
            )
        )
    return tuple(links)


def _mig(nvml: nvml_backend.NvmlBackend, handle: Any) -> tuple[bool | None, tuple[MigDevice, ...]]:
    mode = optional(lambda: nvml.nvmlDeviceGetMigMode(handle))
    if mode is None:
        return None, ()
    if mode[0] != pynvml.NVML_DEVICE_MIG_ENABLE:
        return False, ()
    devices: list[MigDevice] = []
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except pynvml.NVMLError_NotFound:
            continue
        devices.append(
            MigDevice(
                uuid=nvml.nvmlDeviceGetUUID(mig),
                gpu_instance_id=nvml.nvmlDeviceGetGpuInstanceId(mig),
                compute_instance_id=nvml.nvmlDeviceGetComputeInstanceId(mig),
                memory_total_bytes=int(nvml.nvmlDeviceGetMemoryInfo(mig).total),
            )
        )
    return True, tuple(devices)


def _device(nvml: nvml_backend.NvmlBackend, index: int, handle: Any) -> Device:
    total, used, reserved = _memory(nvml, handle)
    mig_enabled, mig_devices = _mig(nvml, handle)
    numa = optional(lambda: nvml.nvmlDeviceGetNumaNodeId(handle))
    gen = optional(
        lambda: (
            nvml.nvmlDeviceGetCurrPcieLinkGeneration(handle),
            nvml.nvmlDeviceGetMaxPcieLinkGeneration(handle),
        )
    )
    width = optional(
        lambda: (
            nvml.nvmlDeviceGetCurrPcieLinkWidth(handle),
            nvml.nvmlDeviceGetMaxPcieLinkWidth(handle),
        )
    )
    processes = optional(lambda: nvml.nvmlDeviceGetComputeRunningProcesses(handle)) or []
    return Device(
        index=index,
        uuid=nvml.nvmlDeviceGetUUID(handle),
        name=nvml.nvmlDeviceGetName(handle),
        architecture=ARCHITECTURES.get(
            nvml.nvmlDeviceGetArchitecture(handle), topology.Architecture.UNKNOWN
        ),
        memory_total_bytes=total,
        memory_used_bytes=used,
        memory_reserved_bytes=reserved,
        pci_bus_id=str(nvml.nvmlDeviceGetPciInfo(handle).busId).upper(),
        numa_node=numa if numa is None or numa >= 0 else None,
        cpus=_cpus(nvml, handle),
        mig_enabled=mig_enabled,
        mig_devices=mig_devices,
        nvlinks=_nvlinks(nvml, handle),
        pcie_generation=gen,
        pcie_width=width,
        processes=tuple(Process(int(p.pid), p.usedGpuMemory) for p in processes),
    )


def _count_retired(nvml: nvml_backend.NvmlBackend, handle: Any) -> int | None:
    causes = (
        pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS,
        pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR,
    )
    counts = [
        optional(functools.partial(nvml.nvmlDeviceGetRetiredPages, handle, cause))
        for cause in causes
    ]
    return None if counts[0] is None else sum(len(pages or ()) for pages in counts)


def sample_health(
    nvml: nvml_backend.NvmlBackend, device: Device, handle: Any, *, xids: tuple[int, ...] = ()
) -> gpu_health.HealthSample:
    """Read one GPU's health counters."""
    remapped = optional(lambda: nvml.nvmlDeviceGetRemappedRows(handle))
    pending = optional(lambda: nvml.nvmlDeviceGetRetiredPagesPendingStatus(handle))
    return gpu_health.HealthSample(
        index=device.index,
        xids=xids,
        ecc_uncorrected_volatile=optional(
            lambda: nvml.nvmlDeviceGetTotalEccErrors(
                handle, pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC
            )
        ),
        retired_pages=_count_retired(nvml, handle),
        retired_pages_pending=bool(pending),
        remapped_rows=None if remapped is None else remapped[0] + remapped[1],
        remap_pending=bool(remapped and remapped[2]),
        remap_failure=bool(remapped and remapped[3]),
        temperature_c=optional(
            lambda: nvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
        ),
        slowdown_c=optional(
            lambda: nvml.nvmlDeviceGetTemperatureThreshold(
                handle, pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
            )
        ),
        pcie_generation=device.pcie_generation,
        pcie_width=device.pcie_width,
    )


def _gpu_model(device: Device, nic_levels: tuple[topology.PcieLevel, ...]) -> topology.Gpu:
    versions = [link.version for link in device.nvlinks if link.version]
    per_link = (
        topology.NVLINK_GBPS_BY_VERSION.get(max(versions), 25.0)
        if versions
        else topology.NVLINK_GBPS_BY_ARCHITECTURE.get(device.architecture, 0.0)
    )
    generation = (
        device.pcie_generation[1]
        if device.pcie_generation
        else topology.PCIE_GENERATION_BY_ARCHITECTURE.get(device.architecture, 4)
    )
    return topology.Gpu(
        index=device.index,
        numa_node=device.numa_node,
        architecture=device.architecture,
        nvlink_gbps=per_link if device.nvlinks else 0.0,
        pcie_generation=generation,
        pcie_width=device.pcie_width[1] if device.pcie_width else 16,
        nic_levels=nic_levels,
    )


def build_topology(
    nvml: nvml_backend.NvmlBackend,
    devices: Mapping[int, tuple[Device, Any]],
    *,
    count: int,
    nic_levels: Mapping[int, tuple[topology.PcieLevel, ...]] | None = None,
    name: str = "",
) -> topology.NodeTopology:
    """Pairwise links of the present GPUs; lost indices get SYS with no NVLink."""
    nics = nic_levels or {}
    gpus = tuple(
        _gpu_model(devices[i][0], nics.get(i, ())) if i in devices else topology.Gpu(index=i)
        for i in range(count)
    )
    by_bus = {device.pci_bus_id: index for index, (device, _) in devices.items()}
    direct: dict[tuple[int, int], int] = {}
    switch_links: dict[int, int] = {}
    for index, (device, _) in devices.items():
        switch_links[index] = sum(1 for link in device.nvlinks if link.remote_is_switch)
        for link in device.nvlinks:
            peer = by_bus.get(link.remote_bus_id)
            if not link.remote_is_switch and peer is not None and peer != index:
                key = (min(index, peer), max(index, peer))
                direct[key] = direct.get(key, 0) + 1
    links: dict[tuple[int, int], topology.Link] = {}
    for a in range(count):
        for b in range(a + 1, count):
            if a not in devices or b not in devices:
                links[(a, b)] = topology.Link(topology.PcieLevel.SYS)
                continue
            level = PCIE_LEVELS[
                nvml.nvmlDeviceGetTopologyCommonAncestor(devices[a][1], devices[b][1])
            ]
            # each side counts the pair's links once
            own = direct.get((a, b), 0) // 2
            switched = min(switch_links[a], switch_links[b])
            if own:
                links[(a, b)] = topology.Link(level, own)
            else:
                links[(a, b)] = topology.Link(level, switched, via_nvswitch=switched > 0)
    return topology.NodeTopology(gpus=gpus, links=links, name=name)


def discover(
    nvml: nvml_backend.NvmlBackend,
    *,
    nic_levels: Mapping[int, tuple[topology.PcieLevel, ...]] | None = None,
    xids: Mapping[int, tuple[int, ...]] | None = None,
    name: str = "",
) -> NodeInventory:
    """Take one snapshot of the node's GPUs. ``nvmlInit`` / ``nvmlShutdown`` bracket it.

    ``nic_levels`` (GPU → PCIe level to each NIC) comes from sysfs, not NVML; ``xids`` are the
    XIDs the event watch has seen per GPU.
    """
    try:
        nvml.nvmlInit()
    except pynvml.NVMLError as err:
        msg = f"NVML could not start: {err}"
        raise nvml_backend.NvmlUnavailable(msg) from err
    try:
        count = nvml.nvmlDeviceGetCount()
        present: dict[int, tuple[Device, Any]] = {}
        lost: list[int] = []
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                present[index] = (_device(nvml, index, handle), handle)
            except pynvml.NVMLError_GpuIsLost:
                lost.append(index)
        seen = xids or {}
        health = [
            sample_health(nvml, device, handle, xids=seen.get(index, ()))
            for index, (device, handle) in present.items()
        ]
        health += [gpu_health.HealthSample(index=i, lost=True, xids=seen.get(i, ())) for i in lost]
        return NodeInventory(
            driver_version=nvml.nvmlSystemGetDriverVersion(),
            devices=tuple(device for device, _ in present.values()),
            lost=tuple(lost),
            topology=build_topology(nvml, present, count=count, nic_levels=nic_levels, name=name),
            health=tuple(sorted(health, key=lambda s: s.index)),
        )
    except pynvml.NVMLError as err:
        msg = f"GPU discovery failed: {err}"
        raise nvml_backend.DiscoveryFailed(msg) from err
    finally:
        nvml.nvmlShutdown()
