"""Placement decisions across a pool: policies, packing, reasons, explanations, determinism.

Covers: nvlink-required / nvlink-preferred / same-numa / any; binpack and spread; NUMA
alignment on NVSwitch boxes; NVSwitch awareness (a DGX box beats a PCIe box); unhealthy and
MIG GPUs never chosen; label selectors; NoFit reasons that name the cause; every replica
placed in turn; explanations that say what was searched and why the runner-up lost; the same
input gives the same output whatever the node order.
"""

from __future__ import annotations

from functools import cache

import pytest

from kubeinfer.api import conditions
from kubeinfer.gpu import recordings
from kubeinfer.planning.gpu import placement, topology
from tests.gpu import paths


@cache
def _topo(name: str) -> topology.NodeTopology:
    directory = paths.SYNTHETIC if (paths.SYNTHETIC / name).exists() else paths.shared_recordings()
    return recordings.topology_of(recordings.load(directory / name))


def _node(
    name: str, fixture: str, free: set[int] | None = None, **kw: object
) -> placement.NodeState:
    topo = _topo(fixture)
    gpus = set(range(len(topo.gpus))) if free is None else free
    return placement.NodeState(name=name, topology=topo, free=frozenset(gpus), **kw)  # type: ignore[arg-type]


def _placed(outcome: placement.Placement | placement.NoFit) -> placement.Placement:
    assert isinstance(outcome, placement.Placement), outcome
    return outcome


def test_nvswitch_box_wins_over_pcie_box_for_a_multi_gpu_replica() -> None:
    nodes = [_node("a-pcie", "pcie-8x-all-sys-2socket.txt"), _node("b-dgx", "dgx-a100.txt")]
    chosen = _placed(placement.place_replica(placement.Request(gpus=4), nodes))
    assert chosen.node == "b-dgx"
    assert chosen.bottleneck_gbps == 300.0
    assert chosen.explanation.alternatives[0].lost_on.startswith("bottleneck")


def test_nvswitch_set_stays_on_one_numa_node() -> None:
    chosen = _placed(
        placement.place_replica(placement.Request(gpus=4), [_node("n", "hgx-h20.txt")])
    )
    assert chosen.numa_nodes in ((0,), (1,))


def test_dgx1_four_gpus_form_a_cube_face_not_a_random_set() -> None:
    chosen = _placed(
        placement.place_replica(placement.Request(gpus=4), [_node("n", "dgx1-v100.txt")])
    )
    assert chosen.bottleneck_gbps == 25.0
    assert chosen.gpus == (0, 1, 2, 3)


def test_nvlink_required_refuses_pcie_only_sets_with_topology_unsatisfiable() -> None:
    nodes = [_node("n", "pcie-a100x8-nvlink-pairs.txt", free={0, 2, 4, 6})]
    outcome = placement.place_replica(placement.Request(gpus=2, policy="nvlink-required"), nodes)
    assert isinstance(outcome, placement.NoFit)
    assert outcome.reason is conditions.Reason.TOPOLOGY_UNSATISFIABLE
    assert "NVLink" in outcome.message


def test_same_numa_keeps_the_set_within_one_numa_node_or_refuses() -> None:
    node = _node("n", "l40s-4x-2socket.txt")
    two = _placed(placement.place_replica(placement.Request(gpus=2, policy="same-numa"), [node]))
    assert len(two.numa_nodes) == 1
    three = placement.place_replica(placement.Request(gpus=3, policy="same-numa"), [node])
    assert isinstance(three, placement.NoFit)
    assert three.reason is conditions.Reason.TOPOLOGY_UNSATISFIABLE


def test_too_few_free_gpus_everywhere_is_insufficient_gpus() -> None:
    nodes = [_node("a", "dgx-a100.txt", free={1}), _node("b", "dgx-a100.txt", free={2, 3})]
    outcome = placement.place_replica(placement.Request(gpus=4), nodes)
    assert isinstance(outcome, placement.NoFit)
    assert outcome.reason is conditions.Reason.INSUFFICIENT_GPUS
    assert outcome.rejected == {"fewer than 4 free healthy GPUs": 2}


def test_binpack_fills_the_fuller_node_and_spread_the_emptier() -> None:
    nodes = [_node("full", "aws-p4d-a100.txt", free={4, 5}), _node("empty", "aws-p4d-a100.txt")]
    binpack = _placed(placement.place_replica(placement.Request(gpus=2), nodes))
    spread = _placed(placement.place_replica(placement.Request(gpus=2, packing="spread"), nodes))
    assert (binpack.node, binpack.gpus) == ("full", (4, 5))
    assert spread.node == "empty"


def test_bandwidth_comes_before_packing_unless_the_policy_is_any() -> None:
    nodes = [
        _node("pairs", "pcie-a100x8-nvlink-pairs.txt", free={0, 2}),
        _node("dgx", "dgx-a100.txt"),
    ]
    preferred = _placed(placement.place_replica(placement.Request(gpus=2), nodes))
    anywhere = _placed(placement.place_replica(placement.Request(gpus=2, policy="any"), nodes))
    assert preferred.node == "dgx"
    assert anywhere.node == "pairs"


def test_unhealthy_gpus_are_never_chosen() -> None:
    node = _node("n", "pcie-a100x8-nvlink-pairs.txt", unhealthy=frozenset({0}))
    chosen = _placed(placement.place_replica(placement.Request(gpus=2), [node]))
    assert 0 not in chosen.gpus
    assert chosen.bottleneck_gbps == 300.0


def test_label_selector_filters_nodes() -> None:
    nodes = [
        _node("a", "dgx-a100.txt", labels={"zone": "a"}),
        _node("b", "dgx-a100.txt", labels={"zone": "b"}),
    ]
    chosen = _placed(
        placement.place_replica(placement.Request(gpus=1, node_selector={"zone": "b"}), nodes)
    )
    assert chosen.node == "b"


def test_every_replica_is_placed_on_gpus_no_other_replica_holds() -> None:
    nodes = [_node("a", "pcie-a100x8-nvlink-pairs.txt"), _node("b", "pcie-a100x8-nvlink-pairs.txt")]
    plan = placement.place(placement.Request(gpus=2, replicas=8), nodes)
    assert plan.no_fit is None
    taken = [(p.node, g) for p in plan.placements for g in p.gpus]
    assert len(taken) == len(set(taken)) == 16
    assert {p.bottleneck_gbps for p in plan.placements} == {300.0}


def test_a_replica_that_does_not_fit_stops_the_plan_with_its_reason() -> None:
    plan = placement.place(placement.Request(gpus=4, replicas=3), [_node("a", "dgx-a100.txt")])
    assert len(plan.placements) == 2
    assert plan.no_fit is not None
    assert plan.no_fit.replica == 2


def test_zero_gpus_is_refused() -> None:
    outcome = placement.place_replica(placement.Request(gpus=0), [_node("a", "dgx-a100.txt")])
    assert isinstance(outcome, placement.NoFit)


def test_explanation_reports_search_effort_and_summary() -> None:
    nodes = [_node(f"n{i}", "dgx1-v100.txt", free={0, 1, 2, 4, 5, 6}) for i in range(3)]
    chosen = _placed(placement.place_replica(placement.Request(gpus=3), nodes))
    text = chosen.explanation.summary()
    assert chosen.explanation.nodes_eligible == 3
    assert chosen.explanation.nodes_searched >= 1
    assert "nvlink-preferred/binpack" in text
    assert chosen.explanation.objective[0] == "bottleneck"


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8])
def test_same_input_gives_the_same_output_whatever_the_node_order(k: int) -> None:
    fixtures = ["dgx-a100.txt", "pcie-a100x8-nvlink-pairs.txt", "dgx1-v100.txt", "hgx-h20.txt"]
    nodes = [
        _node(
            f"node-{i}",
            fixtures[i % 4],
            free={g for g in range(8) if i % 5 == 0 or (i * 7 + g) % 3},
        )
        for i in range(12)
    ]
    request = placement.Request(gpus=k)
    first = placement.place_replica(request, nodes)
    again = placement.place_replica(request, list(reversed(nodes)))
    assert isinstance(first, placement.Placement)
    assert isinstance(again, placement.Placement)
    assert (first.node, first.gpus) == (again.node, again.gpus)
