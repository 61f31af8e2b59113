"""Every Prometheus collector of the operator, built against an injected registry.

Nothing else in kubeinfer creates collectors; other modules receive a :class:`Metrics` and call
its methods, so tests can use a fresh registry and the names stay in one place.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Numeric value of each GPU OOM risk level in ``kubeinfer_gpu_oom_risk``.
RISK_VALUES = {"None": 0, "Low": 1, "Medium": 2, "High": 3, "Critical": 4}


class Metrics:
    """The operator's metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.reconciles = Counter(
            "kubeinfer_reconcile_total",
            "Reconciles by kind and result (ok, invalid, error).",
            ["kind", "result"],
            registry=registry,
        )
        self.reconcile_seconds = Histogram(
            "kubeinfer_reconcile_duration_seconds",
            "Duration of one reconcile, by kind.",
            ["kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.api_requests = Counter(
            "kubeinfer_api_requests_total",
            "Requests the operator sent to the API server, by verb, kind and HTTP status.",
            ["verb", "kind", "code"],
            registry=registry,
        )
        self.children_applied = Counter(
            "kubeinfer_children_applied_total",
            "Child objects server-side applied because their desired content changed.",
            ["kind", "child_kind"],
            registry=registry,
        )
        self.status_writes = Counter(
            "kubeinfer_status_writes_total",
            "Status patches sent because the computed status changed.",
            ["kind"],
            registry=registry,
        )
        self.condition_events = Counter(
            "kubeinfer_condition_events_total",
            "Condition changes announced with an Event, by kind, namespace, condition type, status "
            "and reason; type RolledBack with status True counts rollbacks.",
            ["kind", "namespace", "type", "status", "reason"],
            registry=registry,
        )

        self.gpu_oom_risk = Gauge(
            "kubeinfer_gpu_oom_risk",
            "Predicted GPU memory exhaustion risk per GPU (0 None, 1 Low, 2 Medium, 3 High, "
            "4 Critical) against its workload's budget.",
            ["namespace", "pool", "node", "gpu"],
            registry=registry,
        )
        self.gpu_seconds_to_exhaustion = Gauge(
            "kubeinfer_gpu_seconds_to_exhaustion",
            "Predicted seconds until a GPU's memory use reaches its workload's budget limit "
            "(only GPUs whose use is rising).",
            ["namespace", "pool", "node", "gpu"],
            registry=registry,
        )
        self.gpu_memory_used_bytes = Gauge(
            "kubeinfer_gpu_memory_used_bytes",
            "GPU memory in use at the node agent's latest sample.",
            ["namespace", "pool", "node", "gpu"],
            registry=registry,
        )
        self._gpu_series: dict[tuple[str, str], set[tuple[str, str]]] = {}

    def record_gpu_pool(
        self,
        namespace: str,
        pool: str,
        gpus: Iterable[tuple[str, int, str, float | None, float | None]],
    ) -> None:
        """Set a pool's per-GPU series from (node, index, risk, seconds, used MiB); drop stale ones."""
        seen: set[tuple[str, str]] = set()
        for node, index, risk, seconds, used_mib in gpus:
            labels = (namespace, pool, node, str(index))
            seen.add((node, str(index)))
            self.gpu_oom_risk.labels(*labels).set(RISK_VALUES.get(risk, 0))
            if seconds is None:
                _remove(self.gpu_seconds_to_exhaustion, labels)
            else:
                self.gpu_seconds_to_exhaustion.labels(*labels).set(seconds)
            if used_mib is not None:
                self.gpu_memory_used_bytes.labels(*labels).set(used_mib * 2**20)
        for node, gpu in self._gpu_series.get((namespace, pool), set()) - seen:
            for gauge in (
                self.gpu_oom_risk,
                self.gpu_seconds_to_exhaustion,
                self.gpu_memory_used_bytes,
            ):
                _remove(gauge, (namespace, pool, node, gpu))
        self._gpu_series[(namespace, pool)] = seen

    def observe_request(self, verb: str, kind: str, status: int) -> None:
        """Count one API request (the kube layer's request observer)."""
        self.api_requests.labels(verb, kind, str(status)).inc()


def _remove(gauge: Gauge, labels: tuple[str, ...]) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:
        return
