"""Collector sidecars of InferenceServices that log to files: which LogPolicies select a pod,
the native sidecar reading the volume the server writes, the hash annotation that equals the
policy's ``status.sidecarConfigHash`` and changes with the policy (so the pods roll), and the
node agents skipping the sidecars' own container logs.

The golden renders are in ``test_inference_service_golden.py``; the configuration passes the
real collector's ``validate`` in ``e2e/tests/test_log_policy_operator.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kubeinfer.api import inference_service as api
from kubeinfer.api import log_policy as log_api
from kubeinfer.planning import children, inference_service
from kubeinfer.planning import log_policy as planner
from kubeinfer.planning.labels import LOG_CONFIG_HASH_ANNOTATION, LOG_POLICIES_ANNOTATION
from kubeinfer.planning.logs import collector
from kubeinfer.planning.logs import sidecar as log_sidecar
from kubeinfer.planning.serving import model_server

OWNER = children.Owner("kubeinfer.io/v1alpha1", "InferenceService", "chat", "ml", "uid-chat")


def _service(mode: str = "file") -> api.InferenceServiceSpec:
    return api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "chat", "version": "v1", "uri": "hf://org/chat"},
            "resources": {"gpus": 0},
            "traffic": {"provider": "none"},
            "logging": {"mode": mode},
        }
    )


def _policy(name: str = "chat-logs", **spec: Any) -> log_sidecar.Policy:
    owner = children.Owner("kubeinfer.io/v1alpha1", "LogPolicy", name, "ml", f"uid-{name}")
    body = {
        "inferenceService": "chat",
        "outputs": [{"name": "out", "type": "http", "endpoint": "http://127.0.0.1:4318"}],
        **spec,
    }
    if "selector" in spec:
        del body["inferenceService"]
    return log_sidecar.Policy(owner, log_api.LogPolicySpec.model_validate(body))


def _pod(spec: api.InferenceServiceSpec, *policies: log_sidecar.Policy) -> dict[str, Any]:
    deployment = model_server.build_deployment(OWNER, spec, log_policies=policies)
    return dict(deployment["spec"]["template"])


@pytest.mark.parametrize(
    ("policy", "selected"),
    [
        (_policy(), True),
        (_policy(inferenceService="other"), False),
        (_policy(selector={"matchLabels": {"kubeinfer.io/model-version": "v1"}}), True),
        (_policy(selector={"matchLabels": {"kubeinfer.io/model-version": "v2"}}), False),
        (_policy(redaction={"rules": [{"name": "r", "pattern": "(a)\\1"}]}), False),
    ],
    ids=[
        "a policy naming the service selects it",
        "a policy naming another service does not",
        "a label selector matching the pods selects them",
        "a label selector matching other pods does not",
        "a policy failing its checks runs no sidecar",
    ],
)
def test_which_policies_get_a_sidecar(policy: log_sidecar.Policy, selected: bool) -> None:
    pod = _pod(_service(), policy)
    sidecars = [c["name"] for c in pod["spec"].get("initContainers", [])]
    assert sidecars == (["kubeinfer-log-chat-logs"] if selected else [])


def test_a_native_sidecar_reads_the_volume_the_server_writes() -> None:
    pod = _pod(_service(), _policy())
    server = pod["spec"]["containers"][0]
    (sidecar,) = pod["spec"]["initContainers"]
    assert sidecar["restartPolicy"] == "Always"
    server_mount = {"name": log_sidecar.LOG_VOLUME, "mountPath": "/var/log/model-server"}
    assert server_mount in server["volumeMounts"]
    assert {"name": "KUBEINFER_LOG_DIR", "value": "/var/log/model-server"} in server["env"]
    assert {
        "name": log_sidecar.LOG_VOLUME,
        "mountPath": collector.SIDECAR_LOGS,
        "readOnly": True,
    } in sidecar["volumeMounts"]
    assert sidecar["args"] == [f"--config={log_sidecar.CONFIG_DIR}/chat-logs.yaml"]


def test_a_service_logging_to_stdout_gets_no_sidecar_and_no_config_map() -> None:
    objs = inference_service.render(OWNER, _service("stdout"), log_policies=(_policy(),))
    assert not any(o["kind"] == "ConfigMap" for o in objs)
    pod = next(o for o in objs if o["kind"] == "Deployment")["spec"]["template"]
    assert "initContainers" not in pod["spec"]
    assert "annotations" not in pod["metadata"]


def test_the_config_map_holds_the_policy_sidecar_config_byte_for_byte() -> None:
    policy = _policy()
    objs = inference_service.render(OWNER, _service(), log_policies=(policy,))
    (config_map,) = [o for o in objs if o["kind"] == "ConfigMap"]
    assert config_map["metadata"]["name"] == "chat-log-collector"
    assert config_map["data"] == {
        "chat-logs.yaml": collector.sidecar_config_text(policy.owner, policy.spec)
    }


def test_the_hash_annotation_is_the_policy_status_hash_and_changes_with_the_policy() -> None:
    policy = _policy()
    annotations = _pod(_service(), policy)["metadata"]["annotations"]
    status = planner.plan(policy.owner, policy.spec, planner.Observed()).status
    assert annotations[LOG_CONFIG_HASH_ANNOTATION] == status.sidecar_config_hash
    assert annotations[LOG_POLICIES_ANNOTATION] == "chat-logs"
    changed = _policy(sampling={"rates": {"INFO": 0.5}})
    other = _pod(_service(), changed)["metadata"]["annotations"]
    assert other[LOG_CONFIG_HASH_ANNOTATION] != annotations[LOG_CONFIG_HASH_ANNOTATION]


def test_two_policies_get_two_sidecars_in_name_order_with_separate_state() -> None:
    second = _policy("audit", selector={"matchLabels": {"kubeinfer.io/inferenceservice": "chat"}})
    pod = _pod(_service(), _policy(), second)
    sidecars = pod["spec"]["initContainers"]
    assert [c["name"] for c in sidecars] == ["kubeinfer-log-audit", "kubeinfer-log-chat-logs"]
    assert [m["subPath"] for c in sidecars for m in c["volumeMounts"] if "subPath" in m] == [
        "audit",
        "chat-logs",
    ]
    assert pod["metadata"]["annotations"][LOG_POLICIES_ANNOTATION] == "audit,chat-logs"


def test_the_sidecar_reads_plain_files_named_as_the_pods_container() -> None:
    policy = _policy(outputs=[{"name": "disk", "type": "file", "path": "/var/log/ki"}])
    config = yaml.safe_load(collector.sidecar_config_text(policy.owner, policy.spec))
    receiver = config["receivers"]["filelog"]
    assert receiver["include"] == [f"{collector.SIDECAR_LOGS}/*.log"]
    assert "container" not in [op["type"] for op in receiver["operators"]]
    assert receiver["resource"]["k8s.pod.name"] == "${env:POD_NAME}"
    assert config["extensions"]["kubeinfer_report"]["node"] == "pod/${env:POD_NAME}"
    # pods on one node share the host directory: each writes its own subdirectory
    assert config["exporters"]["kubeinfer_file/disk"]["directory"] == "/var/log/ki/${env:POD_NAME}"


def test_node_agents_skip_the_sidecars_own_container_logs() -> None:
    policy = _policy()
    config = yaml.safe_load(collector.config_text(policy.owner, policy.spec))
    assert config["receivers"]["filelog"]["exclude"] == [
        f"/var/log/pods/ml_*/{collector.SIDECAR_CONTAINER_PREFIX}*/*.log"
    ]


def _deployment(namespace: str, annotations: dict[str, str], replicas: int, updated: int) -> Any:
    return {
        "metadata": {"namespace": namespace},
        "spec": {"template": {"metadata": {"annotations": annotations}}},
        "status": {"replicas": replicas, "updatedReplicas": updated},
    }


def test_the_sidecar_rollout_counts_pods_of_templates_running_the_current_hash() -> None:
    policy = _policy()
    current = children.content_hash(policy.config_text)
    names = LOG_POLICIES_ANNOTATION
    hashes = LOG_CONFIG_HASH_ANNOTATION
    deployments = [
        _deployment("ml", {names: "audit,chat-logs", hashes: f"aaaa,{current}"}, 3, 2),
        _deployment("ml", {names: "chat-logs", hashes: "old"}, 2, 2),
        _deployment("ml", {names: "audit", hashes: current}, 5, 5),
        _deployment("other", {names: "chat-logs", hashes: current}, 7, 7),
        _deployment("ml", {}, 4, 4),
    ]
    assert log_sidecar.rollout(deployments, owner=policy.owner, digest=current) == (5, 2)


@pytest.mark.parametrize(
    ("pods", "updated", "expected"),
    [
        (0, 0, ("True", "AsExpected")),
        (3, 1, ("False", "AgentsRolling")),
        (3, 3, ("True", "AsExpected")),
    ],
    ids=["no sidecars", "sidecar pods still rolling", "every sidecar pod updated"],
)
def test_applied_waits_for_the_pods_with_a_sidecar(
    pods: int, updated: int, expected: tuple[str, str]
) -> None:
    policy = _policy()
    observed = planner.Observed(
        agents_desired=2, agents_updated=2, sidecar_pods=pods, sidecar_pods_updated=updated
    )
    plan = planner.plan(policy.owner, policy.spec, observed)
    applied = next(o for o in plan.observations if o.type == "Applied")
    assert (applied.status, applied.reason) == expected
