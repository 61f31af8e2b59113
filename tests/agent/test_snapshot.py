"""What the node agent publishes, and that the operator reads back exactly that.

Covers: for every recorded machine, the inventory annotation round-trips (agent snapshot ->
compact JSON -> ``node_inventory.parse`` -> ``gpu_inventory.topology_of``) to the topology
discovery found; lost GPUs keep their index; GPU Feature Discovery labels; the DRA ResourceSlice
lists whole present GPUs only; the parser refuses other schema versions and malformed input
with a specific message; the fault script drives the fake NVML's event set.
"""

from __future__ import annotations

import pathlib
import time

import pytest

from kubeinfer.agent import sampling, snapshot
from kubeinfer.api import gpu_pool
from kubeinfer.api import node_inventory as inv
from kubeinfer.gpu import discovery, events, fault_script, recordings
from kubeinfer.planning.gpu import inventory as gpu_inventory
from tests.gpu import paths


def _machines() -> list[pathlib.Path]:
    found: list[pathlib.Path] = []
    for directory in (paths.SHARED, paths.SYNTHETIC):
        if directory.is_dir():
            found += sorted(directory.glob("*.txt"))
    return found


@pytest.mark.parametrize("path", _machines(), ids=lambda p: p.name)
def test_published_inventory_round_trips_to_the_discovered_topology(path: pathlib.Path) -> None:
    machine = recordings.load(path)
    found = recordings.inventory_of(machine)
    text = inv.dump(snapshot.inventory(found, trends={}, time="2026-01-01T00:00:00Z"))
    parsed = inv.parse(text)
    topo = gpu_inventory.topology_of(parsed, name=machine.name)
    assert topo.links == found.topology.links
    assert topo.gpus == found.topology.gpus
    assert [g.index for g in parsed.gpus] == list(range(len(machine.gpus)))
    assert {g.index for g in parsed.gpus if g.health.lost} == set(found.lost)
    assert len(text) < 64 * 1024  # far below the 256 KiB annotation budget


def test_a_lost_gpu_is_judged_lost_by_the_pool_policy() -> None:
    machine = recordings.load(paths.SYNTHETIC / "a100x4-fell-off-bus.txt")
    parsed = inv.parse(
        inv.dump(snapshot.inventory(recordings.inventory_of(machine), trends={}, time="t"))
    )
    verdicts = gpu_inventory.verdicts(parsed, gpu_pool.HealthPolicy())
    assert {i for i, v in verdicts.items() if v.health == "Lost"} == {
        g.index for g in machine.gpus if g.lost
    }


def test_labels_follow_gpu_feature_discovery_names() -> None:
    machine = recordings.load(paths.SYNTHETIC / "pcie-a100x8-nvlink-pairs-2socket.txt")
    labels = snapshot.labels(recordings.inventory_of(machine))
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-80GB-PCIe"
    assert labels["nvidia.com/gpu.count"] == "8"
    assert labels["nvidia.com/gpu.memory"] == "81920"
    assert labels["nvidia.com/gpu.family"] == "ampere"
    assert labels["nvidia.com/cuda.driver-version.major"] == "550"
    assert labels["gpu.kubeinfer.io/nvlink"] == "true"
    assert labels["gpu.kubeinfer.io/numa-nodes"] == "2"


def test_resource_slice_lists_whole_present_gpus_by_uuid() -> None:
    machine = recordings.load(paths.SYNTHETIC / "hgx-h100x8-mig.txt")
    found = recordings.inventory_of(machine)
    body = snapshot.resource_slice(found, node="n1", node_uid="uid-1")
    names = [d["name"] for d in body["spec"]["devices"]]
    whole = [d.index for d in found.devices if not d.mig_enabled]
    assert names == [f"gpu-{i}" for i in whole]
    assert body["spec"]["driver"] == inv.DRIVER and body["spec"]["nodeName"] == "n1"
    first = body["spec"]["devices"][0]["attributes"]
    assert first["uuid"]["string"] == found.devices[whole[0]].uuid


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"version": 2}', "schema version 2"),
        ('{"version": 1, "time": "t", "driverVersion": "1", "gpus": [{"index": "x"}]}', "gpus.0"),
    ],
)
def test_parse_refuses_bad_annotations_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(inv.InventoryError, match=message):
        inv.parse(text)


def test_fault_script_delivers_an_xid_through_the_event_set(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "faults"
    machine = recordings.load(paths.SYNTHETIC / "pcie-a100x8-nvlink-pairs-2socket.txt")
    nvml = fault_script.ScriptedNvml(machine, script)
    nvml.nvmlInit()
    handles = {i: nvml.nvmlDeviceGetHandleByIndex(i) for i in range(8)}
    watch = events.EventWatch(nvml, handles)
    started = time.monotonic()
    assert watch.poll(timeout_ms=100) == ()
    assert time.monotonic() - started >= 0.09  # blocks like NVML's wait
    script.write_text("# comment\nbogus 1\nxid 3 79\nmemory 2 1024\n")
    assert watch.poll(timeout_ms=1000) == (events.GpuEvent(3, "xid", 79),)
    used = discovery.discover(nvml).devices[2].memory_used_bytes
    assert used == 1024 * 1024**2
    watch.close()
    nvml.nvmlShutdown()


def test_memory_window_keeps_only_the_window_and_fits_each_gpu() -> None:
    window = sampling.MemoryWindow(60)
    for t in range(0, 121, 10):
        window.add(0, float(t), 1000.0 + t)
    trend = window.trends()[0]
    assert trend.window_s == 60 and trend.samples == 7
    assert trend.slope_mib_per_s == pytest.approx(1.0)


def test_gfd_labels_can_be_left_to_gpu_feature_discovery() -> None:
    machine = recordings.load(paths.SYNTHETIC / "pcie-a100x8-nvlink-pairs-2socket.txt")
    labels = snapshot.labels(recordings.inventory_of(machine), gfd=False)
    assert labels and not any(k.startswith("nvidia.com/") for k in labels)


def test_an_ecc_fault_is_an_event_and_an_uncorrectable_count(tmp_path: pathlib.Path) -> None:
    script = tmp_path / "faults"
    machine = recordings.load(paths.SYNTHETIC / "pcie-a100x8-nvlink-pairs-2socket.txt")
    nvml = fault_script.ScriptedNvml(machine, script)
    nvml.nvmlInit()
    watch = events.EventWatch(nvml, {i: nvml.nvmlDeviceGetHandleByIndex(i) for i in range(8)})
    script.write_text("ecc 5\n")
    assert watch.poll(timeout_ms=1000) == (events.GpuEvent(5, "ecc-double-bit", 0),)
    published = snapshot.inventory(discovery.discover(nvml), trends={}, time="t")
    verdicts = gpu_inventory.verdicts(published, gpu_pool.HealthPolicy())
    assert (verdicts[5].health, verdicts[5].reason) == ("Unhealthy", "UncorrectableEcc")
    watch.close()
    nvml.nvmlShutdown()
