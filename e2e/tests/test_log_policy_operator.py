"""LogPolicy under the real operator on the real control plane, with the real collector as the
operator's validator (``KUBEINFER_COLLECTOR``, as the operator image ships it).

Covers: a LogPolicy selecting an InferenceService gets its agent ConfigMap and DaemonSet, the
collector's own validate passes the rendered configuration, the agents (on kwok nodes) roll onto
the config hash that status, the ConfigMap and the pod template agree on, and Ready turns True;
a pattern RE2 cannot compile gets ``InvalidRegex`` naming the rule, with an Event and no agents;
a hash rule without a key Secret is rejected at apply time; a policy selecting an
InferenceService that logs to files puts a native collector sidecar and the ConfigMap of its
configuration into the service's Deployment, with the hash the policy's status names on the pod
template, and a changed policy changes that hash, and Applied waits until the pods rolled onto
it; a log directory mounted for
something else is refused at apply time; the report endpoint refuses a report without a token, with
a token the API server does not accept or one issued for another audience (401), and from another
namespace's ServiceAccount (403), and takes one with a projected token of the policy's namespace;
a real agent's reports (sent with such a token) become ``status.records`` (every line accounted
for) and, on a filling volume, ``DiskPressure=True`` with a ``LogVolumeFilling`` Event, cleared
when the volume empties.
"""

from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.request
from typing import Any

import pytest
import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import log_replay, objects, operator_process, otelcol, processes, versions, waiting
from kubeinfer.api import log_policy as api
from kubeinfer.controllers import log_reports, log_validation
from kubeinfer.planning import children
from kubeinfer.planning import log_policy as planner
from kubeinfer.planning.labels import LOG_CONFIG_HASH_ANNOTATION
from kubeinfer.planning.logs import collector
from kubeinfer.planning.logs import pipeline as log_agent

pytestmark = pytest.mark.e2e
EXAMPLES = versions.REPO_ROOT / "manifests" / "examples"


@pytest.fixture
def validating(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the operator started after this fixture the collector binary to validate with."""
    monkeypatch.setenv(log_validation.COLLECTOR_ENV, str(otelcol.ensure_collector()))


def _policy(namespace: str, name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "kubeinfer.io/v1alpha1",
        "kind": "LogPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "inferenceService": "tiny-embedder",
            "outputs": [{"name": "gateway", "type": "http", "endpoint": "http://127.0.0.1:4318"}],
            **spec,
        },
    }
    return yaml.safe_dump(body)


def _ready_policy(cluster: cluster_setup.Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The policy, once Ready."""
    wait = ("wait", "-n", namespace, f"logpolicy/{name}", "--for=condition=Ready")
    cluster.kubectl(*wait, "--timeout=120s", timeout=130)
    return objects.get(cluster, f"logpolicy/{name}", namespace=namespace)


def test_policy_on_an_inference_service_gets_validated_agents_and_becomes_ready(
    cluster: cluster_setup.Cluster,
    namespace: str,
    validating: None,
    operator: operator_process.RunningOperator,
) -> None:
    isvc = yaml.safe_load((EXAMPLES / "02-inferenceservice-cpu.yaml").read_text())
    isvc["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(isvc))
    cluster.kubectl("apply", "-f", "-", stdin=_policy(namespace, "embedder-logs"))
    policy = _ready_policy(cluster, namespace, "embedder-logs")
    digest = policy["status"]["configHash"]
    assert objects.condition(policy, "ConfigValid")["reason"] == "AsExpected"
    assert digest in objects.condition(policy, "ConfigValid")["message"]
    config_map = objects.get(cluster, "configmap/embedder-logs-log-agent", namespace=namespace)
    text = config_map["data"][planner.CONFIG_KEY]
    assert f"/var/log/pods/{namespace}_tiny-embedder-*/*/*.log" in text
    daemon_set = objects.get(cluster, "daemonset/embedder-logs-log-agent", namespace=namespace)
    template = daemon_set["spec"]["template"]["metadata"]["annotations"]
    assert template[LOG_CONFIG_HASH_ANNOTATION] == digest
    assert daemon_set["status"]["updatedNumberScheduled"] >= 1
    pods = objects.get(
        cluster, "pods", "-l", "kubeinfer.io/inferenceservice=tiny-embedder", namespace=namespace
    )
    assert policy["status"]["matchedTargets"] == len(pods["items"])


def test_a_pattern_re2_rejects_gets_invalid_regex_naming_the_rule_and_an_event(
    cluster: cluster_setup.Cluster,
    namespace: str,
    validating: None,
    operator: operator_process.RunningOperator,
) -> None:
    rules = [{"name": "card-suffix", "pattern": "card(?=[0-9]{4})", "action": "mask"}]
    cluster.kubectl(
        "apply", "-f", "-", stdin=_policy(namespace, "bad-regex", redaction={"rules": rules})
    )

    def invalid() -> dict[str, Any]:
        body = objects.get(cluster, "logpolicy/bad-regex", namespace=namespace)
        return (
            body if objects.condition(body, "ConfigValid").get("reason") == "InvalidRegex" else {}
        )

    policy = waiting.first(invalid, what="ConfigValid=False InvalidRegex", timeout=90.0)
    assert "redaction rule 'card-suffix'" in objects.condition(policy, "ConfigValid")["message"]
    assert objects.condition(policy, "Ready")["status"] == "False"
    events = waiting.first(
        lambda: cluster.kubectl(
            "get", "events", "-n", namespace, "--field-selector", "reason=InvalidRegex"
        ).stdout.count("card-suffix"),
        what="an InvalidRegex Event",
        timeout=90.0,
    )
    assert events >= 1
    agents = cluster.kubectl("get", "-n", namespace, "daemonsets", "-o", "name").stdout
    assert "bad-regex-log-agent" not in agents


def test_a_hash_rule_without_a_key_secret_is_rejected_at_apply_time(
    cluster: cluster_setup.Cluster, namespace: str, kubeinfer_crds: tuple[str, ...]
) -> None:
    rules = [{"name": "user", "pattern": "user_id=[0-9]+", "action": "hash"}]
    refused = cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=_policy(namespace, "no-key", redaction={"rules": rules}),
        check=False,
    )
    assert refused.returncode != 0
    assert "hash rules need hashKeySecret" in refused.stderr


def _file_logging_embedder(namespace: str, **logging: Any) -> str:
    isvc = yaml.safe_load((EXAMPLES / "02-inferenceservice-cpu.yaml").read_text())
    isvc["metadata"]["namespace"] = namespace
    isvc["spec"]["logging"] = {"mode": "file", **logging}
    return yaml.safe_dump(isvc)


def test_a_policy_on_a_file_logging_service_adds_a_sidecar_whose_hash_rolls_with_the_policy(
    cluster: cluster_setup.Cluster,
    namespace: str,
    validating: None,
    operator: operator_process.RunningOperator,
) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=_file_logging_embedder(namespace))
    cluster.kubectl("apply", "-f", "-", stdin=_policy(namespace, "embedder-files"))
    policy = _ready_policy(cluster, namespace, "embedder-files")
    first = policy["status"]["sidecarConfigHash"]
    assert "sidecar configuration " + first in objects.condition(policy, "ConfigValid")["message"]

    def template_with(digest: str) -> dict[str, Any]:
        deployment = objects.get(cluster, "deployment/tiny-embedder-v1", namespace=namespace)
        template = deployment["spec"]["template"]
        annotations = template["metadata"].get("annotations") or {}
        return template if annotations.get(LOG_CONFIG_HASH_ANNOTATION) == digest else {}

    template = waiting.first(
        lambda: template_with(first), what="the sidecar's hash on the pods", timeout=90.0
    )
    (sidecar,) = template["spec"]["initContainers"]
    assert sidecar["name"] == "kubeinfer-log-embedder-files"
    assert sidecar["restartPolicy"] == "Always"
    server = template["spec"]["containers"][0]
    assert {"name": "KUBEINFER_LOG_DIR", "value": "/var/log/model-server"} in server["env"]
    config_map = objects.get(cluster, "configmap/tiny-embedder-log-collector", namespace=namespace)
    text = config_map["data"]["embedder-files.yaml"]
    assert children.content_hash(text) == first
    assert f"{collector.SIDECAR_LOGS}/*.log" in text

    cluster.kubectl(
        "patch",
        "-n",
        namespace,
        "logpolicy/embedder-files",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"sampling": {"rates": {"INFO": 0.5}}}}),
    )

    def changed() -> str:
        digest = objects.get(cluster, "logpolicy/embedder-files", namespace=namespace)["status"][
            "sidecarConfigHash"
        ]
        return digest if digest != first else ""

    second = waiting.first(changed, what="a new sidecarConfigHash", timeout=90.0)
    waiting.first(
        lambda: template_with(second), what="the new hash on the pod template", timeout=90.0
    )

    def applied() -> dict[str, Any]:
        condition = objects.condition(
            objects.get(cluster, "logpolicy/embedder-files", namespace=namespace), "Applied"
        )
        done = condition.get("status") == "True"
        return (
            condition if done and f"sidecar configuration {second}" in condition["message"] else {}
        )

    condition = waiting.first(
        applied, what="Applied once the pods run the new sidecar", timeout=90.0
    )
    assert "pods with a sidecar run" in condition["message"]


def test_a_log_directory_mounted_for_something_else_is_refused_at_apply_time(
    cluster: cluster_setup.Cluster, namespace: str, kubeinfer_crds: tuple[str, ...]
) -> None:
    refused = cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=_file_logging_embedder(namespace, directory="/dev/shm"),
        check=False,
    )
    assert refused.returncode != 0
    assert "logging.directory must not be" in refused.stderr


def _token(cluster: cluster_setup.Cluster, namespace: str, *audience: str) -> str:
    """A token of a ServiceAccount of ``namespace`` (for the API server without ``audience``)."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "log-agent"}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(account))
    flags = [f"--audience={a}" for a in audience]
    return cluster.kubectl("create", "token", "log-agent", "-n", namespace, *flags).stdout.strip()


def _post_report(url: str, namespace: str, token: str | None, *, seen: int = 666) -> int:
    node = "node-a" if seen != 666 else f"forger-{token is not None}"
    body = {"namespace": namespace, "policy": "reported", "node": node, "seen": seen, "kept": 0}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_reports_need_a_token_for_the_operator_from_the_policys_namespace(
    cluster: cluster_setup.Cluster,
    namespace: str,
    operator: operator_process.RunningOperator,
) -> None:
    url = operator.liveness_url.removesuffix("/healthz") + log_reports.PATH
    other = f"{namespace[:50]}-other"
    cluster.kubectl("create", "namespace", other)
    cluster.kubectl("apply", "-f", "-", stdin=_policy(namespace, "reported"))
    try:
        assert _post_report(url, namespace, None) == 401, "no token"
        assert _post_report(url, namespace, "not-a-token") == 401, "a token nobody issued"
        for_the_api_server = _token(cluster, namespace)
        assert _post_report(url, namespace, for_the_api_server) == 401, "another audience"
        foreign = _token(cluster, other, collector.REPORT_AUDIENCE)
        assert _post_report(url, namespace, foreign) == 403, "another namespace's account"
        own = _token(cluster, namespace, collector.REPORT_AUDIENCE)
        assert _post_report(url, namespace, own, seen=7) == 204

        def counted() -> int:
            body = objects.get(cluster, "logpolicy/reported", namespace=namespace)
            return int(body.get("status", {}).get("records", {}).get("seen", 0))

        assert (
            waiting.first(counted, what="the taken report in status.records", timeout=90.0) == 7
        ), "only the authenticated report counts"
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


@pytest.mark.usefixtures("validating")
def test_agent_reports_become_status_counts_and_a_disk_pressure_condition_with_events(
    cluster: cluster_setup.Cluster,
    namespace: str,
    operator: operator_process.RunningOperator,
    tmp_path: pathlib.Path,
    small_volume: pathlib.Path,
) -> None:
    sink = log_replay.Sink()
    outputs = [{"name": "gateway", "type": "http", "endpoint": sink.endpoint}]
    cluster.kubectl("apply", "-f", "-", stdin=_policy(namespace, "reported", outputs=outputs))
    body = yaml.safe_load(_policy(namespace, "reported", outputs=outputs))
    spec = api.LogPolicySpec.model_validate(body["spec"])
    operator_url = operator.liveness_url.removesuffix("/healthz")
    token_file = tmp_path / "token"
    token_file.write_text(_token(cluster, namespace, collector.REPORT_AUDIENCE), encoding="utf-8")
    logs = tmp_path / "pods"
    with processes.Supervisor() as supervisor:
        port = processes.free_port()
        config = log_agent.render_config(
            spec,
            include=[f"{logs}/*/*/*.log"],
            state_dir=str(small_volume / "state"),
            volume=str(small_volume),
            metrics_port=port,
            reporting=log_agent.Reporting(
                endpoint=operator_url + log_reports.PATH,
                namespace=namespace,
                policy="reported",
                node="node-a",
                token_file=str(token_file),
            ),
        )
        log_replay.start_agent(
            supervisor,
            binary=otelcol.ensure_collector(),
            config=config,
            workdir=tmp_path / "a",
            metrics_port=port,
        )
        lines = [f"INFO request {i}" for i in range(1_000)] + [
            f"ERROR failed {i}" for i in range(100)
        ]
        log_replay.write_lines(log_replay.container_log(logs), lines)

        def settled() -> dict[str, Any]:
            records = objects.get(cluster, "logpolicy/reported", namespace=namespace)["status"].get(
                "records", {}
            )
            handled = records.get("kept", 0) + sum(records.get("dropped", {}).values())
            return records if records.get("seen") == len(lines) == handled else {}

        records = waiting.first(
            settled, what="status.records to account for every line", timeout=90.0
        )
        assert records["kept"] == sink.count()
        assert records["dropped"]["sampling"] > 800, "INFO is sampled at 0.1 by default"
        policy = objects.get(cluster, "logpolicy/reported", namespace=namespace)
        assert objects.condition(policy, "DiskPressure")["status"] == "False"

        log_replay.fill_to(small_volume, 87)

        def pressed() -> dict[str, Any]:
            condition = objects.condition(
                objects.get(cluster, "logpolicy/reported", namespace=namespace), "DiskPressure"
            )
            return condition if condition.get("status") == "True" else {}

        condition = waiting.first(pressed, what="DiskPressure=True", timeout=90.0)
        assert condition["reason"] == "LogVolumeFilling"
        assert "node-a at step 1" in condition["message"]
        waiting.first(
            lambda: (
                "node-a at step 1"
                in cluster.kubectl(
                    "get", "events", "-n", namespace, "--field-selector", "reason=LogVolumeFilling"
                ).stdout
            ),
            what="a LogVolumeFilling Event",
            timeout=90.0,
        )
        log_replay.fill_to(small_volume, 0)
        waiting.first(
            lambda: (
                objects.condition(
                    objects.get(cluster, "logpolicy/reported", namespace=namespace), "DiskPressure"
                ).get("status")
                == "False"
            ),
            what="DiskPressure to clear",
            timeout=90.0,
        )
    sink.close()
