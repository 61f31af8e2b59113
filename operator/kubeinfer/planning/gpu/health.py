"""GPU health verdicts: a list of small named checks over one GPU's sampled counters.

Owns :class:`HealthSample` (what the node agent sampled through NVML: XIDs seen, ECC,
retired pages or remapped rows, temperature against the slowdown threshold, PCIe link training)
and :func:`assess`, which runs every check against the pool's ``HealthPolicy`` and derives one
verdict by a fixed priority: Lost > Unhealthy > Degraded > Healthy.

Must not do: I/O or NVML calls (the node agent samples; this module only judges).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kubeinfer.api import gpu_pool


@dataclass(frozen=True)
class HealthSample:
    """Health counters of one GPU; None where NVML answered NOT_SUPPORTED."""

    index: int
    lost: bool = False
    xids: tuple[int, ...] = ()
    """XID numbers seen since the agent started."""
    ecc_uncorrected_volatile: int | None = None
    retired_pages: int | None = None
    """Single- plus double-bit retired pages (pre-Ampere)."""
    retired_pages_pending: bool = False
    remapped_rows: int | None = None
    """Correctable plus uncorrectable remapped rows (Ampere and later)."""
    remap_pending: bool = False
    remap_failure: bool = False
    temperature_c: int | None = None
    slowdown_c: int | None = None
    pcie_generation: tuple[int, int] | None = None
    """(trained, max)."""
    pcie_width: tuple[int, int] | None = None
    """(trained, max)."""


@dataclass(frozen=True)
class Check:
    """One check's outcome."""

    name: str
    reason: str
    """CamelCase reason, empty when the check passed."""
    message: str
    failed: bool
    health: gpu_pool.Health = "Healthy"
    """What a failure of this check makes the GPU."""


@dataclass(frozen=True)
class Verdict:
    """The GPU's health and the checks that led to it."""

    index: int
    health: gpu_pool.Health
    reason: str
    message: str
    checks: tuple[Check, ...]


_PRIORITY: dict[gpu_pool.Health, int] = {"Lost": 3, "Unhealthy": 2, "Degraded": 1, "Healthy": 0}

CheckFn = Callable[[HealthSample, gpu_pool.HealthPolicy], Check]


def _passed(name: str) -> Check:
    return Check(name, "", "", failed=False)


def check_lost(sample: HealthSample, _: gpu_pool.HealthPolicy) -> Check:
    """The GPU answers NVML_ERROR_GPU_IS_LOST (fell off the bus)."""
    if sample.lost:
        return Check("lost", "GpuLost", "GPU fell off the bus (GPU_IS_LOST)", True, "Lost")
    return _passed("lost")


def check_xid(sample: HealthSample, policy: gpu_pool.HealthPolicy) -> Check:
    """A critical XID from the pool's list was reported."""
    critical = sorted({x for x in sample.xids if x in policy.xid_critical})
    if critical:
        message = f"critical XID {', '.join(map(str, critical))} reported"
        return Check("xid", "CriticalXid", message, True, "Unhealthy")
    return _passed("xid")


def check_ecc(sample: HealthSample, _: gpu_pool.HealthPolicy) -> Check:
    """Uncorrectable ECC errors since the last driver load."""
    count = sample.ecc_uncorrected_volatile or 0
    if count:
        message = f"{count} uncorrectable ECC errors since driver load"
        return Check("ecc", "UncorrectableEcc", message, True, "Unhealthy")
    return _passed("ecc")


def check_memory_retirement(sample: HealthSample, policy: gpu_pool.HealthPolicy) -> Check:
    """Retired pages / remapped rows beyond the budget, a failed remap, or a pending one."""
    if sample.remap_failure:
        return Check("memory", "RowRemapFailure", "row remapping failed", True, "Unhealthy")
    retired = (sample.retired_pages or 0) + (sample.remapped_rows or 0)
    if retired > policy.max_retired_pages:
        message = f"{retired} retired pages / remapped rows exceed {policy.max_retired_pages}"
        return Check("memory", "MemoryRetired", message, True, "Unhealthy")
    if sample.remap_pending or sample.retired_pages_pending:
        message = "a page retirement or row remap waits for a GPU reset"
        return Check("memory", "ResetPending", message, True, "Degraded")
    return _passed("memory")


def check_temperature(sample: HealthSample, policy: gpu_pool.HealthPolicy) -> Check:
    """At or above the pool's limit or the GPU's own slowdown threshold."""
    if sample.temperature_c is None:
        return _passed("temperature")
    limits = [policy.max_temperature_c, *([sample.slowdown_c] if sample.slowdown_c else [])]
    limit = min(limits)
    if sample.temperature_c >= limit:
        message = f"{sample.temperature_c} °C at or above {limit} °C"
        return Check("temperature", "Overheating", message, True, "Degraded")
    return _passed("temperature")


def check_pcie_link(sample: HealthSample, _: gpu_pool.HealthPolicy) -> Check:
    """The PCIe link trained below its maximum generation or width."""
    problems = [
        f"{what} {now} of {best}"
        for what, pair in (("gen", sample.pcie_generation), ("x", sample.pcie_width))
        if pair is not None
        for now, best in [pair]
        if now < best
    ]
    if problems:
        message = "PCIe link trained below max: " + ", ".join(problems)
        return Check("pcie", "PcieLinkDegraded", message, True, "Degraded")
    return _passed("pcie")


CHECKS: tuple[CheckFn, ...] = (
    check_lost,
    check_xid,
    check_ecc,
    check_memory_retirement,
    check_temperature,
    check_pcie_link,
)


def assess(sample: HealthSample, policy: gpu_pool.HealthPolicy) -> Verdict:
    """Run every check; the worst failure names the verdict."""
    checks = tuple(check(sample, policy) for check in CHECKS)
    failed = [c for c in checks if c.failed]
    if not failed:
        return Verdict(sample.index, "Healthy", "", "", checks)
    worst = max(failed, key=lambda c: _PRIORITY[c.health])
    message = "; ".join(c.message for c in failed)
    return Verdict(sample.index, worst.health, worst.reason, message, checks)
