"""Recorded machines: what NVML would say about a real box, as frozen data.

Owns :class:`RecordedMachine` (per-GPU identity, memory, PCI, NVLinks per link, affinity,
health counters, processes, MIG instances, scripted events) and :func:`machine_from_matrix`,
which turns an ``nvidia-smi topo -m`` recording plus a product catalog entry into one. The
fake NVML backend (``fake_nvml``) serves these records through pynvml's API.

What a matrix does not say is inferred, and the inference is documented where it is made:
the PCIe common ancestor of two GPUs whose cell shows NV# (from shared NIC proximity, else
NUMA), and whether NVLinks go through an NVSwitch (a GPU whose NV# cells add up to more links
than the GPU has must reach its peers through a switch).

Must not do: I/O (callers pass text), talk to NVML.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import pynvml

from kubeinfer.gpu import smi_topo
from kubeinfer.planning.gpu import topology

GIB = 1024**3

#: NVML_TOPOLOGY_* value of each printed PCIe level.
NVML_LEVEL: Mapping[topology.PcieLevel, int] = {
    topology.PcieLevel.SAME_BOARD: pynvml.NVML_TOPOLOGY_INTERNAL,
    topology.PcieLevel.PIX: pynvml.NVML_TOPOLOGY_SINGLE,
    topology.PcieLevel.PXB: pynvml.NVML_TOPOLOGY_MULTIPLE,
    topology.PcieLevel.PHB: pynvml.NVML_TOPOLOGY_HOSTBRIDGE,
    topology.PcieLevel.NODE: pynvml.NVML_TOPOLOGY_NODE,
    topology.PcieLevel.SYS: pynvml.NVML_TOPOLOGY_SYSTEM,
}


@dataclass(frozen=True)
class Product:
    """What a GPU model reports about itself."""

    name: str
    """nvmlDeviceGetName."""
    architecture: int
    """NVML_DEVICE_ARCH_*."""
    memory_bytes: int
    """Total framebuffer."""
    pcie_generation: int
    """Max PCIe generation."""
    nvlinks: int = 0
    """Physical NVLinks (0 for PCIe-only products)."""
    nvlink_version: int = 0
    """NVML_NVLINK_VERSION_* of its links."""
    mig_capable: bool = False
    """Whether MIG can be enabled."""
    row_remapping: bool = False
    """Ampere and later remap rows instead of retiring pages."""
    ecc: bool = True
    """Whether ECC counters exist."""
    slowdown_c: int = 87
    """Slowdown temperature threshold."""


#: Products the recorded fixtures use, keyed by a token their titles mention.
CATALOG: Mapping[str, Product] = {
    "B200": Product(
        "NVIDIA B200", pynvml.NVML_DEVICE_ARCH_BLACKWELL, 180 * GIB, 5, 18, 7, True, True
    ),
    "H100": Product(
        "NVIDIA H100 80GB HBM3", pynvml.NVML_DEVICE_ARCH_HOPPER, 80 * GIB, 5, 18, 6, True, True
    ),
    "H20": Product("NVIDIA H20", pynvml.NVML_DEVICE_ARCH_HOPPER, 141 * GIB, 5, 18, 6, True, True),
    "A100 80GB": Product(
        "NVIDIA A100 80GB PCIe", pynvml.NVML_DEVICE_ARCH_AMPERE, 80 * GIB, 4, 12, 4, True, True
    ),
    "A100": Product(
        "NVIDIA A100-SXM4-40GB", pynvml.NVML_DEVICE_ARCH_AMPERE, 40 * GIB, 4, 12, 4, True, True
    ),
    "V100": Product(
        "Tesla V100-SXM2-16GB", pynvml.NVML_DEVICE_ARCH_VOLTA, 16 * GIB, 3, 6, 2, slowdown_c=83
    ),
    "L40S": Product("NVIDIA L40S", pynvml.NVML_DEVICE_ARCH_ADA, 48 * GIB, 4, row_remapping=True),
    "RTX 4090": Product(
        "NVIDIA GeForce RTX 4090", pynvml.NVML_DEVICE_ARCH_ADA, 24 * GIB, 4, ecc=False
    ),
}


@dataclass(frozen=True)
class RecordedNvLink:
    """One NVLink of a GPU."""

    remote_bus_id: str
    """PCI bus id at the far end: a GPU's, or an NVSwitch's."""
    remote_is_switch: bool
    """True when the far end is an NVSwitch."""
    version: int
    """NVML_NVLINK_VERSION_*."""
    active: bool = True
    """nvmlDeviceGetNvLinkState."""


@dataclass(frozen=True)
class RecordedMig:
    """One MIG device (GPU instance + compute instance)."""

    gpu_instance_id: int
    compute_instance_id: int
    profile: str
    """e.g. ``3g.40gb``."""
    memory_bytes: int
    uuid: str


@dataclass(frozen=True)
class RecordedProcess:
    """A compute process holding GPU memory."""

    pid: int
    used_bytes: int


@dataclass(frozen=True)
class RecordedGpu:
    """Everything NVML reports about one GPU."""

    index: int
    uuid: str
    product: Product
    pci_bus_id: str
    numa_node: int | None
    cpus: tuple[int, ...]
    nvlinks: tuple[RecordedNvLink, ...] = ()
    memory_used_bytes: int = 0
    memory_reserved_bytes: int = 512 * 1024**2
    mig_enabled: bool = False
    mig_devices: tuple[RecordedMig, ...] = ()
    temperature_c: int = 40
    pcie_generation: int | None = None
    """Trained generation; None means the product's max."""
    pcie_width: int = 16
    """Trained width (max is 16)."""
    retired_pages_sbe: int = 0
    retired_pages_dbe: int = 0
    retired_pending: bool = False
    remapped_correctable: int = 0
    remapped_uncorrectable: int = 0
    remap_pending: bool = False
    remap_failure: bool = False
    ecc_uncorrected_volatile: int = 0
    processes: tuple[RecordedProcess, ...] = ()
    lost: bool = False
    """Fell off the bus: every query answers NVML_ERROR_GPU_IS_LOST."""


@dataclass(frozen=True)
class RecordedEvent:
    """An event NVML delivers through an event set."""

    gpu: int
    event_type: int
    """nvmlEventType* bit."""
    data: int = 0
    """XID number for XID events."""


@dataclass(frozen=True)
class RecordedMachine:
    """One machine as NVML sees it."""

    name: str
    driver_version: str
    gpus: tuple[RecordedGpu, ...]
    pcie: Mapping[tuple[int, int], topology.PcieLevel] = field(hash=False)
    """Common ancestor per GPU pair (low, high)."""
    nic_levels: Mapping[int, tuple[topology.PcieLevel, ...]] = field(hash=False)
    """PCIe level from each GPU to each NIC (not an NVML fact; recorded for placement)."""
    events: tuple[RecordedEvent, ...] = ()


def guess_product(title: str, gpu_count: int) -> Product:
    """Pick the catalog product a recording's title names for ``gpu_count`` GPUs."""
    segments = [
        text
        for count, text in re.findall(r"(\d+)\s*\u00d7\s*([^,()]+)", title)
        if int(count) == gpu_count
    ]
    for haystack in [*segments, title]:
        for token, product in CATALOG.items():
            if token in haystack:
                return product
    msg = f"no catalog product named in {title!r}"
    raise ValueError(msg)


def _uuid(machine: str, index: int) -> str:
    digest = hashlib.sha256(f"{machine}/{index}".encode()).hexdigest()
    return f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def _bus_id(index: int, *, switch: bool = False) -> str:
    bus = (0xC0 if switch else 0x07) + index * 0x0C
    return f"00000000:{bus:02X}:00.0"


def _inferred_pcie(
    matrix: smi_topo.TopoMatrix, a: str, b: str, numa: Mapping[str, int | None]
) -> topology.PcieLevel:
    """PCIe level hidden behind an NV# cell.

    PCIe is a tree, so two GPUs are at least as close as the farther of their paths to any
    third device (GPU or NIC) whose cells to both are PCIe levels; take the best such bound,
    else NODE on one NUMA node and SYS across.
    """
    bounds = [
        max(topology.PcieLevel[matrix.cell(a, c)], topology.PcieLevel[matrix.cell(b, c)])
        for c in matrix.columns
        if c not in (a, b)
        and matrix.cell(a, c) in topology.PcieLevel.__members__
        and matrix.cell(b, c) in topology.PcieLevel.__members__
    ]
    numa_level = topology.PcieLevel.NODE if numa[a] == numa[b] else topology.PcieLevel.SYS
    return min([*bounds, numa_level])


def _numa_nodes(matrix: smi_topo.TopoMatrix) -> dict[str, int | None]:
    """NUMA per GPU; when the matrix has no NUMA column, number distinct CPU sets instead."""
    if any(value is not None for value in matrix.numa_affinity.values()):
        return {gpu: matrix.numa_affinity.get(gpu) for gpu in matrix.gpus}
    sets: dict[tuple[int, ...], int] = {}
    out: dict[str, int | None] = {}
    for gpu in matrix.gpus:
        cpus = matrix.cpu_affinity.get(gpu)
        out[gpu] = None if cpus is None else sets.setdefault(cpus, len(sets))
    return out


def machine_from_matrix(
    matrix: smi_topo.TopoMatrix,
    *,
    name: str,
    product: Product | None = None,
    driver_version: str = "550.127.05",
) -> RecordedMachine:
    """Build the machine a ``nvidia-smi topo -m`` recording describes."""
    gpus = matrix.gpus
    chosen = product or guess_product(matrix.title, len(gpus))
    numa = _numa_nodes(matrix)
    pcie: dict[tuple[int, int], topology.PcieLevel] = {}
    for a, label_a in enumerate(gpus):
        for b in range(a + 1, len(gpus)):
            cell = matrix.cell(label_a, gpus[b])
            pcie[(a, b)] = (
                _inferred_pcie(matrix, label_a, gpus[b], numa)
                if matrix.nvlinks(label_a, gpus[b])
                else topology.PcieLevel[cell]
            )
    physical = chosen.nvlinks or 18
    records: list[RecordedGpu] = []
    for index, label in enumerate(gpus):
        peers = {b: matrix.nvlinks(label, other) for b, other in enumerate(gpus) if b != index}
        switched = sum(peers.values()) > physical
        links: list[RecordedNvLink] = []
        if switched:
            count = max(peers.values())
            links = [
                RecordedNvLink(_bus_id(n % 4, switch=True), True, chosen.nvlink_version)
                for n in range(count)
            ]
        else:
            for peer, count in peers.items():
                links += [RecordedNvLink(_bus_id(peer), False, chosen.nvlink_version)] * count
        records.append(
            RecordedGpu(
                index=index,
                uuid=_uuid(name, index),
                product=chosen,
                pci_bus_id=_bus_id(index),
                numa_node=numa[label],
                cpus=matrix.cpu_affinity.get(label) or (),
                nvlinks=tuple(links),
            )
        )
    nic_levels = {
        index: tuple(topology.PcieLevel[matrix.cell(label, nic)] for nic in matrix.nics)
        for index, label in enumerate(gpus)
    }
    return RecordedMachine(
        name=name,
        driver_version=driver_version,
        gpus=tuple(records),
        pcie=pcie,
        nic_levels=nic_levels,
    )


def with_gpu(machine: RecordedMachine, index: int, **changes: object) -> RecordedMachine:
    """A copy of ``machine`` with fields of one GPU replaced (health, MIG, processes, lost)."""
    gpus = list(machine.gpus)
    gpus[index] = dataclasses.replace(gpus[index], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(machine, gpus=tuple(gpus))


def _mig_devices(machine: str, gpu: int, profiles: list[str]) -> tuple[RecordedMig, ...]:
    devices = []
    for slot, profile in enumerate(profiles):
        gib = int(re.sub(r"\D", "", profile.split(".")[1]))
        digest = hashlib.sha256(f"{machine}/{gpu}/mig{slot}".encode()).hexdigest()
        uuid = f"MIG-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
        devices.append(RecordedMig(slot + 1, 0, profile, gib * GIB, uuid))
    return tuple(devices)


def _apply(machine: RecordedMachine, verb: str, args: list[str]) -> RecordedMachine:
    gpu = int(args[0])
    if verb == "mig":
        return with_gpu(
            machine, gpu, mig_enabled=True, mig_devices=_mig_devices(machine.name, gpu, args[1:])
        )
    if verb == "lost":
        return with_gpu(machine, gpu, lost=True)
    if verb == "temperature":
        return with_gpu(machine, gpu, temperature_c=int(args[1]))
    if verb == "pcie":
        return with_gpu(machine, gpu, pcie_generation=int(args[1]), pcie_width=int(args[2]))
    if verb == "xid":
        event = RecordedEvent(gpu, pynvml.nvmlEventTypeXidCriticalError, int(args[1]))
        return dataclasses.replace(machine, events=(*machine.events, event))
    msg = f"unknown fixture directive {verb!r}"
    raise ValueError(msg)


def machine_from_recording(
    text: str, *, name: str, product: Product | None = None
) -> RecordedMachine:
    """A machine from a recording: its matrix plus ``# kubeinfer: <verb> <gpu> …`` directives.

    Directives describe what a matrix cannot: ``mig <gpu> <profile>…``, ``lost <gpu>``,
    ``temperature <gpu> <°C>``, ``pcie <gpu> <gen> <width>`` (trained link), ``xid <gpu> <n>``.
    """
    machine = machine_from_matrix(smi_topo.parse(text), name=name, product=product)
    for line in text.splitlines():
        match = re.match(r"^#\s*kubeinfer:\s*(\w+)\s+(.*)$", line)
        if match:
            machine = _apply(machine, match.group(1), match.group(2).split())
    return machine
