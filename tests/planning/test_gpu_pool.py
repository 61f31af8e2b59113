"""The GPUPool planner over node agents' inventories.

Covers: per-GPU status (NVLink peers, NUMA, health from raw counters judged by the pool's
policy, holders); an XID excludes a GPU from placement and sets Healthy=False; degraded GPUs
stay schedulable; stale, missing and malformed inventories fall back to the kubelet's count
with a specific Discovered reason; slots under timeSlicing; the fragmentation figure; MIG
sharing without MIG GPUs; the device plugin's time-slicing config.
"""

from __future__ import annotations

import dataclasses
import pathlib
from datetime import UTC, datetime, timedelta

import yaml

from kubeinfer.agent import snapshot
from kubeinfer.api import gpu_pool as api
from kubeinfer.api import node_inventory as inv
from kubeinfer.gpu import recordings
from kubeinfer.planning import children
from kubeinfer.planning import gpu_pool as planner
from tests.gpu import paths

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
OWNER = children.Owner("kubeinfer.io/v1alpha1", "GPUPool", "pool", "ns", "uid-1")
PAIRS = paths.SYNTHETIC / "pcie-a100x8-nvlink-pairs-2socket.txt"


def _inventory(
    path: pathlib.Path = PAIRS, *, xids: dict[int, tuple[int, ...]] | None = None, age_s: float = 5
) -> inv.NodeInventory:
    machine = recordings.load(path)
    found = recordings.inventory_of(machine)
    if xids:
        found = dataclasses.replace(
            found,
            health=tuple(dataclasses.replace(h, xids=xids.get(h.index, ())) for h in found.health),
        )
    stamp = (NOW - timedelta(seconds=age_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return inv.parse(inv.dump(snapshot.inventory(found, trends={}, time=stamp)))


def _spec(**changes: object) -> api.GPUPoolSpec:
    return api.GPUPoolSpec.model_validate(changes)


def _plan(*nodes: planner.NodeView, spec: api.GPUPoolSpec | None = None) -> planner.Plan:
    return planner.plan(OWNER, spec or _spec(), planner.Observed(nodes=nodes, now=NOW))


def _conditions(plan: planner.Plan) -> dict[str, tuple[str, str]]:
    return {o.type.value: (o.status, o.reason.value) for o in plan.observations}


def test_nodes_are_aggregated_per_gpu_with_peers_numa_and_holders() -> None:
    node = planner.NodeView(
        "n0", 8, inventory=_inventory(), holders={0: ("ns/a",), 1: ("ns/a",)}, unattributed=1
    )
    plan = _plan(node)
    gpus = plan.status.nodes[0].gpus
    assert gpus[0].nvlink_peers == [1] and gpus[0].numa_node == 0 and gpus[7].numa_node == 1
    assert gpus[0].allocated_to == ["ns/a"]
    assert plan.status.capacity == 8 and plan.status.allocated == 3
    assert plan.status.free == 5
    assert _conditions(plan)["Ready"] == ("True", "AsExpected")


def test_an_xid_takes_the_gpu_out_of_placement_and_the_pool_unhealthy() -> None:
    plan = _plan(planner.NodeView("n0", 8, inventory=_inventory(xids={3: (79,)})))
    gpu = plan.status.nodes[0].gpus[3]
    assert gpu.health == "Unhealthy" and gpu.schedulable is False
    assert gpu.health_reason.startswith("CriticalXid")
    assert plan.status.capacity == 7
    assert _conditions(plan)["Healthy"] == ("False", "UnhealthyGPUs")
    # a non-critical XID (13: graphics engine exception) is not the pool's business
    calm = _plan(planner.NodeView("n0", 8, inventory=_inventory(xids={3: (13,)})))
    assert _conditions(calm)["Healthy"] == ("True", "AsExpected")


def test_missing_stale_and_malformed_inventories_fall_back_to_the_kubelet() -> None:
    stale = planner.NodeView("a", 8, inventory=_inventory(age_s=600))
    plan = _plan(stale)
    assert _conditions(plan)["Discovered"] == ("False", "InventoryStale")
    assert plan.status.capacity == 8 and plan.status.nodes[0].gpus == []
    missing = _plan(planner.NodeView("b", 4))
    assert _conditions(missing)["Discovered"] == ("False", "NoInventory")
    broken = _plan(planner.NodeView("c", 4, inventory_error="inventory schema version 9 is not 1"))
    assert "schema version 9" in plan_message(broken, "Discovered")
    assert _conditions(_plan())["Discovered"] == ("False", "NoNodes")


def plan_message(plan: planner.Plan, kind: str) -> str:
    return next(o.message for o in plan.observations if o.type.value == kind)


def test_time_slicing_counts_slots_and_renders_the_device_plugin_config() -> None:
    spec = _spec(sharing={"mode": "timeSlicing", "replicasPerGpu": 4})
    plan = _plan(planner.NodeView("n0", 8, inventory=_inventory()), spec=spec)
    assert plan.status.capacity == 32
    config = yaml.safe_load(plan.children[0]["data"]["config.yaml"])
    assert config["sharing"]["timeSlicing"]["resources"] == [
        {"name": "nvidia.com/gpu", "replicas": 4}
    ]


def test_fragmentation_counts_free_gpus_that_lost_their_fast_partners() -> None:
    whole = _plan(planner.NodeView("n0", 8, inventory=_inventory()))
    assert whole.status.fragmentation == 0
    # one GPU of each NVLink pair taken: 4 free orphans, only one can be used at full speed
    held = {i: ("ns/x",) for i in (0, 2, 4, 6)}
    orphans = _plan(planner.NodeView("n0", 8, inventory=_inventory(), holders=held))
    assert orphans.status.fragmentation == 0.75
    # whole pairs taken instead: the free half is a full-speed 4-set
    pairs = {i: ("ns/x",) for i in (0, 1, 2, 3)}
    packed = _plan(planner.NodeView("n0", 8, inventory=_inventory(), holders=pairs))
    assert packed.status.fragmentation == 0


def test_mig_sharing_without_mig_gpus_is_reported() -> None:
    spec = _spec(sharing={"mode": "mig", "migProfile": "1g.10gb"})
    plan = _plan(planner.NodeView("n0", 8, inventory=_inventory()), spec=spec)
    assert _conditions(plan)["Discovered"] == ("False", "UnsupportedSharing")
    mig = _plan(
        planner.NodeView("n0", 8, inventory=_inventory(paths.SYNTHETIC / "hgx-h100x8-mig.txt")),
        spec=spec,
    )
    assert mig.status.capacity > 0
    assert _conditions(mig)["Discovered"][0] == "True"
