"""Rollout analysis: the PromQL each metric runs and the chain of checks that judge it.

A rollout step is judged from one :class:`Sample` per metric — the candidate's value, the stable
version's value for comparison, the candidate's request count over the window, or the error that
kept Prometheus from answering. Each check is small and named and returns
``(verdict, message)``; the first check that does not pass decides the metric's verdict, and the
worst metric verdict decides the analysis: Error (Prometheus unreachable) is not a failure and
never rolls back; Inconclusive (too little traffic, no data) waits; Failed counts towards
``failureLimit``. Pure: the controller runs the queries and passes the samples in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from kubeinfer.api import base
from kubeinfer.api import inference_service as api
from kubeinfer.planning.labels import INFERENCE_SERVICE_SERIES, MODEL_VERSION_SERIES

Verdict = Literal["Passed", "Failed", "Inconclusive", "Error"]
SEVERITY: dict[Verdict, int] = {"Passed": 0, "Inconclusive": 1, "Failed": 2, "Error": 3}

DEFAULT_METRICS = (
    api.AnalysisMetric(name="success-rate", template="success-rate"),
    api.AnalysisMetric(name="latency-p95", template="latency-p95"),
)
"""What every rollout is judged on when the spec names no metric."""

SCRAPE_INTERVAL_SECONDS = 15
"""How often Prometheus scrapes the model servers (the ServiceMonitor's endpoint interval)."""
WINDOW_SCRAPES = 4
"""Scrapes a rate window spans at least, so one missed scrape still leaves a rate."""


def window_seconds(spec: api.InferenceServiceSpec) -> int:
    """The range every analysis query's ``rate()`` covers: an interval, at least four scrapes."""
    interval = base.duration_seconds(spec.rollout.analysis.interval)
    return max(math.ceil(interval), WINDOW_SCRAPES * SCRAPE_INTERVAL_SECONDS)


def rollback_budget_seconds(spec: api.InferenceServiceSpec) -> float:
    """Worst-case seconds from a candidate degrading to the rollback, with steady traffic.

    A new error series needs two scrapes before ``rate()`` sees it; then the first failing
    analysis comes within one interval and each further one an interval later, and the rollback
    follows failure ``failureLimit + 1``. A degradation big enough to cross the threshold within
    one scrape's worth of the window (5% errors against a 1% slack does) adds nothing more.
    """
    settings = spec.rollout.analysis
    interval = base.duration_seconds(settings.interval)
    return 2 * SCRAPE_INTERVAL_SECONDS + (settings.failure_limit + 1) * interval


SUCCESS_RATE_SLACK = 0.01
"""A candidate may be this much below stable's success rate (absolute) before it fails."""
LATENCY_RATIO = 1.5
"""A candidate may be this many times slower than stable before it fails."""
LATENCY_SLACK_MS = 5.0
"""Absolute slack on latency so two fast versions do not fail on noise."""


@dataclass(frozen=True)
class Sample:
    """One metric as measured over the last analysis window."""

    metric: str
    value: float | None
    stable_value: float | None = None
    count: float = 0.0
    """Requests the candidate served in the window."""
    error: str = ""
    """Why Prometheus gave no answer; empty when it answered."""


@dataclass(frozen=True)
class Judgement:
    """The verdict of one metric."""

    metric: str
    verdict: Verdict
    value: float | None
    message: str


def metrics_of(spec: api.InferenceServiceSpec) -> tuple[api.AnalysisMetric, ...]:
    """The metrics a rollout of ``spec`` is analysed on."""
    return tuple(spec.rollout.analysis.metrics) or DEFAULT_METRICS


def _selector(namespace: str, name: str, version: str) -> str:
    return (
        f'namespace="{namespace}",{INFERENCE_SERVICE_SERIES}="{name}",'
        f'{MODEL_VERSION_SERIES}="{version}"'
    )


def query(
    metric: api.AnalysisMetric, *, namespace: str, name: str, version: str, window: str
) -> str:
    """Return the PromQL giving ``metric`` for one version over ``window``."""
    match = _selector(namespace, name, version)
    if metric.template == "success-rate":
        return (
            f'sum(rate(kubeinfer_requests_total{{{match},code!~"5.."}}[{window}])) / '
            f"sum(rate(kubeinfer_requests_total{{{match}}}[{window}]))"
        )
    if metric.template in ("latency-p95", "latency-p99"):
        quantile = "0.95" if metric.template == "latency-p95" else "0.99"
        return (
            f"histogram_quantile({quantile}, sum by (le) (rate("
            f"kubeinfer_request_duration_seconds_bucket{{{match}}}[{window}]))) * 1000"
        )
    assert metric.query is not None  # the CRD's CEL rule requires template or query
    return (
        metric.query.replace("{{ version }}", version)
        .replace("{{ namespace }}", namespace)
        .replace("{{ service }}", name)
    )


def count_query(*, namespace: str, name: str, version: str, window: str) -> str:
    """Return the PromQL counting the requests one version served over ``window``."""
    return f"sum(increase(kubeinfer_requests_total{{{_selector(namespace, name, version)}}}[{window}]))"


Check = Callable[[api.AnalysisMetric, Sample, int], tuple[Verdict, str] | None]


def _prometheus_answered(
    metric: api.AnalysisMetric, s: Sample, min_samples: int
) -> tuple[Verdict, str] | None:
    del metric, min_samples
    return ("Error", f"Prometheus did not answer: {s.error}") if s.error else None


def _enough_traffic(
    metric: api.AnalysisMetric, s: Sample, min_samples: int
) -> tuple[Verdict, str] | None:
    del metric
    if s.count < min_samples:
        return (
            "Inconclusive",
            f"{s.count:.0f} requests in the window; {min_samples} needed to judge",
        )
    return None


def _has_value(
    metric: api.AnalysisMetric, s: Sample, min_samples: int
) -> tuple[Verdict, str] | None:
    del metric, min_samples
    return ("Inconclusive", "the query returned no data") if s.value is None else None


def _within_range(
    metric: api.AnalysisMetric, s: Sample, min_samples: int
) -> tuple[Verdict, str] | None:
    del min_samples
    bounds = metric.threshold_range
    assert s.value is not None
    if bounds.min is not None and s.value < bounds.min:
        return "Failed", f"{s.value:.4g} is below the minimum {bounds.min:g}"
    if bounds.max is not None and s.value > bounds.max:
        return "Failed", f"{s.value:.4g} is above the maximum {bounds.max:g}"
    return None


def _no_worse_than_stable(
    metric: api.AnalysisMetric, s: Sample, min_samples: int
) -> tuple[Verdict, str] | None:
    """Templates without explicit bounds are judged against the stable version."""
    del min_samples
    bounds = metric.threshold_range
    if metric.template is None or bounds.min is not None or bounds.max is not None:
        return None
    if s.stable_value is None:
        return None
    assert s.value is not None
    if metric.template == "success-rate":
        floor = s.stable_value - SUCCESS_RATE_SLACK
        if s.value < floor:
            return (
                "Failed",
                f"success rate {s.value:.4f} is below stable's {s.stable_value:.4f} - {SUCCESS_RATE_SLACK}",
            )
        return None
    ceiling = s.stable_value * LATENCY_RATIO + LATENCY_SLACK_MS
    if s.value > ceiling:
        return (
            "Failed",
            f"{metric.template} {s.value:.1f} ms exceeds {LATENCY_RATIO}x stable's {s.stable_value:.1f} ms",
        )
    return None


CHECKS: tuple[Check, ...] = (
    _prometheus_answered,
    _enough_traffic,
    _has_value,
    _within_range,
    _no_worse_than_stable,
)


def judge(metric: api.AnalysisMetric, sample: Sample, *, min_samples: int) -> Judgement:
    """Run the check chain over one metric's sample."""
    for check in CHECKS:
        outcome = check(metric, sample, min_samples)
        if outcome is not None:
            verdict, message = outcome
            return Judgement(metric.name, verdict, sample.value, message)
    return Judgement(metric.name, "Passed", sample.value, "within bounds")


def overall(judgements: tuple[Judgement, ...]) -> Verdict:
    """The worst verdict among the metrics (Error > Failed > Inconclusive > Passed)."""
    if not judgements:
        return "Passed"
    return max((j.verdict for j in judgements), key=SEVERITY.__getitem__)
