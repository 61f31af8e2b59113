"""Golden tests: on every recorded machine the chosen set is the brute-force optimum.

For every free subset of the 4- and 8-GPU recordings (a seeded sample on the 16-GPU ones) and
every k, the set kubeinfer picks has the best bottleneck bandwidth any k-subset has, and among
the subsets with that bottleneck, the highest go-gpuallocator pair score. Hypothesis extends the
same property to random topologies. The fragmentation replay shows 1-GPU requests leave NVLink
pairs whole for the 2-GPU requests that follow, in every order.
"""

from __future__ import annotations

import itertools
import random
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeinfer.gpu import recordings
from kubeinfer.planning.gpu import placement, topology, topology_score
from kubeinfer.planning.gpu import selection as gpu_selection
from tests.gpu import paths


@cache
def _topologies() -> dict[str, topology.NodeTopology]:
    machines = {
        **recordings.load_dir(paths.shared_recordings()),
        **recordings.load_dir(paths.SYNTHETIC),
    }
    return {name: recordings.topology_of(machine) for name, machine in machines.items()}


def _optimum(topo: topology.NodeTopology, free: tuple[int, ...], k: int) -> tuple[float, int]:
    best_bw = -1.0
    best_score = -1
    for combo in itertools.combinations(free, k):
        bw = topology_score.bottleneck_gbps(topo, combo) or 0.0
        score = topology_score.pair_score(topo, combo)
        best_bw, best_score = max((best_bw, best_score), (bw, score))
    return best_bw, best_score


def _masks(n: int, rng: random.Random) -> list[int]:
    if n <= 8:
        return list(range(1, 1 << n))
    return sorted(
        {rng.getrandbits(n) & ~(rng.getrandbits(n) & rng.getrandbits(n)) for _ in range(60)}
    )


def test_chosen_set_has_the_optimal_bottleneck_and_then_the_best_pair_score() -> None:
    rng = random.Random(20240607)
    checked = 0
    for name, topo in _topologies().items():
        n = len(topo.gpus)
        for mask in _masks(n, rng):
            free = topology.indices_of(mask)
            ks = range(2, len(free) + 1) if n <= 8 else [k for k in (2, 3, 4, 8) if k <= len(free)]
            for k in ks:
                chosen = gpu_selection.select(topo, mask, k)
                assert chosen is not None
                assert set(chosen.gpus) <= set(free)
                assert len(chosen.gpus) == k
                bottleneck, score = _optimum(topo, free, k)
                assert chosen.bottleneck_gbps == bottleneck, (name, free, k)
                assert topology_score.pair_score(topo, chosen.gpus) == score, (name, free, k)
                checked += 1
    assert checked > 6_000


def test_no_set_is_found_when_fewer_gpus_are_free_than_asked() -> None:
    topo = _topologies()["dgx1-v100.txt"]
    assert gpu_selection.select(topo, 0b111, 4) is None


_LEVELS = st.sampled_from(list(topology.PcieLevel))


@st.composite
def _random_topology(draw: st.DrawFn) -> topology.NodeTopology:
    n = draw(st.integers(2, 8))
    numa = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    gpus = tuple(
        topology.Gpu(index=i, numa_node=numa[i], nvlink_gbps=25.0, pcie_generation=4)
        for i in range(n)
    )
    links = {
        (a, b): topology.Link(draw(_LEVELS), draw(st.sampled_from([0, 0, 0, 1, 2, 4])))
        for a in range(n)
        for b in range(a + 1, n)
    }
    return topology.NodeTopology(gpus=gpus, links=links, name="random")


@settings(max_examples=150, deadline=None)
@given(topo=_random_topology(), data=st.data())
def test_random_topologies_get_the_brute_force_optimum(
    topo: topology.NodeTopology, data: st.DataObject
) -> None:
    n = len(topo.gpus)
    mask = data.draw(st.integers(1, (1 << n) - 1))
    free = topology.indices_of(mask)
    k = data.draw(st.integers(1, len(free)))
    chosen = gpu_selection.select(topo, mask, k)
    assert chosen is not None
    assert len(chosen.gpus) == k
    assert set(chosen.gpus) <= set(free)
    if k >= 2:
        assert (chosen.bottleneck_gbps, chosen.pair_score) == _optimum(topo, free, k)


def _replay(topo: topology.NodeTopology, order: tuple[int, ...]) -> list[float | None]:
    node = placement.NodeState(name="gpu-node", topology=topo, free=frozenset(range(8)))
    bottlenecks = []
    for k in order:
        outcome = placement.place_replica(placement.Request(gpus=k), [node])
        assert isinstance(outcome, placement.Placement)
        if k == 2:
            bottlenecks.append(outcome.bottleneck_gbps)
        node = placement.NodeState(
            name=node.name, topology=topo, free=node.free - frozenset(outcome.gpus)
        )
    return bottlenecks


def test_fragmentation_replay_gives_nvlink_pairs_in_every_order() -> None:
    topo = _topologies()["pcie-a100x8-nvlink-pairs.txt"]
    orders = set(itertools.permutations((1, 1, 1, 1, 2, 2)))
    assert len(orders) == 15
    nvlink_pair = topo.bandwidth[0][1]
    for order in sorted(orders):
        assert _replay(topo, order) == [nvlink_pair, nvlink_pair], order


def test_one_gpu_request_takes_the_orphan_of_a_broken_nvlink_pair() -> None:
    topo = _topologies()["pcie-a100x8-nvlink-pairs.txt"]
    node = placement.NodeState(name="n", topology=topo, free=frozenset({1, 2, 3, 4, 5, 6, 7}))
    outcome = placement.place_replica(placement.Request(gpus=1), [node])
    assert isinstance(outcome, placement.Placement)
    assert outcome.gpus == (1,)


@settings(max_examples=100, deadline=None)
@given(topo=_random_topology(), data=st.data())
def test_removal_loss_equals_the_drop_in_future_value(
    topo: topology.NodeTopology, data: st.DataObject
) -> None:
    mask = data.draw(st.integers(1, (1 << len(topo.gpus)) - 1))
    before = topology_score.future_value(topo, mask)
    for gpu, loss in topology_score.removal_losses(topo, mask).items():
        after = topology_score.future_value(topo, mask & ~(1 << gpu))
        assert loss == pytest.approx(before - after, abs=0.02)
