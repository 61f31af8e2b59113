"""Cluster-scale placement speed: one decision over 1,000 nodes x 8 GPUs in under 50 ms.

Covers: the pytest-benchmark timings (run with ``--benchmark-enable``; by default each runs
once as a test) for k = 1, 2, 4, 8 over a pool mixing every recorded 8-GPU machine with
seeded random free GPUs, and a wall-clock check of the 50 ms budget both with the per-node
memo cold (cleared first) and warm (a controller's steady state).
"""

from __future__ import annotations

import random
import time
from functools import cache
from typing import Any

import pytest

from kubeinfer.gpu import recordings
from kubeinfer.planning.gpu import placement
from kubeinfer.planning.gpu import selection as gpu_selection
from tests.gpu import paths


@cache
def _pool() -> tuple[placement.NodeState, ...]:
    machines = recordings.load_dir(paths.shared_recordings())
    topologies = [t for t in map(recordings.topology_of, machines.values()) if len(t.gpus) == 8]
    rng = random.Random(1000)
    return tuple(
        placement.NodeState(
            name=f"gpu-node-{i:04d}",
            topology=topologies[i % len(topologies)],
            free=frozenset(g for g in range(8) if rng.random() < 0.5),
        )
        for i in range(1000)
    )


def _cold() -> None:
    gpu_selection.select.cache_clear()
    placement._best_possible.cache_clear()


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_benchmark_one_decision_over_1000_nodes(benchmark: Any, k: int) -> None:
    nodes = _pool()
    outcome = benchmark(placement.place_replica, placement.Request(gpus=k), nodes)
    assert isinstance(outcome, placement.Placement)


@pytest.mark.parametrize("k", [1, 2, 4, 8])
@pytest.mark.parametrize("policy", ["nvlink-preferred", "same-numa", "any"])
def test_one_decision_over_1000_nodes_takes_under_50_ms(k: int, policy: str) -> None:
    nodes = _pool()
    request = placement.Request(gpus=k, policy=policy)  # type: ignore[arg-type]
    cold, warm = [], []
    for _ in range(3):
        _cold()
        start = time.perf_counter()
        placement.place_replica(request, nodes)
        cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        placement.place_replica(request, nodes)
        warm.append(time.perf_counter() - start)
    assert min(cold) < 0.050, f"cold {min(cold) * 1000:.1f} ms"
    assert min(warm) < 0.050, f"warm {min(warm) * 1000:.1f} ms"
