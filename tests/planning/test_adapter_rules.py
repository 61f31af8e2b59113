"""The prometheus-adapter rules shipped in ``manifests/monitoring`` serve what the operator uses.

Covers: every Pods metric an HPA of any tier names is served by exactly one rule; each rule maps
``namespace`` and ``pod`` to resources (Pods metrics need both); the rule behind a metric reads
the same series, quantile and rate window as KEDA's PromQL for the same signal; rule templates
render to PromQL with balanced brackets; the monitoring kustomization ships the same file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeinfer.api import inference_service as api
from kubeinfer.planning import children
from kubeinfer.planning.serving import autoscaling, tiers

REPO = Path(__file__).resolve().parents[2]
RULES_FILE = REPO / "manifests" / "monitoring" / "adapter-rules.yaml"
OWNER = children.Owner(
    api_version="kubeinfer.io/v1alpha1",
    kind="InferenceService",
    name="chat",
    namespace="serving",
    uid="0",
    generation=1,
    labels={},
)
SERIES_NAME = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")
SIGNAL_SERIES = {
    "latency-p95": (autoscaling.LATENCY_METRIC, autoscaling.LATENCY_SERIES),
    "requests-per-second": (autoscaling.RPS_METRIC, autoscaling.RPS_SERIES),
}


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["rules"]
    return rules


def _series(rule: dict[str, Any]) -> str:
    match = SERIES_NAME.match(rule["seriesQuery"])
    assert match, f"seriesQuery {rule['seriesQuery']!r} does not start with a metric name"
    return match.group(1)


def _served_name(rule: dict[str, Any]) -> str:
    """The custom metric name the adapter derives: ``matches`` applied to the series name, with
    Go's ``$1`` references as Python's ``\\1``."""
    naming = rule["name"]
    replacement = re.sub(r"\$(\d+)", r"\\\1", naming.get("as", "$0").replace("$0", r"\g<0>"))
    return re.sub(naming["matches"], replacement, _series(rule))


def _served() -> dict[str, dict[str, Any]]:
    return {_served_name(rule): rule for rule in _rules()}


def _render(rule: dict[str, Any]) -> str:
    return (
        rule["metricsQuery"]
        .replace("<<.Series>>", _series(rule))
        .replace("<<.LabelMatchers>>", 'namespace="serving",pod=~"chat-v1-a|chat-v1-b"')
        .replace("<<.GroupBy>>", "pod")
    )


def _hpa_metric_names(tier: str) -> list[str]:
    spec = api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "chat", "version": "v1", "uri": "s3://m/chat", "runtime": "vllm"},
            "resources": {"gpus": 0},
            "sla": {"tier": tier},
            "traffic": {"provider": "none"},
        }
    )
    hpa = autoscaling.build_hpa(OWNER, spec, "chat-v1")
    return [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]


@pytest.mark.parametrize("tier", sorted(tiers.TIERS), ids=lambda t: f"every Pods metric of {t}")
def test_every_pods_metric_an_hpa_names_is_served_by_one_rule(tier: str) -> None:
    names = [_served_name(rule) for rule in _rules()]
    for metric in _hpa_metric_names(tier):
        assert names.count(metric) == 1, f"{metric} is served by {names.count(metric)} rules"


def test_both_custom_metrics_of_the_planner_are_served() -> None:
    assert {autoscaling.LATENCY_METRIC, autoscaling.RPS_METRIC} <= set(_served())


@pytest.mark.parametrize(
    "rule", _rules(), ids=lambda r: f"{_served_name(r)} maps namespace and pod"
)
def test_each_rule_maps_namespace_and_pod_to_resources(rule: dict[str, Any]) -> None:
    overrides = rule["resources"]["overrides"]
    assert overrides["namespace"] == {"resource": "namespace"}
    assert overrides["pod"] == {"resource": "pod"}
    assert 'namespace!=""' in rule["seriesQuery"]
    assert 'pod!=""' in rule["seriesQuery"]


@pytest.mark.parametrize(
    "signal", sorted(SIGNAL_SERIES), ids=lambda s: f"{s}: HPA rule and KEDA PromQL agree"
)
def test_rule_and_keda_promql_read_the_same_series_window_and_quantile(signal: str) -> None:
    metric, series = SIGNAL_SERIES[signal]
    rule = _served()[metric]
    keda = autoscaling.promql(signal, namespace="serving", name="chat")  # type: ignore[arg-type]
    assert _series(rule) == series
    assert f"{series}{{" in keda
    window = f"[{autoscaling.RATE_WINDOW}]"
    assert window in rule["metricsQuery"]
    assert window in keda
    if signal == "latency-p95":
        quantile = f"histogram_quantile({autoscaling.LATENCY_QUANTILE},"
        assert quantile in rule["metricsQuery"]
        assert quantile in keda
        assert rule["metricsQuery"].rstrip().endswith("* 1000")
        assert keda.endswith("* 1000")


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: f"{_served_name(r)} renders")
def test_rule_templates_render_to_balanced_promql(rule: dict[str, Any]) -> None:
    query = _render(rule)
    assert "<<" not in query
    for opening, closing in ("()", "{}", "[]"):
        depth = 0
        for char in query:
            depth += (char == opening) - (char == closing)
            assert depth >= 0, query
        assert depth == 0, query
    assert "by (le, pod)" in query or "by (pod)" in query


def test_the_monitoring_kustomization_ships_this_rules_file_as_the_adapter_config() -> None:
    kustomization = yaml.safe_load(
        (RULES_FILE.parent / "kustomization.yaml").read_text(encoding="utf-8")
    )
    generated = kustomization["configMapGenerator"][0]
    assert generated["files"] == [f"config.yaml={RULES_FILE.name}"]
