"""Every Prometheus collector of the operator, built against an injected registry.

Nothing else in kubeinfer creates collectors; other modules receive a :class:`Metrics` and call
its methods, so tests can use a fresh registry and the names stay in one place.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


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

    def observe_request(self, verb: str, kind: str, status: int) -> None:
        """Count one API request (the kube layer's request observer)."""
        self.api_requests.labels(verb, kind, str(status)).inc()
