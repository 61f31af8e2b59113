"""Golden renders of every InferenceService child, for each tier (and autoscaler engine), each
runtime, each traffic provider and each way of logging (stdout; files without a LogPolicy; files
read by the collector sidecars of one or two selecting LogPolicies, with policies that select
another service or fail their checks left out): one axis varied at a time from a common base."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeinfer.api import inference_service as api
from kubeinfer.api import log_policy as log_api
from kubeinfer.planning import children, inference_service, render
from kubeinfer.planning.logs import sidecar as log_sidecar
from kubeinfer.planning.serving import model_server

GOLDEN = Path(__file__).parent / "golden" / "inference_service"
OWNER = children.Owner(
    api_version="kubeinfer.io/v1alpha1",
    kind="InferenceService",
    name="chat",
    namespace="serving",
    uid=render.PLACEHOLDER_UID,
    generation=1,
    labels={"team": "ml", "app.kubernetes.io/instance": "argocd-app"},
)
BASE: dict[str, Any] = {
    "model": {"name": "chat", "version": "v2", "uri": "s3://models/chat/v2", "runtime": "vllm"},
    "resources": {"gpus": 2, "gpuMemory": "40Gi"},
    "placement": {"gpuPool": "h100"},
    "replicas": {"min": 1, "max": 4},
    "sla": {"tier": "gold", "latencyP95Ms": 250},
    "traffic": {"provider": "gateway-api", "parentRefs": [{"name": "gw", "namespace": "infra"}]},
}
CASES: dict[str, dict[str, Any]] = {
    "tier-gold-hpa": {},
    "tier-gold-keda": {"autoscaling": {"engine": "keda"}},
    "tier-silver": {"sla": {"tier": "silver", "requestsPerSecond": 4}},
    "tier-bronze": {"sla": {"tier": "bronze"}},
    "runtime-vllm-hf": {"model": {"uri": "hf://org/chat"}},
    "runtime-triton": {"model": {"runtime": "triton"}},
    "runtime-generic-pvc": {"model": {"runtime": "generic", "uri": "pvc://weights/chat/v2"}},
    "provider-gateway-api": {"traffic": {"hostnames": ["chat.example.internal"]}},
    "provider-istio": {"traffic": {"provider": "istio", "parentRefs": []}},
    "provider-none": {"traffic": {"provider": "none", "parentRefs": []}},
    "logging-file-no-policy": {"logging": {"mode": "file"}},
    "logging-file-one-policy": {"logging": {"mode": "file", "directory": "/var/log/vllm"}},
    "logging-file-two-policies": {"logging": {"mode": "file", "sizeLimit": "4Gi"}},
    "logging-stdout-with-policies": {},
}


def _log_policy(name: str, **spec: Any) -> log_sidecar.Policy:
    owner = children.Owner("kubeinfer.io/v1alpha1", "LogPolicy", name, "serving", f"uid-{name}")
    outputs = [{"name": "gateway", "type": "otlp", "endpoint": "http://gw.obs.svc:4317"}]
    return log_sidecar.Policy(
        owner, log_api.LogPolicySpec.model_validate({"outputs": outputs, **spec})
    )


BY_NAME = _log_policy(
    "chat-logs",
    inferenceService="chat",
    redaction={
        "rules": [{"name": "user", "pattern": "user=[0-9]+", "action": "hash"}],
        "hashKeySecret": "chat-log-key",
    },
    outputs=[
        {"name": "gateway", "type": "otlp", "endpoint": "http://gw.obs.svc:4317"},
        {"name": "disk", "type": "file", "path": "/var/log/kubeinfer/chat"},
    ],
)
BY_LABEL = _log_policy("team-ml-audit", selector={"matchLabels": {"team": "ml"}})
OTHER_SERVICE = _log_policy("other-logs", inferenceService="other")
INVALID = _log_policy(
    "broken", inferenceService="chat", redaction={"rules": [{"name": "x", "pattern": "a(?=b)"}]}
)
LOG_POLICIES: dict[str, tuple[log_sidecar.Policy, ...]] = {
    "logging-file-one-policy": (BY_NAME, OTHER_SERVICE),
    "logging-file-two-policies": (INVALID, BY_LABEL, BY_NAME, OTHER_SERVICE),
    "logging-stdout-with-policies": (BY_NAME, BY_LABEL),
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def _render(case: str) -> str:
    spec = api.InferenceServiceSpec.model_validate(_merge(BASE, CASES[case]))
    items = inference_service.render(OWNER, spec, log_policies=LOG_POLICIES.get(case, ()))
    return "---\n".join(yaml.safe_dump(c, sort_keys=True, width=100) for c in items)


@pytest.mark.parametrize("case", sorted(CASES))
def test_children_match_golden(case: str) -> None:
    text = _render(case)
    golden = GOLDEN / f"{case}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), "run `UPDATE_GOLDEN=1 make unit` and review"


@pytest.mark.parametrize("case", sorted(CASES))
def test_render_is_byte_identical_twice(case: str) -> None:
    assert _render(case).encode() == _render(case).encode()


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_child_sets_replicas_or_argocd_tracking(case: str) -> None:
    for child in yaml.safe_load_all(_render(case)):
        assert "app.kubernetes.io/instance" not in child["metadata"]["labels"]
        if child["kind"] == "Deployment":
            assert "replicas" not in child["spec"]


def test_triton_loads_with_the_tier_batching_through_model_control() -> None:
    deployment = next(yaml.safe_load_all(_render("runtime-triton")))
    hook = deployment["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["postStart"]
    script = hook["exec"]["command"][-1]
    assert "/v2/repository/models/chat/load" in script
    assert "max_queue_delay_microseconds" in script


def test_pvc_models_are_mounted_read_only() -> None:
    deployment = next(yaml.safe_load_all(_render("runtime-generic-pvc")))
    pod = deployment["spec"]["template"]["spec"]
    assert {
        "name": "model",
        "persistentVolumeClaim": {"claimName": "weights", "readOnly": True},
    } in pod["volumes"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["KUBEINFER_MODEL_LOCATION"] == "/models/chat/v2"


def test_startup_probe_allows_the_model_load_timeout() -> None:
    spec = _merge(BASE, {"model": {"loadTimeout": "30m"}})
    deployment = model_server.build_deployment(OWNER, api.InferenceServiceSpec.model_validate(spec))
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 30 * 60
