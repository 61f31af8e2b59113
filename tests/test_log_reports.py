"""Agent reports as the operator parses and keeps them: the agent's JSON shape, bad bodies
refused naming the problem, the latest report per node, stale reports forgotten."""

from __future__ import annotations

from typing import Any

import pytest

from kubeinfer.controllers import log_reports

REPORT: dict[str, Any] = {
    "namespace": "ml",
    "policy": "llama-logs",
    "node": "gpu-1",
    "seen": 1000.0,
    "kept": 120.0,
    "dropped": {"sampling": 870.0, "rateLimit": 10.0, "levelOff": 0.0, "undelivered": 0.0},
    "diskPressureLevel": 1.0,
}


def test_a_report_in_the_agents_shape_is_parsed() -> None:
    namespace, policy, report = log_reports.parse(REPORT)
    assert (namespace, policy, report.node) == ("ml", "llama-logs", "gpu-1")
    assert (report.seen, report.kept, report.disk_pressure_level) == (1000, 120, 1)
    assert dict(report.dropped)["sampling"] == 870


@pytest.mark.parametrize(
    "body",
    [
        {**REPORT, "seen": "many"},
        {k: v for k, v in REPORT.items() if k != "node"},
        {**REPORT, "policy": ""},
    ],
    ids=["a count that is not a number", "no node", "an empty policy"],
)
def test_a_body_that_is_not_a_report_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(log_reports.ReportError):
        log_reports.parse(body)


def test_the_latest_report_per_node_is_kept_and_stale_ones_forgotten() -> None:
    _, _, first = log_reports.parse({**REPORT, "seen": 1})
    _, _, second = log_reports.parse({**REPORT, "seen": 2})
    _, _, other = log_reports.parse({**REPORT, "node": "gpu-2"})
    log_reports.record("ml", "llama-logs", first, now=100.0)
    log_reports.record("ml", "llama-logs", second, now=110.0)
    log_reports.record("ml", "llama-logs", other, now=150.0)
    assert log_reports.recent("ml", "llama-logs", now=160.0) == (second, other)
    stale = 150.0 + log_reports.STALE_AFTER_SECONDS + 1
    assert log_reports.recent("ml", "llama-logs", now=stale) == ()
    assert log_reports.recent("other", "llama-logs", now=150.0) == ()
