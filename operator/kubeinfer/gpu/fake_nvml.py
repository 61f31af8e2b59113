"""A faithful fake of the pynvml functions kubeinfer uses, serving a recorded machine.

Owns :class:`FakeNvml`: the same function names and parameters as pynvml, the same return
shapes (pynvml's own ``c_nvmlMemory_t`` / ``c_nvmlMemory_v2_t`` / ``nvmlPciInfo_t`` structs,
ctypes CPU-affinity arrays, ``nvmlFriendlyObject`` processes and events) and the same failures
(``pynvml.NVMLError`` subclasses with NVML's codes: UNINITIALIZED before ``nvmlInit``,
NOT_SUPPORTED for features a product lacks, INVALID_ARGUMENT for links past the last,
GPU_IS_LOST for a GPU that fell off the bus, TIMEOUT from an empty event wait).

Runtime faults can be injected (:meth:`FakeNvml.inject_event`, :meth:`FakeNvml.lose_gpu`,
:meth:`FakeNvml.set_memory_used`) so the event watch, health checks and memory sampling see a
machine change under them.

Must not do: load libnvidia-ml, read files, or decide anything.
"""

from __future__ import annotations

import ctypes
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pynvml

from kubeinfer.gpu import recorded


@dataclass(frozen=True)
class Handle:
    """Opaque device handle: a GPU, or a MIG device of it."""

    index: int
    mig: int | None = None


@dataclass
class EventSet:
    """An NVML event set: registrations and the events waiting in it."""

    registered: dict[int, int] = field(default_factory=dict)
    pending: deque[recorded.RecordedEvent] = field(default_factory=deque)
    freed: bool = False


def _error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


class FakeNvml:
    """pynvml's API over a :class:`recorded.RecordedMachine`."""

    def __init__(self, machine: recorded.RecordedMachine) -> None:
        self.machine = machine
        self._initialised = 0
        self._lost = {gpu.index for gpu in machine.gpus if gpu.lost}
        self._sets: list[EventSet] = []
        self._backlog: deque[recorded.RecordedEvent] = deque(machine.events)

    # --- faults -------------------------------------------------------------------------

    def inject_event(self, event: recorded.RecordedEvent) -> None:
        """Deliver ``event`` to every event set registered for its GPU and type."""
        self._backlog.append(event)
        self._deliver()

    def lose_gpu(self, index: int) -> None:
        """The GPU falls off the bus: XID 79, then every query answers GPU_IS_LOST."""
        self.inject_event(recorded.RecordedEvent(index, pynvml.nvmlEventTypeXidCriticalError, 79))
        self._lost.add(index)

    def set_memory_used(self, index: int, used_bytes: int) -> None:
        """A workload on GPU ``index`` now holds ``used_bytes`` (what memory-info reports next)."""
        self.machine = recorded.with_gpu(self.machine, index, memory_used_bytes=used_bytes)

    def _deliver(self) -> None:
        keep: deque[recorded.RecordedEvent] = deque()
        while self._backlog:
            event = self._backlog.popleft()
            targets = [
                s
                for s in self._sets
                if not s.freed and s.registered.get(event.gpu, 0) & event.event_type
            ]
            for event_set in targets:
                event_set.pending.append(event)
            if not targets:
                keep.append(event)
        self._backlog = keep

    # --- lifecycle ----------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self._initialised += 1

    def nvmlShutdown(self) -> None:
        if not self._initialised:
            raise _error(pynvml.NVML_ERROR_UNINITIALIZED)
        self._initialised -= 1

    def _ready(self) -> None:
        if not self._initialised:
            raise _error(pynvml.NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: Handle) -> recorded.RecordedGpu:
        self._ready()
        if not isinstance(handle, Handle) or not 0 <= handle.index < len(self.machine.gpus):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if handle.index in self._lost:
            raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return self.machine.gpus[handle.index]

    def _whole(self, handle: Handle) -> recorded.RecordedGpu:
        gpu = self._gpu(handle)
        if handle.mig is not None:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu

    def nvmlSystemGetDriverVersion(self) -> str:
        self._ready()
        return self.machine.driver_version

    # --- identity -----------------------------------------------------------------------

    def nvmlDeviceGetCount(self) -> int:
        self._ready()
        return len(self.machine.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Handle:
        self._ready()
        if not 0 <= index < len(self.machine.gpus):
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if index in self._lost:
            raise _error(pynvml.NVML_ERROR_GPU_IS_LOST)
        return Handle(index)

    def nvmlDeviceGetUUID(self, handle: Handle) -> str:
        gpu = self._gpu(handle)
        return gpu.uuid if handle.mig is None else gpu.mig_devices[handle.mig].uuid

    def nvmlDeviceGetName(self, handle: Handle) -> str:
        return self._gpu(handle).product.name

    def nvmlDeviceGetArchitecture(self, device: Handle) -> int:
        return self._gpu(device).product.architecture

    def nvmlDeviceGetMemoryInfo(self, handle: Handle, version: int | None = None) -> Any:
        gpu = self._gpu(handle)
        if handle.mig is not None:
            total, used, reserved = gpu.mig_devices[handle.mig].memory_bytes, 0, 0
        else:
            total, used = gpu.product.memory_bytes, gpu.memory_used_bytes
            reserved = gpu.memory_reserved_bytes
        if version is None:
            legacy = pynvml.c_nvmlMemory_t()
            legacy.total, legacy.used = total, used + reserved
            legacy.free = total - legacy.used
            return legacy
        if version != pynvml.nvmlMemory_v2:
            raise _error(pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        memory = pynvml.c_nvmlMemory_v2_t()
        memory.version = version
        memory.total, memory.reserved, memory.used = total, reserved, used
        memory.free = total - reserved - used
        return memory

    def nvmlDeviceGetPciInfo(self, handle: Handle) -> Any:
        return _pci_info(self._whole(handle).pci_bus_id)

    # --- MIG ----------------------------------------------------------------------------

    def nvmlDeviceGetMigMode(self, device: Handle) -> list[int]:
        gpu = self._whole(device)
        if not gpu.product.mig_capable:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = pynvml.NVML_DEVICE_MIG_ENABLE if gpu.mig_enabled else pynvml.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, device: Handle) -> int:
        gpu = self._whole(device)
        if not gpu.product.mig_capable:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, device: Handle, index: int) -> Handle:
        gpu = self._whole(device)
        if not gpu.mig_enabled:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if not 0 <= index < len(gpu.mig_devices):
            raise _error(pynvml.NVML_ERROR_NOT_FOUND)
        return Handle(device.index, index)

    def nvmlDeviceGetGpuInstanceId(self, device: Handle) -> int:
        gpu = self._gpu(device)
        if device.mig is None:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.mig_devices[device.mig].gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, device: Handle) -> int:
        gpu = self._gpu(device)
        if device.mig is None:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.mig_devices[device.mig].compute_instance_id

    # --- topology -----------------------------------------------------------------------

    def nvmlDeviceGetTopologyCommonAncestor(self, device1: Handle, device2: Handle) -> int:
        a, b = self._whole(device1).index, self._whole(device2).index
        if a == b:
            return int(pynvml.NVML_TOPOLOGY_INTERNAL)
        return recorded.NVML_LEVEL[self.machine.pcie[(min(a, b), max(a, b))]]

    def _link(self, device: Handle, link: int) -> recorded.RecordedNvLink:
        gpu = self._whole(device)
        if not gpu.product.nvlinks:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if not 0 <= link < pynvml.NVML_NVLINK_MAX_LINKS:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if link >= len(gpu.nvlinks):
            if link < gpu.product.nvlinks:  # a physical link with nothing attached
                return recorded.RecordedNvLink("", False, gpu.product.nvlink_version, False)
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.nvlinks[link]

    def nvmlDeviceGetNvLinkState(self, device: Handle, link: int) -> int:
        active = self._link(device, link).active
        return int(pynvml.NVML_FEATURE_ENABLED if active else pynvml.NVML_FEATURE_DISABLED)

    def nvmlDeviceGetNvLinkVersion(self, device: Handle, link: int) -> int:
        return self._link(device, link).version

    def nvmlDeviceGetNvLinkRemotePciInfo(self, device: Handle, link: int) -> Any:
        nvlink = self._link(device, link)
        if not nvlink.active:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return _pci_info(nvlink.remote_bus_id)

    def nvmlDeviceGetNvLinkRemoteDeviceType(self, handle: Handle, link: int) -> int:
        nvlink = self._link(handle, link)
        if not nvlink.active:
            return int(pynvml.NVML_NVLINK_DEVICE_TYPE_UNKNOWN)
        if nvlink.remote_is_switch:
            return int(pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH)
        return int(pynvml.NVML_NVLINK_DEVICE_TYPE_GPU)

    def nvmlDeviceGetCpuAffinity(self, handle: Handle, cpuSetSize: int) -> Any:
        gpu = self._whole(handle)
        words = (ctypes.c_ulonglong * cpuSetSize)()
        for cpu in gpu.cpus:
            if cpu // 64 < cpuSetSize:
                words[cpu // 64] |= 1 << (cpu % 64)
        return words

    def nvmlDeviceGetNumaNodeId(self, handle: Handle) -> int:
        gpu = self._whole(handle)
        if gpu.numa_node is None:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.numa_node

    # --- health -------------------------------------------------------------------------

    def nvmlDeviceGetTemperature(self, handle: Handle, sensor: int) -> int:
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self._whole(handle).temperature_c

    def nvmlDeviceGetTemperatureThreshold(self, handle: Handle, threshold: int) -> int:
        gpu = self._whole(handle)
        if threshold == pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN:
            return gpu.product.slowdown_c
        if threshold == pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN:
            return gpu.product.slowdown_c + 5
        raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)

    def nvmlDeviceGetCurrPcieLinkGeneration(self, handle: Handle) -> int:
        gpu = self._whole(handle)
        return gpu.pcie_generation or gpu.product.pcie_generation

    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle: Handle) -> int:
        return self._whole(handle).product.pcie_generation

    def nvmlDeviceGetCurrPcieLinkWidth(self, handle: Handle) -> int:
        return self._whole(handle).pcie_width

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle: Handle) -> int:
        self._whole(handle)
        return 16

    def nvmlDeviceGetRetiredPages(self, device: Handle, sourceFilter: int) -> list[int]:
        gpu = self._whole(device)
        if gpu.product.row_remapping or not gpu.product.ecc:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        count = (
            gpu.retired_pages_dbe
            if sourceFilter == pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR
            else gpu.retired_pages_sbe
        )
        return [0x1000 * (n + 1) for n in range(count)]

    def nvmlDeviceGetRetiredPagesPendingStatus(self, device: Handle) -> int:
        gpu = self._whole(device)
        if gpu.product.row_remapping or not gpu.product.ecc:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return int(gpu.retired_pending)

    def nvmlDeviceGetRemappedRows(self, device: Handle) -> tuple[int, int, int, int]:
        gpu = self._whole(device)
        if not gpu.product.row_remapping:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return (
            gpu.remapped_correctable,
            gpu.remapped_uncorrectable,
            int(gpu.remap_pending),
            int(gpu.remap_failure),
        )

    def nvmlDeviceGetTotalEccErrors(
        self,
        handle: Handle,
        errorType: int,
        counterType: int,
    ) -> int:
        gpu = self._whole(handle)
        if not gpu.product.ecc:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        uncorrected = errorType == pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
        volatile = counterType == pynvml.NVML_VOLATILE_ECC
        return gpu.ecc_uncorrected_volatile if uncorrected and volatile else 0

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Handle) -> list[Any]:
        gpu = self._gpu(handle)
        return [
            pynvml.nvmlFriendlyObject(
                {
                    "pid": process.pid,
                    "usedGpuMemory": process.used_bytes,
                    "gpuInstanceId": 0xFFFFFFFF,
                    "computeInstanceId": 0xFFFFFFFF,
                }
            )
            for process in gpu.processes
        ]

    # --- events -------------------------------------------------------------------------

    def nvmlDeviceGetSupportedEventTypes(self, handle: Handle) -> int:
        gpu = self._whole(handle)
        supported = pynvml.nvmlEventTypeXidCriticalError | pynvml.nvmlEventTypePState
        if gpu.product.ecc:
            supported |= pynvml.nvmlEventTypeDoubleBitEccError
            supported |= pynvml.nvmlEventTypeSingleBitEccError
        return int(supported)

    def nvmlEventSetCreate(self) -> EventSet:
        self._ready()
        event_set = EventSet()
        self._sets.append(event_set)
        return event_set

    def nvmlDeviceRegisterEvents(
        self,
        handle: Handle,
        eventTypes: int,
        eventSet: EventSet,
    ) -> None:
        supported = self.nvmlDeviceGetSupportedEventTypes(handle)
        if eventTypes & ~supported:
            raise _error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        eventSet.registered[handle.index] = eventSet.registered.get(handle.index, 0) | eventTypes
        self._deliver()

    def nvmlEventSetWait(self, eventSet: EventSet, timeoutms: int) -> Any:
        self._ready()
        if eventSet.freed:
            raise _error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if not eventSet.pending:
            raise _error(pynvml.NVML_ERROR_TIMEOUT)
        event = eventSet.pending.popleft()
        return pynvml.nvmlFriendlyObject(
            {
                "device": Handle(event.gpu),
                "eventType": event.event_type,
                "eventData": event.data,
                "gpuInstanceId": 0xFFFFFFFF,
                "computeInstanceId": 0xFFFFFFFF,
            }
        )

    def nvmlEventSetFree(self, eventSet: EventSet) -> None:
        self._ready()
        eventSet.freed = True


def _pci_info(bus_id: str) -> Any:
    info = pynvml.nvmlPciInfo_t()
    domain, bus, rest = bus_id.split(":")
    device = rest.split(".")[0]
    info.busId = bus_id.encode()
    info.busIdLegacy = f"{int(domain, 16):04X}:{bus}:{device}.0".encode()
    info.domain, info.bus, info.device = int(domain, 16), int(bus, 16), int(device, 16)
    info.pciDeviceId = 0x20B010DE
    return info
