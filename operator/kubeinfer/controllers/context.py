"""The process-wide collaborators of the handlers: the kube client, the watch store, metrics.

Created once at operator startup (:mod:`kubeinfer.controllers.startup`) and read by handlers.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeinfer.kube.client import Kube
from kubeinfer.kube.store import Store
from kubeinfer.metrics import Metrics
from kubeinfer.prom.client import Prometheus


@dataclass(frozen=True)
class Context:
    """What every handler works with."""

    kube: Kube
    store: Store
    metrics: Metrics
    prometheus: Prometheus | None = None
    """Where rollout analysis queries go; None when the operator was started without one."""


_current: list[Context] = []


def install(ctx: Context) -> None:
    """Make ``ctx`` the process's context (startup only)."""
    _current[:] = [ctx]


def current() -> Context:
    """Return the process's context; raises if the operator has not started."""
    if not _current:
        raise RuntimeError("the operator context is not installed; start through `kubeinfer run`")
    return _current[0]
