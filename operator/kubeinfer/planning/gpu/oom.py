"""GPU-memory out-of-memory risk: a trend fitted over sampled memory use, judged against a budget.

Owns :func:`fit` (a robust Theil-Sen line over ``(seconds, MiB)`` samples; the node agent runs
it over its sample window and publishes the result), :func:`budget_mib` (what one workload may
use: the InferenceService's ``resources.gpuMemory``, else the MIG slice, else the card divided
among ``replicasPerGpu`` sharers) and :func:`predict` (time to exhaustion and a risk level).

The model, in order:

1. The limit is ``threshold x budget`` (the pool's ``oomPrediction.threshold``).
2. Headroom is measured from the window's *peak*, not its latest sample: a workload whose bursts
   already reached the limit is Critical even when its average is flat, and one whose bursts
   stay below it is not alarmed by them.
3. A slope counts only when the window is full (``MIN_SAMPLES`` samples spanning at least
   ``FULL_WINDOW`` of the pool's ``oomPrediction.window``; a young workload's ramp-up is not a
   leak) and it is significant: its t-statistic (slope over its standard error,
   from the residual spread around the fitted line) is at least ``MIN_T``, and it is
   *sustained*: the floor (lowest sample) of the window's last third rose over the first third's
   by at least ``FLOOR_SHARE`` of what the slope predicts. A leak raises the floor; noise, bursts
   and allocator sawtooth shorter than a third of the window do not. A ramp longer than the
   window is indistinguishable from a leak and is treated as one.
4. Seconds to exhaustion = headroom / slope; the level follows :data:`LEVELS`.

:func:`observation` turns the pool's per-GPU verdicts into an InferenceService's ``OOMRisk``
condition over the GPUs its replicas were placed on.

Must not: I/O, clocks (sample times are passed in), or know where samples come from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from kubeinfer.api import gpu_pool as pool_api
from kubeinfer.api import inference_service as is_api
from kubeinfer.api import node_inventory as inv
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning.conditions import Observation
from kubeinfer.planning.gpu import replica_placement

MIN_SAMPLES = 6
FULL_WINDOW = 0.9
"""A trend counts once its samples span this share of the configured window."""
MIN_T = 4.0
FLOOR_SHARE = 0.5

#: Risk by predicted seconds to exhaustion (first bound not exceeded wins).
LEVELS: tuple[tuple[float, pool_api.RiskLevel], ...] = (
    (300.0, "Critical"),
    (900.0, "High"),
    (3600.0, "Medium"),
    (6 * 3600.0, "Low"),
)
ALARM_LEVELS: frozenset[pool_api.RiskLevel] = frozenset({"High", "Critical"})
"""Levels that raise the OOMRisk condition on InferenceServices."""


@dataclass(frozen=True)
class Prediction:
    """One GPU's verdict against one workload budget."""

    risk: pool_api.RiskLevel
    seconds_to_exhaustion: float | None
    """None when memory use is not rising toward the limit."""
    budget_mib: float
    used_mib: float
    message: str


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def fit(samples: Sequence[tuple[float, float]]) -> inv.MemoryTrend | None:
    """Robust trend of ``(time s, used MiB)`` samples; None for fewer than two.

    Theil-Sen: the slope is the median of the pairwise slopes, the spread 1.4826 x the median
    absolute deviation around the fitted line, so bursts covering less than half the window
    neither tilt the line nor widen the spread (least squares turns a burst at the window's end
    into a "significant" slope).
    """
    n = len(samples)
    if n < 2:
        return None
    slopes = [
        (y2 - y1) / (t2 - t1)
        for i, (t1, y1) in enumerate(samples)
        for t2, y2 in samples[i + 1 :]
        if t2 != t1
    ]
    slope = _median(slopes) if slopes else 0.0
    intercept = _median([y - slope * t for t, y in samples])
    spread = 1.4826 * _median([abs(y - intercept - slope * t) for t, y in samples])
    ys = [y for _, y in samples]
    start, end = samples[0][0], samples[-1][0]
    third = (end - start) / 3
    first = [y for t, y in samples if t <= start + third]
    last = [y for t, y in samples if t >= end - third]
    return inv.MemoryTrend(
        used_mib=round(ys[-1], 1),
        peak_mib=round(max(ys), 1),
        slope_mib_per_s=round(slope, 4),
        residual_mib=round(spread, 1),
        floor_rise_mib=round(min(last) - min(first), 1),
        samples=n,
        window_s=round(samples[-1][0] - samples[0][0], 1),
    )


def budget_mib(
    *,
    card_mib: float,
    requested_mib: float | None = None,
    mig_slice_mib: float | None = None,
    sharers: int = 1,
) -> float:
    """The memory one workload may use on a GPU: its request, else its MIG slice or share."""
    if requested_mib:
        return requested_mib
    if mig_slice_mib:
        return mig_slice_mib
    return card_mib / max(sharers, 1)


def _level(seconds: float) -> pool_api.RiskLevel:
    for bound, level in LEVELS:
        if seconds <= bound:
            return level
    return "None"


def _significant(trend: inv.MemoryTrend, window_s: float) -> bool:
    """A sustained rising slope over a full window, at least ``MIN_T`` standard errors above 0."""
    full = trend.window_s >= FULL_WINDOW * window_s
    if trend.samples < MIN_SAMPLES or not full or trend.slope_mib_per_s <= 0:
        return False
    if trend.residual_mib == 0:
        return trend.floor_rise_mib > 0
    # evenly spaced samples: sum((t - mean t)^2) = n * window^2 / 12 (large n)
    standard_error = trend.residual_mib * math.sqrt(12 / trend.samples) / trend.window_s
    sustained = trend.floor_rise_mib >= FLOOR_SHARE * trend.slope_mib_per_s * trend.window_s * 2 / 3
    return sustained and trend.slope_mib_per_s / standard_error >= MIN_T


def predict(
    trend: inv.MemoryTrend, *, budget: float, threshold: float, window_s: float
) -> Prediction:
    """Time to exhaustion of ``threshold x budget`` MiB and the risk level it implies."""
    limit = budget * threshold
    used = trend.used_mib
    headroom = limit - max(used, trend.peak_mib)
    if headroom <= 0:
        why = "in use" if used >= limit else "at its peak"
        message = f"{used:.0f} MiB of a {budget:.0f} MiB budget; at the {threshold:.0%} limit {why}"
        return Prediction("Critical", 0.0, budget, used, message)
    if not _significant(trend, window_s):
        message = f"{used:.0f} MiB of a {budget:.0f} MiB budget; not rising beyond noise"
        return Prediction("None", None, budget, used, message)
    seconds = headroom / trend.slope_mib_per_s
    level = _level(seconds)
    message = (
        f"{used:.0f} MiB of a {budget:.0f} MiB budget, rising {trend.slope_mib_per_s * 60:.0f} "
        f"MiB/min: {threshold:.0%} limit in {seconds / 60:.1f} min"
    )
    return Prediction(level, round(seconds, 1), budget, used, message)


def observation(
    spec: is_api.InferenceServiceSpec,
    pool: replica_placement.PoolState | None,
    placements: Sequence[is_api.ReplicaPlacement],
) -> Observation:
    """The InferenceService's ``OOMRisk`` condition from its placed GPUs' risk in the pool.

    True (a problem) when any placed GPU's risk is High or Critical; the message names the
    worst GPU and its time to exhaustion.
    """
    kind = ConditionType.OOM_RISK
    nodes = {n.name: n for n in pool.nodes} if pool is not None else {}
    seen: list[tuple[str, int, str, float | None]] = [
        (p.node, g, *nodes[p.node].oom[g])
        for p in placements
        if p.node in nodes
        for g in p.gpus
        if g in nodes[p.node].oom
    ]
    if spec.resources.gpus == 0 or not seen:
        return Observation.unknown(
            kind, Reason.NO_MEMORY_SAMPLES, "No GPU memory samples cover this service's replicas."
        )
    order: dict[str, int] = {level: rank for rank, (_, level) in enumerate(LEVELS)}
    worst = min(seen, key=lambda s: (order.get(s[2], len(order)), s[3] or math.inf))
    node, index, risk, seconds = worst
    when = "now" if seconds == 0 else f"in {seconds / 60:.1f} min" if seconds else "not soon"
    text = f"worst: {node} GPU {index} risk {risk}, budget reached {when} ({len(seen)} GPUs)."
    if risk in ALARM_LEVELS:
        return Observation.true(kind, Reason.MEMORY_EXHAUSTION_PREDICTED, text)
    return Observation.false(kind, Reason.MEMORY_WITHIN_BUDGET, text)
