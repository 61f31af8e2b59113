"""The node agent's loop: NVML events and memory samples in, its own Node's metadata out.

Owns :class:`Agent`. It holds NVML open, registers an event set for XID and ECC events
(``gpu.events.EventWatch``) and waits on it in bounded slices; between waits it samples every
GPU's memory at the sample interval and re-runs full discovery at the resync interval. What it
publishes (``agent.snapshot``) is server-side applied under field manager ``kubeinfer-agent``:

- its Node's labels and the ``gpu.kubeinfer.io/inventory`` annotation, at once after an
  XID/ECC event or any change other than memory, memory-only changes at most every
  ``memory_publish_s``, and unchanged content again every ``resync_s`` (freshness);
- its node's DRA ResourceSlice (driver ``gpu.kubeinfer.io``) whenever the devices change,
  unless the cluster does not serve ``resource.k8s.io/v1``.

Must not: write any Node but its own (the admission policy in ``manifests/rbac`` refuses it
anyway), judge health, or choose placements.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pynvml
from pydantic import ValidationError

from kubeinfer.agent import sampling, snapshot
from kubeinfer.api import API_VERSION, base
from kubeinfer.api import gpu_pool as pool_api
from kubeinfer.api import node_inventory as inv
from kubeinfer.gpu import backend, discovery, events
from kubeinfer.kube import client, errors
from kubeinfer.planning.gpu import topology
from kubeinfer.planning.labels import INVENTORY_ANNOTATION

FIELD_MANAGER = "kubeinfer-agent"
DEFAULT_SAMPLE_INTERVAL_S = base.duration_seconds(pool_api.OomPrediction().sample_interval)
DEFAULT_WINDOW_S = base.duration_seconds(pool_api.OomPrediction().window)
MIB = 1024**2
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Cadences of the agent.

    ``sample_interval_s`` / ``window_s`` left None follow the GPUPools that select the node
    (their ``oomPrediction``: the shortest interval and the longest window of those enabled),
    re-read every resync, else the GPUPool defaults (10 s, 10 min).
    """

    node: str
    sample_interval_s: float | None = None
    window_s: float | None = None
    resync_s: float = 60.0
    memory_publish_s: float = 30.0
    event_wait_s: float = 0.5
    """Longest single wait on the NVML event set (bounds the reaction to a stop request)."""
    dra: bool = True
    """Publish a ResourceSlice for the node's GPUs."""
    gfd_labels: bool = True
    """Publish the ``nvidia.com/*`` labels (off where GPU Feature Discovery already does)."""


class Agent:
    """One node's agent over an NVML backend and the API server."""

    def __init__(
        self,
        nvml: backend.NvmlBackend,
        kube: client.Kube,
        settings: Settings,
        *,
        nic_levels: Mapping[int, tuple[topology.PcieLevel, ...]] | None = None,
    ) -> None:
        self._nvml = nvml
        self._kube = kube
        self._settings = settings
        self._nic_levels = nic_levels
        self._xids: dict[int, tuple[int, ...]] = {}
        self._sample_interval_s = settings.sample_interval_s or DEFAULT_SAMPLE_INTERVAL_S
        self._memory = sampling.MemoryWindow(settings.window_s or DEFAULT_WINDOW_S)
        self._node_labels: dict[str, str] = {}
        self._snapshot: discovery.NodeInventory | None = None
        self._published_content = ""
        self._published_structure = ""
        self._published_at = -1e9
        self._published_slice: dict[str, Any] | None = None
        self._dra = settings.dra
        self._node_uid = ""
        self.stop = asyncio.Event()

    def _discover(self) -> discovery.NodeInventory:
        self._snapshot = discovery.discover(
            self._nvml, nic_levels=self._nic_levels, xids=self._xids, name=self._settings.node
        )
        return self._snapshot

    def _used_bytes(self, handle: Any) -> int | None:
        try:
            return int(
                self._nvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2).used
            )
        except (pynvml.NVMLError_FunctionNotFound, pynvml.NVMLError_ArgumentVersionMismatch):
            legacy = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            return int(legacy.used)
        except pynvml.NVMLError_NotSupported:
            return None

    def _sample_memory(self, handles: Mapping[int, Any], at_s: float) -> None:
        for index, handle in handles.items():
            try:
                used = self._used_bytes(handle)
            except pynvml.NVMLError_GpuIsLost:
                self._memory.forget(index)
                continue
            if used is not None:
                self._memory.add(index, at_s, int(used) / MIB)

    def _on_events(self, batch: tuple[events.GpuEvent, ...]) -> None:
        for event in batch:
            if event.kind == "xid":
                seen = set(self._xids.get(event.index, ()))
                self._xids[event.index] = tuple(sorted(seen | {event.data}))
            log.warning(
                "Observed NVML %s event on GPU %d of node %s (data %d)",
                event.kind,
                event.index,
                self._settings.node,
                event.data,
            )

    async def _publish(self, *, urgent: str = "") -> None:
        """Apply the Node metadata (and ResourceSlice) when due; ``urgent`` names why it is now."""
        snap = self._snapshot
        if snap is None:
            return
        trends = self._memory.trends()
        content = inv.dump(snapshot.inventory(snap, trends=trends, time=""))
        without_memory = inv.dump(snapshot.inventory(snap, trends={}, time=""))
        now = time.monotonic()
        age = now - self._published_at
        changed = content != self._published_content
        structural = without_memory != self._published_structure
        if not (
            urgent
            or structural
            or (changed and age >= self._settings.memory_publish_s)
            or age >= self._settings.resync_s
        ):
            return
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = snapshot.inventory(snap, trends=trends, time=stamp)
        await self._kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": self._settings.node,
                    "labels": snapshot.labels(snap, gfd=self._settings.gfd_labels),
                    "annotations": {INVENTORY_ANNOTATION: inv.dump(body)},
                },
            }
        )
        self._published_content, self._published_at = content, now
        self._published_structure = without_memory
        log.info(
            "Published GPU inventory of node %s: %d GPUs, %d lost (%s)",
            self._settings.node,
            len(snap.devices),
            len(snap.lost),
            urgent or ("changed" if changed else "refresh"),
        )
        await self._publish_slice(snap)

    async def _publish_slice(self, snap: discovery.NodeInventory) -> None:
        if not self._dra:
            return
        wanted = snapshot.resource_slice(snap, node=self._settings.node, node_uid=self._node_uid)
        if wanted == self._published_slice:
            return
        try:
            await self._kube.apply(wanted)
        except errors.NotServed:
            self._dra = False
            log.warning(
                "Skipped ResourceSlice of node %s: resource.k8s.io/v1 is not served",
                self._settings.node,
            )
            return
        self._published_slice = wanted
        log.info(
            "Published ResourceSlice %s with %d devices",
            wanted["metadata"]["name"],
            len(wanted["spec"]["devices"]),
        )

    async def _follow_pools(self) -> None:
        """Take the sample cadence from the GPUPools selecting this node (unless set by flag)."""
        settings = self._settings
        if settings.sample_interval_s and settings.window_s:
            return
        try:
            pools = await self._kube.list_objects(API_VERSION, pool_api.KIND)
        except errors.KubeError as err:
            log.warning("Kept the memory sample cadence: GPUPools unreadable (%s)", err.message)
            return
        wanted = []
        for body in pools:
            try:
                spec = pool_api.GPUPoolSpec.model_validate(body.get("spec") or {})
            except ValidationError:
                continue
            if spec.oom_prediction.enabled and spec.node_selector.matches(self._node_labels):
                wanted.append(spec.oom_prediction)
        if not wanted:
            return
        interval = settings.sample_interval_s or min(
            base.duration_seconds(o.sample_interval) for o in wanted
        )
        window = settings.window_s or max(base.duration_seconds(o.window) for o in wanted)
        if (interval, window) != (self._sample_interval_s, self._memory.window_s):
            self._sample_interval_s, self._memory.window_s = interval, window
            log.info(
                "Set memory sampling of node %s to every %gs over %gs from %d GPUPools",
                settings.node,
                interval,
                window,
                len(wanted),
            )

    async def run(self) -> None:
        """Publish until :attr:`stop` is set. NVML stays initialised for the event set's life."""
        node = await self._kube.get("v1", "Node", None, self._settings.node)
        if node is None:
            msg = f"node {self._settings.node!r} does not exist"
            raise backend.GpuError(msg)
        self._node_uid = str(node["metadata"]["uid"])
        self._node_labels = dict(node["metadata"].get("labels") or {})
        await self._follow_pools()
        try:
            self._nvml.nvmlInit()
        except pynvml.NVMLError as err:
            msg = f"NVML could not start: {err}"
            raise backend.NvmlUnavailable(msg) from err
        try:
            await self._loop()
        finally:
            self._nvml.nvmlShutdown()

    async def _loop(self) -> None:
        snap = await asyncio.to_thread(self._discover)
        handles = {d.index: self._nvml.nvmlDeviceGetHandleByIndex(d.index) for d in snap.devices}
        watch = events.EventWatch(self._nvml, handles)
        start = time.monotonic()
        next_sample = start
        next_resync = start + self._settings.resync_s
        try:
            await self._publish(urgent="start")
            while not self.stop.is_set():
                now = time.monotonic()
                wait = min(next_sample, next_resync) - now
                wait = max(0.0, min(wait, self._settings.event_wait_s))
                batch = await asyncio.to_thread(watch.poll, timeout_ms=int(wait * 1000))
                now = time.monotonic()
                if batch:
                    self._on_events(batch)
                if now >= next_sample:
                    self._sample_memory(handles, now - start)
                    next_sample = max(next_sample + self._sample_interval_s, now)
                if now >= next_resync:
                    await self._follow_pools()
                if batch or now >= next_resync:
                    snap = await asyncio.to_thread(self._discover)
                    handles = {i: h for i, h in handles.items() if i not in snap.lost}
                    next_resync = now + self._settings.resync_s
                await self._publish(urgent="event" if batch else "")
        finally:
            watch.close()
