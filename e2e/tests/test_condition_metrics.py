"""The metric behind the chart's rollback alert, from a running operator.

Covers: ``kubeinfer_condition_events_total`` counts exactly the condition changes the operator
announces with an Event (kind, namespace, condition type, status, reason), so the chart's
``KubeinferRolledBack`` alert, which counts ``RolledBack``/``True``, fires when a rollback's
Event is posted. Checked on the CPU example reaching Ready, whose first conditions include a
problem Event (``MetricsAvailable`` False, ``MetricsAPIMissing``).
"""

from __future__ import annotations

import collections
import re
import urllib.request

import pytest
import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import operator_process, versions, waiting

pytestmark = pytest.mark.e2e
EXAMPLE = versions.REPO_ROOT / "manifests" / "examples" / "02-inferenceservice-cpu.yaml"
_SERIES = re.compile(r"^kubeinfer_condition_events_total\{([^}]*)\} ([0-9.e+]+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="([^"]*)"')
_CONDITION_EVENT = re.compile(r"^(\w+) is (True|False|Unknown): ")

Key = tuple[str, str, str]  # condition type, status, reason


def _counted(op: operator_process.RunningOperator, namespace: str) -> dict[Key, int]:
    """The operator's counter for InferenceServices of one namespace."""
    url = op.liveness_url.replace("/healthz", "/metrics")
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    out: dict[Key, int] = {}
    for labels_text, value in _SERIES.findall(text):
        labels = dict(_LABEL.findall(labels_text))
        if labels["kind"] == "InferenceService" and labels["namespace"] == namespace:
            out[(labels["type"], labels["status"], labels["reason"])] = int(float(value))
    return out


def _announced(cluster: cluster_setup.Cluster, namespace: str) -> dict[Key, int]:
    """The condition Events the operator posted about InferenceServices of one namespace."""
    events = yaml.safe_load(
        cluster.kubectl(
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            "involvedObject.kind=InferenceService",
            "-o",
            "yaml",
        ).stdout
    )["items"]
    out: collections.Counter[Key] = collections.Counter()
    for event in events:
        match = _CONDITION_EVENT.match(event.get("message") or "")
        if match:
            out[(match[1], match[2], event["reason"])] += int(event.get("count") or 1)
    return dict(out)


def test_condition_events_are_counted_by_type_status_and_reason(
    cluster: cluster_setup.Cluster, namespace: str, operator: operator_process.RunningOperator
) -> None:
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(doc))
    name = doc["metadata"]["name"]
    cluster.kubectl(
        "wait",
        "-n",
        namespace,
        f"inferenceservice/{name}",
        "--for=condition=Ready",
        "--timeout=90s",
        timeout=100,
    )

    def agree() -> dict[Key, int] | None:
        counted = _counted(operator, namespace)
        return counted if counted and counted == _announced(cluster, namespace) else None

    counted = waiting.first(
        agree,
        what="the counter to equal the condition Events",
        timeout=30.0,
        on_timeout=lambda: (
            f"counted {_counted(operator, namespace)}, Events {_announced(cluster, namespace)}"
        ),
    )
    assert counted[("MetricsAvailable", "False", "MetricsAPIMissing")] == 1
