"""Loading recorded machines from disk and discovering them through the fake NVML.

Owns the only file reads of ``kubeinfer.gpu``: a directory of ``nvidia-smi topo -m``
recordings (``*.txt``) becomes named :class:`~kubeinfer.gpu.recorded.RecordedMachine`s, and
:func:`topology_of` runs the real discovery code over a :class:`~kubeinfer.gpu.fake_nvml.FakeNvml`
of one, so tests, benchmarks and the e2e harness all see topologies the way a node agent does.

Must not do: write files, choose placements.
"""

from __future__ import annotations

from pathlib import Path

from kubeinfer.gpu import discovery, fake_nvml, recorded
from kubeinfer.planning.gpu import topology


def load(path: Path) -> recorded.RecordedMachine:
    """One recording; the machine is named after the file."""
    return recorded.machine_from_recording(path.read_text(encoding="utf-8"), name=path.name)


def load_dir(directory: Path) -> dict[str, recorded.RecordedMachine]:
    """Every ``*.txt`` recording in ``directory`` (README files are skipped), by file name."""
    return {path.name: load(path) for path in sorted(directory.glob("*.txt"))}


def inventory_of(machine: recorded.RecordedMachine) -> discovery.NodeInventory:
    """Discover a recorded machine through the fake NVML, NIC levels included."""
    return discovery.discover(
        fake_nvml.FakeNvml(machine), nic_levels=machine.nic_levels, name=machine.name
    )


def topology_of(machine: recorded.RecordedMachine) -> topology.NodeTopology:
    """The topology a node agent would publish for ``machine``."""
    return inventory_of(machine).topology
