"""Discovery through the fake NVML reproduces every recorded machine, and the fake is pynvml.

Covers: the discovered topology equals each recorded matrix (NV# counts, PCIe levels, NUMA and
CPU affinity); NVSwitch boxes count as all-to-all NVLink with min(link counts) while the
device plugin's view sees none; a GPU that fell off the bus; MIG devices; the fake's return
shapes and error codes match pynvml's; the event watch; the NvmlBackend Protocol.
"""

from __future__ import annotations

import dataclasses
import inspect

import pynvml
import pytest

from kubeinfer.gpu import backend, discovery, events, fake_nvml, recordings, smi_topo
from kubeinfer.planning.gpu import topology
from tests.gpu import paths


def _recordings() -> list[tuple[str, str]]:
    found = []
    for directory in (paths.SHARED, paths.SYNTHETIC):
        if directory.is_dir():
            found += [(p.name, p.read_text()) for p in sorted(directory.glob("*.txt"))]
    return found


@pytest.mark.parametrize(("name", "text"), _recordings(), ids=[n for n, _ in _recordings()])
def test_discovered_topology_equals_the_recorded_matrix(name: str, text: str) -> None:
    matrix = smi_topo.parse(text)
    machine = fake_nvml.recorded.machine_from_recording(text, name=name)
    inventory = recordings.inventory_of(machine)
    topo = inventory.topology
    lost = set(inventory.lost)
    assert len(topo.gpus) == len(matrix.gpus)
    for a, label_a in enumerate(matrix.gpus):
        if a in lost:
            continue
        device = next(d for d in inventory.devices if d.index == a)
        assert device.cpus == (matrix.cpu_affinity[label_a] or ())
        if matrix.numa_affinity[label_a] is not None:
            assert topo.gpus[a].numa_node == matrix.numa_affinity[label_a]
        for b in range(a + 1, len(matrix.gpus)):
            if b in lost:
                continue
            link = topo.link(a, b)
            nv = matrix.nvlinks(label_a, matrix.gpus[b])
            assert link.nvlinks == nv, (name, a, b)
            if not nv:
                assert link.pcie.name == matrix.cell(label_a, matrix.gpus[b]), (name, a, b)


def test_nvswitch_box_is_all_to_all_nvlink_that_the_device_plugin_cannot_see() -> None:
    machine = recordings.load(paths.SYNTHETIC / "hgx2-v100x16-nvswitch.txt")
    topo = recordings.topology_of(machine)
    assert {topo.link(a, b).nvlinks for a in range(16) for b in range(a + 1, 16)} == {6}
    assert all(topo.link(0, b).via_nvswitch for b in range(1, 16))
    assert topo.link(0, 9).allocator_visible_nvlinks == 0
    assert topo.levels == (150.0,)


def test_direct_nvlink_pairs_are_counted_per_link_and_visible_to_the_device_plugin() -> None:
    topo = recordings.topology_of(
        recordings.load(paths.SYNTHETIC / "pcie-a100x16-nvlink-pairs.txt")
    )
    assert topo.link(0, 1) == topology.Link(topology.PcieLevel.PIX, 12)
    assert topo.link(0, 1).allocator_visible_nvlinks == 12
    assert topo.link(0, 2) == topology.Link(topology.PcieLevel.PIX, 0)
    assert topo.link(0, 8) == topology.Link(topology.PcieLevel.SYS, 0)


def test_switch_links_pair_at_the_smaller_link_count() -> None:
    machine = recordings.load(paths.SYNTHETIC / "hgx2-v100x16-nvswitch.txt")
    fewer = dataclasses.replace(machine.gpus[3], nvlinks=machine.gpus[3].nvlinks[:4])
    machine = fake_nvml.recorded.with_gpu(machine, 3, nvlinks=fewer.nvlinks)
    topo = recordings.topology_of(machine)
    assert topo.link(3, 7).nvlinks == 4
    assert topo.link(2, 7).nvlinks == 6


def test_gpu_that_fell_off_the_bus_is_lost_and_has_no_links() -> None:
    inventory = recordings.inventory_of(
        recordings.load(paths.SYNTHETIC / "a100x4-fell-off-bus.txt")
    )
    assert inventory.lost == (2,)
    assert [d.index for d in inventory.devices] == [0, 1, 3]
    assert inventory.topology.link(1, 2) == topology.Link(topology.PcieLevel.SYS, 0)
    assert inventory.topology.link(0, 3).nvlinks == 4
    assert next(s for s in inventory.health if s.index == 2).lost


def test_mig_enabled_gpus_report_their_devices_and_are_not_whole_gpu_candidates() -> None:
    inventory = recordings.inventory_of(recordings.load(paths.SYNTHETIC / "hgx-h100x8-mig.txt"))
    by_index = {d.index: d for d in inventory.devices}
    assert by_index[0].mig_enabled is True
    assert [m.memory_total_bytes // 2**30 for m in by_index[0].mig_devices] == [40, 40]
    assert len(by_index[1].mig_devices) == 7
    assert by_index[1].mig_devices[0].uuid.startswith("MIG-")
    assert by_index[2].mig_enabled is False
    assert inventory.healthy_candidates == (2, 3, 4, 5, 6, 7)


def test_products_without_mig_or_nvlink_answer_not_supported() -> None:
    inventory = recordings.inventory_of(
        recordings.load(paths.shared_recordings() / "aws-g6e-l40s.txt")
    )
    device = inventory.devices[0]
    assert device.mig_enabled is None
    assert device.nvlinks == ()
    assert device.architecture is topology.Architecture.ADA
    assert device.memory_total_bytes == 48 * 2**30


def test_fake_returns_pynvml_shapes_and_raises_pynvml_errors() -> None:
    nvml = fake_nvml.FakeNvml(recordings.load(paths.SYNTHETIC / "a100x4-fell-off-bus.txt"))
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()
    nvml.nvmlInit()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
    assert isinstance(memory, pynvml.c_nvmlMemory_v2_t)
    assert memory.total == memory.reserved + memory.used + memory.free
    assert isinstance(nvml.nvmlDeviceGetMemoryInfo(handle), pynvml.c_nvmlMemory_t)
    pci = nvml.nvmlDeviceGetPciInfo(handle)
    assert isinstance(pci, pynvml.nvmlPciInfo_t)
    assert pci.busId == "00000000:07:00.0"
    with pytest.raises(pynvml.NVMLError_GpuIsLost) as lost:
        nvml.nvmlDeviceGetHandleByIndex(2)
    assert lost.value.value == pynvml.NVML_ERROR_GPU_IS_LOST
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        nvml.nvmlDeviceGetNvLinkState(handle, 12)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        nvml.nvmlDeviceGetRetiredPages(handle, 0)  # Ampere remaps rows instead
    assert nvml.nvmlDeviceGetRemappedRows(handle) == (0, 0, 0, 0)
    with pytest.raises(pynvml.NVMLError_Timeout):
        nvml.nvmlEventSetWait(nvml.nvmlEventSetCreate(), 0)
    nvml.nvmlShutdown()


def test_fake_and_protocol_use_pynvml_names_and_parameters() -> None:
    members = [
        name for name, _ in inspect.getmembers(backend.NvmlBackend) if name.startswith("nvml")
    ]
    assert len(members) >= 35
    for name in members:
        real = inspect.signature(getattr(pynvml, name))
        fake = inspect.signature(getattr(fake_nvml.FakeNvml, name))
        fake_params = [p for p in fake.parameters if p != "self"]
        assert fake_params == list(real.parameters), name


def test_event_watch_reports_xid_of_a_gpu_falling_off_the_bus() -> None:
    nvml = fake_nvml.FakeNvml(recordings.load(paths.shared_recordings() / "dgx-a100.txt"))
    nvml.nvmlInit()
    handles = {i: nvml.nvmlDeviceGetHandleByIndex(i) for i in range(8)}
    watch = events.EventWatch(nvml, handles)
    assert watch.poll(timeout_ms=0) == ()
    nvml.lose_gpu(5)
    assert watch.poll(timeout_ms=10) == (events.GpuEvent(5, "xid", 79),)
    watch.close()
    inventory = discovery.discover(nvml, xids={5: (79,)})
    assert inventory.lost == (5,)
    nvml.nvmlShutdown()


def test_nvml_that_cannot_start_is_reported_as_unavailable() -> None:
    class NoDriver(fake_nvml.FakeNvml):
        def nvmlInit(self) -> None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    machine = recordings.load(paths.SYNTHETIC / "a100x4-fell-off-bus.txt")
    with pytest.raises(backend.NvmlUnavailable, match="Driver Not Loaded"):
        discovery.discover(NoDriver(machine))
