"""ServiceMonitor -> Prometheus targets, the way prometheus-operator labels them, without a cluster.

Covers: a target per (Service with the endpoint's port, pod in its EndpointSlices) carrying
``namespace``, ``service``, ``pod``, ``container``, ``endpoint``, ``job``, the sanitised
``podTargetLabels`` and the endpoint's path and interval, aimed at the pod's simulator; pods
without a simulator, Services without the port and Services the selector misses get none;
``matchExpressions`` select like the API server's selectors; the EndpointSlices the selector
mode computes for loopback-IP pods hold the pods a Service selects that have an IP, are not
terminating and have not finished.
"""

from __future__ import annotations

from typing import Any

import pytest

from e2e.harness import scrape_targets
from kubeinfer.api import inference_service as api
from kubeinfer.planning import children, inference_service
from kubeinfer.planning.labels import INFERENCE_SERVICE_SERIES

NS = "serving"
MONITOR: dict[str, Any] = {
    "metadata": {"name": "chat", "namespace": NS},
    "spec": {
        "selector": {"matchLabels": {"kubeinfer.io/inferenceservice": "chat"}},
        "podTargetLabels": ["kubeinfer.io/inferenceservice", "kubeinfer.io/model-version"],
        "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s"}],
    },
}
POD_LABELS = {"kubeinfer.io/inferenceservice": "chat", "kubeinfer.io/model-version": "v1"}


def _service(name: str, port: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"ports": [{"name": port, "port": 8002}]},
    }


def _slice(service: str, pods: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"labels": {scrape_targets.SERVICE_NAME_LABEL: service}},
        "endpoints": [{"targetRef": {"kind": "Pod", "name": p}} for p in pods],
    }


def _pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": POD_LABELS},
        "spec": {"containers": [{"name": "server", "ports": [{"name": "metrics"}]}]},
    }


def test_each_pod_behind_a_selected_service_is_a_target_with_operator_labels() -> None:
    groups = scrape_targets.target_groups(
        MONITOR,
        services=[
            _service("chat-v1", "metrics", POD_LABELS),
            _service("chat", "http", {"kubeinfer.io/inferenceservice": "chat"}),  # no such port
            _service("other", "metrics", {"app": "other"}),  # not selected
        ],
        slices=[_slice("chat-v1", ["a", "b"]), _slice("chat", ["a", "b"]), _slice("other", ["z"])],
        pods=[_pod("a"), _pod("b"), _pod("z")],
        addresses={"a": "127.0.0.2:1000", "z": "127.0.0.9:1000"},  # b has no simulator yet
    )
    assert groups == [
        {
            "targets": ["127.0.0.2:1000"],
            "labels": {
                "__metrics_path__": "/metrics",
                "__scrape_interval__": "15s",
                "__scrape_timeout__": "15s",
                "namespace": NS,
                "service": "chat-v1",
                "pod": "a",
                "container": "server",
                "endpoint": "metrics",
                "job": "chat-v1",
                INFERENCE_SERVICE_SERIES: "chat",
                "kubeinfer_io_model_version": "v1",
            },
        }
    ]


@pytest.mark.parametrize(
    ("expression", "selected"),
    [
        ({"key": "kubeinfer.io/model-version", "operator": "Exists"}, True),
        ({"key": "kubeinfer.io/model-version", "operator": "DoesNotExist"}, False),
        ({"key": "kubeinfer.io/model-version", "operator": "In", "values": ["v1"]}, True),
        ({"key": "kubeinfer.io/model-version", "operator": "NotIn", "values": ["v1"]}, False),
    ],
    ids=["Exists", "DoesNotExist", "In", "NotIn"],
)
def test_match_expressions_select_like_label_selectors(
    expression: dict[str, Any], selected: bool
) -> None:
    monitor = {
        **MONITOR,
        "spec": {**MONITOR["spec"], "selector": {"matchExpressions": [expression]}},
    }
    groups = scrape_targets.target_groups(
        monitor,
        services=[_service("chat-v1", "metrics", POD_LABELS)],
        slices=[_slice("chat-v1", ["a"])],
        pods=[_pod("a")],
        addresses={"a": "127.0.0.2:1000"},
    )
    assert bool(groups) is selected


@pytest.mark.parametrize(
    "runtime",
    [
        "vllm",
        "generic",
        "triton",  # its metrics port exists on the version Service only
    ],
)
def test_the_operators_service_monitor_scrapes_each_pod_once(runtime: str) -> None:
    spec = api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "chat", "version": "v1", "uri": "s3://m/chat", "runtime": runtime},
            "resources": {"gpus": 0},
            "sla": {"tier": "gold"},
            "traffic": {"provider": "none"},
        }
    )
    owner = children.Owner(
        api_version="kubeinfer.io/v1alpha1",
        kind="InferenceService",
        name="chat",
        namespace=NS,
        uid="0",
        generation=1,
        labels={},
    )
    rendered = inference_service.render(owner, spec)
    services = [c for c in rendered if c["kind"] == "Service"]
    (monitor,) = [c for c in rendered if c["kind"] == "ServiceMonitor"]
    (deployment,) = [c for c in rendered if c["kind"] == "Deployment"]
    pod = {"metadata": {"name": "a", **deployment["spec"]["template"]["metadata"]}}
    pod["spec"] = deployment["spec"]["template"]["spec"]
    groups = scrape_targets.target_groups(
        monitor,
        services=services,
        # Every Service whose selector matches the pod lists it, as the EndpointSlice controller does.
        slices=[
            _slice(s["metadata"]["name"], ["a"])
            for s in services
            if s["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        ],
        pods=[pod],
        addresses={"a": "127.0.0.2:1000"},
    )
    assert len(groups) == 1, [g["labels"]["service"] for g in groups]


def test_selector_mode_lists_the_pods_the_endpointslice_controller_would() -> None:
    def pod(name: str, labels: dict[str, str], **status: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": NS, "labels": labels}, "status": status}

    services: list[dict[str, Any]] = [
        {"metadata": {"name": "chat-v1"}, "spec": {"selector": POD_LABELS}},
        {"metadata": {"name": "by-hand"}, "spec": {}},  # no selector: endpoints written by hand
    ]
    pods = [
        pod("ready", POD_LABELS, podIP="127.42.0.2", phase="Running"),
        pod("no-ip-yet", POD_LABELS, phase="Pending"),
        pod("finished", POD_LABELS, podIP="127.42.0.3", phase="Succeeded"),
        pod("other", {"app": "other"}, podIP="127.42.0.4", phase="Running"),
        {
            **pod("terminating", POD_LABELS, podIP="127.42.0.5", phase="Running"),
            "metadata": {
                "name": "terminating",
                "labels": POD_LABELS,
                "deletionTimestamp": "2026-01-01T00:00:00Z",
            },
        },
    ]
    slices = scrape_targets.selector_slices(services, pods)
    assert slices == [
        {
            "metadata": {
                "name": "chat-v1",
                "labels": {scrape_targets.SERVICE_NAME_LABEL: "chat-v1"},
            },
            "endpoints": [
                {
                    "addresses": ["127.42.0.2"],
                    "targetRef": {"kind": "Pod", "name": "ready", "namespace": NS},
                }
            ],
        }
    ]
