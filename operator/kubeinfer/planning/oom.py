"""GPU-memory out-of-memory risk: a trend fitted over sampled memory use, judged against a budget.

Owns :func:`fit` (least-squares line over ``(seconds, MiB)`` samples; the node agent runs it
over its sample window and publishes the result), :func:`budget_mib` (what one workload may
use: the InferenceService's ``resources.gpuMemory``, else the MIG slice, else the card divided
among ``replicasPerGpu`` sharers) and :func:`predict` (time to exhaustion and a risk level).

The model, in order:

1. The limit is ``threshold x budget`` (the pool's ``oomPrediction.threshold``).
2. Headroom is taken from the *burst envelope*: latest use plus twice the residual spread of the
   samples around the trend, so a workload that spikes near its limit is at risk even when flat.
3. A slope counts only when the window is long enough (``MIN_SAMPLES`` samples over at least
   ``MIN_WINDOW_S``) and the rise it predicts over the window exceeds the residual spread;
   otherwise noise would raise alarms (bursts and sawtooth garbage collection look like slopes
   over short windows).
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
from kubeinfer.planning import replica_placement
from kubeinfer.planning.conditions import Observation

MIN_SAMPLES = 6
MIN_WINDOW_S = 60.0
BURST_SIGMAS = 2.0

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


def fit(samples: Sequence[tuple[float, float]]) -> inv.MemoryTrend | None:
    """Least-squares trend of ``(time s, used MiB)`` samples; None for fewer than two."""
    n = len(samples)
    if n < 2:
        return None
    ts = [t for t, _ in samples]
    ys = [y for _, y in samples]
    mean_t, mean_y = sum(ts) / n, sum(ys) / n
    var_t = sum((t - mean_t) ** 2 for t in ts)
    slope = 0.0 if var_t == 0 else sum((t - mean_t) * (y - mean_y) for t, y in samples) / var_t
    residuals = [y - (mean_y + slope * (t - mean_t)) for t, y in samples]
    spread = math.sqrt(sum(r * r for r in residuals) / n)
    return inv.MemoryTrend(
        used_mib=round(ys[-1], 1),
        peak_mib=round(max(ys), 1),
        slope_mib_per_s=round(slope, 4),
        residual_mib=round(spread, 1),
        samples=n,
        window_s=round(ts[-1] - ts[0], 1),
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


def predict(trend: inv.MemoryTrend, *, budget: float, threshold: float) -> Prediction:
    """Time to exhaustion of ``threshold x budget`` MiB and the risk level it implies."""
    limit = budget * threshold
    envelope = trend.used_mib + BURST_SIGMAS * trend.residual_mib
    headroom = limit - envelope
    used = trend.used_mib
    if headroom <= 0:
        why = "in use" if used >= limit else "in bursts"
        message = f"{used:.0f} MiB of a {budget:.0f} MiB budget; at the {threshold:.0%} limit {why}"
        return Prediction("Critical", 0.0, budget, used, message)
    long_enough = trend.samples >= MIN_SAMPLES and trend.window_s >= MIN_WINDOW_S
    rise = trend.slope_mib_per_s * trend.window_s
    if not long_enough or trend.slope_mib_per_s <= 0 or rise <= trend.residual_mib:
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
