"""The node agent's published contract: one versioned JSON annotation on each GPU node.

Owns :class:`NodeInventory` (schema version 1) and its parts, the annotation and label keys, and
:func:`parse` / :func:`dump`. The node agent (``kubeinfer agent``) writes it; the GPUPool and
InferenceService controllers read it. Both sides import this module, so they cannot drift; a test
round-trips what the agent builds through what the controllers parse.

What it carries, per GPU: identity, memory, PCI bus id, NUMA node, link rates, MIG devices,
raw health counters (judged by the operator against each pool's ``healthPolicy``, not by the
agent) and a memory trend fitted over the agent's sample window (``planning.gpu.oom.fit``); per pair: the PCIe common
ancestor and NVLinks (``"0-1": "NV12/NODE"``, ``NVS`` when through an NVSwitch), as
``nvidia-smi topo -m`` prints them. Documented in ``docs/gpu.md``.

Must not import any other layer or decide anything.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field, ValidationError

from kubeinfer.api.base import ApiModel

SCHEMA_VERSION = 1
DRIVER = "gpu.kubeinfer.io"
"""DRA driver name of the agent's ResourceSlices and the attribute domain of its devices."""
DEVICE_CLASS = "gpu.kubeinfer.io"
"""The DeviceClass (manifests/dra) selecting the agent's devices."""


class MigInstance(ApiModel):
    """One MIG device of a GPU."""

    uuid: str
    gi: int
    """GPU instance id."""
    ci: int
    """Compute instance id."""
    memory_mib: int


class Health(ApiModel):
    """Raw health counters of one GPU as NVML answered; null where NOT_SUPPORTED."""

    lost: bool = False
    xids: list[int] = Field(default_factory=list)
    """Distinct XIDs the event set delivered since the agent started."""
    ecc_uncorrected: int | None = None
    retired_pages: int | None = None
    retired_pending: bool = False
    remapped_rows: int | None = None
    remap_pending: bool = False
    remap_failure: bool = False
    temperature_c: int | None = None
    slowdown_c: int | None = None
    pcie_gen: list[int] | None = None
    """[trained, max]."""
    pcie_width: list[int] | None = None
    """[trained, max]."""


class MemoryTrend(ApiModel):
    """GPU memory in use over the agent's sample window, with its least-squares trend."""

    used_mib: float
    """Latest sample."""
    peak_mib: float
    """Highest sample in the window."""
    slope_mib_per_s: float
    """Theil-Sen slope over the window (median of pairwise slopes)."""
    residual_mib: float
    """Robust spread of the samples around the line (1.4826 x median absolute deviation)."""
    floor_rise_mib: float = 0.0
    """Lowest sample of the window's last third minus the lowest of its first third."""
    samples: int
    window_s: float
    """Seconds between the first and last sample."""


class Gpu(ApiModel):
    """One GPU of the node."""

    index: int
    uuid: str
    name: str
    architecture: str
    memory_mib: int
    pci_bus_id: str
    numa_node: int | None = None
    nvlink_gbps: float = 0.0
    """Unidirectional GB/s of one of its NVLinks (0: none)."""
    pcie_generation: int = 4
    pcie_width: int = 16
    nic_levels: list[str] = Field(default_factory=list)
    """PCIe level to each NIC, in NIC order."""
    mig: bool | None = None
    """MIG mode (null: not MIG-capable)."""
    mig_devices: list[MigInstance] = Field(default_factory=list)
    health: Health = Field(default_factory=Health)
    memory: MemoryTrend | None = None


class NodeInventory(ApiModel):
    """Everything one node's agent publishes."""

    version: Literal[1] = 1
    time: str
    """When the agent took the snapshot (RFC 3339, UTC)."""
    driver_version: str
    gpus: list[Gpu]
    """Every GPU NVML counts, lost ones included (``health.lost``), by index."""
    links: dict[str, str] = Field(default_factory=dict)
    """Per pair ``"a-b"`` (a < b): ``PCIE`` level, or ``NV<n>/<PCIE>`` or ``NVS<n>/<PCIE>``."""


class InventoryError(ValueError):
    """The annotation is not a valid inventory of a known schema version."""


def dump(inventory: NodeInventory) -> str:
    """Compact JSON for the annotation (stable key order, no spaces)."""
    return json.dumps(
        inventory.model_dump(by_alias=True, exclude_defaults=True, mode="json")
        | {"version": SCHEMA_VERSION},
        separators=(",", ":"),
        sort_keys=True,
    )


def parse(text: str) -> NodeInventory:
    """Parse the annotation; raise :class:`InventoryError` naming what is wrong."""
    try:
        raw = json.loads(text)
    except ValueError as err:
        msg = f"inventory annotation is not JSON: {err}"
        raise InventoryError(msg) from err
    if not isinstance(raw, dict):
        msg = "inventory annotation is not a JSON object"
        raise InventoryError(msg)
    if raw.get("version") != SCHEMA_VERSION:
        msg = f"inventory schema version {raw.get('version')!r} is not {SCHEMA_VERSION}"
        raise InventoryError(msg)
    try:
        return NodeInventory.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = f"inventory field {where}: {first['msg']}"
        raise InventoryError(msg) from err


def link_text(pcie: str, nvlinks: int, *, via_switch: bool) -> str:
    """The ``links`` value of one pair."""
    if nvlinks <= 0:
        return pcie
    return f"{'NVS' if via_switch else 'NV'}{nvlinks}/{pcie}"


def parse_link(text: str) -> tuple[str, int, bool]:
    """(PCIe level, NVLinks, through an NVSwitch) of one ``links`` value."""
    if "/" not in text:
        return text, 0, False
    head, pcie = text.split("/", 1)
    switch = head.startswith("NVS")
    return pcie, int(head[3 if switch else 2 :]), switch
