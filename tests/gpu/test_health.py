"""GPU health verdicts from sampled counters: each named check, and the verdict's priority.

Covers: lost beats unhealthy beats degraded; critical XIDs from the pool's list only; ECC,
retired pages / remapped rows against the budget, pending resets, temperature against the
lower of the pool limit and the slowdown threshold, PCIe links trained below max; and the
samples discovery takes from the recorded machines.
"""

from __future__ import annotations

import pytest

from kubeinfer.api import gpu_pool
from kubeinfer.gpu import recordings
from kubeinfer.planning.gpu import health as gpu_health
from tests.gpu import paths

POLICY = gpu_pool.HealthPolicy()


@pytest.mark.parametrize(
    ("sample", "health", "reason"),
    [
        (gpu_health.HealthSample(0, temperature_c=50, slowdown_c=87), "Healthy", ""),
        (gpu_health.HealthSample(0, lost=True, xids=(79,)), "Lost", "GpuLost"),
        (gpu_health.HealthSample(0, xids=(13, 48)), "Unhealthy", "CriticalXid"),
        (gpu_health.HealthSample(0, xids=(13, 31)), "Healthy", ""),
        (gpu_health.HealthSample(0, ecc_uncorrected_volatile=2), "Unhealthy", "UncorrectableEcc"),
        (gpu_health.HealthSample(0, retired_pages=61), "Unhealthy", "MemoryRetired"),
        (
            gpu_health.HealthSample(0, remapped_rows=3, remap_pending=True),
            "Degraded",
            "ResetPending",
        ),
        (gpu_health.HealthSample(0, remap_failure=True), "Unhealthy", "RowRemapFailure"),
        (gpu_health.HealthSample(0, temperature_c=84, slowdown_c=83), "Degraded", "Overheating"),
        (gpu_health.HealthSample(0, temperature_c=90), "Degraded", "Overheating"),
        (gpu_health.HealthSample(0, pcie_width=(8, 16)), "Degraded", "PcieLinkDegraded"),
        (
            gpu_health.HealthSample(0, pcie_generation=(3, 4), xids=(79,)),
            "Unhealthy",
            "CriticalXid",
        ),
    ],
    ids=[
        "a cool GPU with clean counters is healthy",
        "a GPU that fell off the bus is lost",
        "a critical XID makes it unhealthy",
        "XIDs outside the critical list are ignored",
        "uncorrectable ECC makes it unhealthy",
        "retired pages past the budget make it unhealthy",
        "a pending row remap degrades it",
        "a failed row remap makes it unhealthy",
        "the slowdown threshold below the pool limit counts",
        "the pool limit counts",
        "a PCIe link trained at x8 degrades it",
        "the worst failing check names the verdict",
    ],
)
def test_verdict(sample: gpu_health.HealthSample, health: str, reason: str) -> None:
    verdict = gpu_health.assess(sample, POLICY)
    assert (verdict.health, verdict.reason) == (health, reason)
    assert len(verdict.checks) == len(gpu_health.CHECKS)


def test_recorded_faults_reach_the_verdicts() -> None:
    inventory = recordings.inventory_of(
        recordings.load(paths.SYNTHETIC / "a100x4-fell-off-bus.txt")
    )
    verdicts = {s.index: gpu_health.assess(s, POLICY) for s in inventory.health}
    assert {i: v.health for i, v in verdicts.items()} == {
        0: "Healthy",
        1: "Degraded",
        2: "Lost",
        3: "Degraded",
    }
    assert "gen 3 of 4" in verdicts[1].message
    assert inventory.health[0].remapped_rows == 0
    assert inventory.health[0].retired_pages is None  # Ampere remaps rows


def test_volta_reports_retired_pages_not_remapped_rows() -> None:
    inventory = recordings.inventory_of(
        recordings.load(paths.shared_recordings() / "dgx1-v100.txt")
    )
    assert inventory.health[0].retired_pages == 0
    assert inventory.health[0].remapped_rows is None
