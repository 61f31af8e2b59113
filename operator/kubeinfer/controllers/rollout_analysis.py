"""Rollout analysis I/O: run each metric's PromQL for candidate and stable when one is due.

The queries come from :mod:`kubeinfer.planning.rollout.analysis`; judging them is the planner's job.
Prometheus errors become samples carrying the error, so the rollout waits instead of failing.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from kubeinfer.api import inference_service as api
from kubeinfer.controllers import context
from kubeinfer.planning import children
from kubeinfer.planning.rollout import analysis, timing
from kubeinfer.planning.rollout import machine as rollout
from kubeinfer.prom import client as prom


async def samples(
    owner: children.Owner,
    spec: api.InferenceServiceSpec,
    *,
    state: rollout.State,
    stable: rollout.Version | None,
    now: datetime,
) -> tuple[analysis.Sample, ...] | None:
    """Return analysis samples when an analysis is due for a running rollout, else None."""
    if stable is None or rollout.Version.of(spec.model) == stable:
        return None
    if not timing.analysis_due(spec, state, now):
        return None
    metrics = analysis.metrics_of(spec)
    server = context.current().prometheus
    if server is None:
        return tuple(
            analysis.Sample(m.name, None, error="the operator runs without --prometheus-url")
            for m in metrics
        )
    window = f"{analysis.window_seconds(spec)}s"
    candidate, baseline = spec.model.version, stable.version

    def q(metric: api.AnalysisMetric, version: str) -> str:
        return analysis.query(
            metric, namespace=owner.namespace, name=owner.name, version=version, window=window
        )

    count = analysis.count_query(
        namespace=owner.namespace, name=owner.name, version=candidate, window=window
    )
    try:
        answers = await asyncio.gather(
            server.value(count),
            *(server.value(q(m, v)) for m in metrics for v in (candidate, baseline)),
        )
    except prom.PromError as err:
        return tuple(analysis.Sample(m.name, None, error=str(err)) for m in metrics)
    seen = answers[0] or 0.0
    pairs = answers[1:]
    return tuple(
        analysis.Sample(m.name, pairs[2 * i], pairs[2 * i + 1], count=seen)
        for i, m in enumerate(metrics)
    )
