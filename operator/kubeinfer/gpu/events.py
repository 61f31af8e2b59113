"""The NVML event watch: XID and ECC events through an NVML event set.

Owns :class:`EventWatch`, which registers every present GPU for the event types it supports
among XID-critical, single- and double-bit ECC, drains the set with a bounded wait, and
translates each event into a :class:`GpuEvent` keyed by GPU index. The node agent feeds the
XIDs it has seen into ``discovery.discover(xids=…)`` so the health checks can judge them.

Must not do: sleep or loop forever (the caller owns the cadence), judge health.
"""

from __future__ import annotations

import ctypes
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import pynvml

from kubeinfer.gpu import backend as nvml_backend

WATCHED = (
    pynvml.nvmlEventTypeXidCriticalError
    | pynvml.nvmlEventTypeDoubleBitEccError
    | pynvml.nvmlEventTypeSingleBitEccError
)

_KINDS = {
    pynvml.nvmlEventTypeXidCriticalError: "xid",
    pynvml.nvmlEventTypeDoubleBitEccError: "ecc-double-bit",
    pynvml.nvmlEventTypeSingleBitEccError: "ecc-single-bit",
}


@dataclass(frozen=True)
class GpuEvent:
    """One event NVML delivered."""

    index: int
    kind: str
    """``xid``, ``ecc-double-bit`` or ``ecc-single-bit``."""
    data: int
    """The XID number for XID events."""


def _handle_key(handle: Any) -> Hashable:
    """pynvml hands out a fresh pointer object per call; key real handles by address."""
    if isinstance(handle, ctypes._Pointer):
        return ctypes.cast(handle, ctypes.c_void_p).value
    return handle  # type: ignore[no-any-return]


class EventWatch:
    """An open NVML event set over the node's GPUs; call :meth:`close` when done."""

    def __init__(self, nvml: nvml_backend.NvmlBackend, handles: dict[int, Any]) -> None:
        self._nvml = nvml
        self._index_by_handle = {_handle_key(h): i for i, h in handles.items()}
        self._set = nvml.nvmlEventSetCreate()
        for handle in handles.values():
            supported = nvml.nvmlDeviceGetSupportedEventTypes(handle)
            if supported & WATCHED:
                nvml.nvmlDeviceRegisterEvents(handle, supported & WATCHED, self._set)

    def poll(self, *, timeout_ms: int, limit: int = 64) -> tuple[GpuEvent, ...]:
        """Events waiting now, the first wait bounded by ``timeout_ms``; at most ``limit``."""
        events: list[GpuEvent] = []
        wait = timeout_ms
        while len(events) < limit:
            try:
                data = self._nvml.nvmlEventSetWait(self._set, wait)
            except pynvml.NVMLError_Timeout:
                break
            except pynvml.NVMLError_GpuIsLost:
                continue
            wait = 0
            index = self._index_by_handle.get(_handle_key(data.device), -1)
            kind = _KINDS.get(int(data.eventType), f"type-{int(data.eventType):#x}")
            events.append(GpuEvent(index, kind, int(data.eventData)))
        return tuple(events)

    def close(self) -> None:
        """Free the event set."""
        self._nvml.nvmlEventSetFree(self._set)
