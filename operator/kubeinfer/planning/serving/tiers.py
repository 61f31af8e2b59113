"""SLA tiers: what gold, silver and bronze mean in scaling signal, speed, priority and batching.

A table, not logic: the autoscaling renderer reads it and ``spec.autoscaling.overrides`` refines
any entry. The PriorityClass names are installed once with the operator (``manifests/``) because
a cluster-scoped object cannot be owned by a namespaced InferenceService.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Signal = Literal["latency-p95", "requests-per-second", "cpu"]


@dataclass(frozen=True)
class TierPolicy:
    """Everything a tier decides."""

    signal: Signal
    default_target: float
    """Target of the signal: ms for latency, req/s per replica, or % CPU utilisation."""
    min_replicas: int
    scale_up_stabilization_s: int
    scale_down_stabilization_s: int
    scale_up_percent: int
    priority_class: str
    max_batch_size: int
    max_batch_latency_ms: int
    min_available_percent: int
    """PodDisruptionBudget minAvailable, in percent of replicas."""


TIERS: dict[str, TierPolicy] = {
    "gold": TierPolicy(
        signal="latency-p95",
        default_target=500,
        min_replicas=2,
        scale_up_stabilization_s=0,
        scale_down_stabilization_s=300,
        scale_up_percent=100,
        priority_class="kubeinfer-gold",
        max_batch_size=8,
        max_batch_latency_ms=5,
        min_available_percent=75,
    ),
    "silver": TierPolicy(
        signal="requests-per-second",
        default_target=10,
        min_replicas=1,
        scale_up_stabilization_s=30,
        scale_down_stabilization_s=300,
        scale_up_percent=50,
        priority_class="kubeinfer-silver",
        max_batch_size=32,
        max_batch_latency_ms=20,
        min_available_percent=50,
    ),
    "bronze": TierPolicy(
        signal="cpu",
        default_target=80,
        min_replicas=0,
        scale_up_stabilization_s=60,
        scale_down_stabilization_s=600,
        scale_up_percent=25,
        priority_class="kubeinfer-bronze",
        max_batch_size=128,
        max_batch_latency_ms=100,
        min_available_percent=0,
    ),
}

PRIORITY_VALUES = {"kubeinfer-gold": 100000, "kubeinfer-silver": 10000, "kubeinfer-bronze": 1000}
"""Values of the tier PriorityClasses shipped in manifests/ (a test keeps the two in step)."""
