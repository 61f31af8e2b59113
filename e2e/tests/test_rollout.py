"""Rollouts on the real control plane: a version change starts a candidate beside stable,
Prometheus being unreachable is reported as its own reason and never rolls back, an operator
restarted mid-rollout resumes at the same step from status, and a shadow rollout mirrors nothing
while its Gateway's class does not list the mirror feature, then mirrors once the class does."""

from __future__ import annotations

import contextlib
import json
import pathlib
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import objects, operator_process, processes, versions, waiting

pytestmark = pytest.mark.e2e
EXAMPLE = versions.REPO_ROOT / "manifests" / "examples" / "02-inferenceservice-cpu.yaml"


def _roll_out_v2_once_ready(cluster: cluster_setup.Cluster, namespace: str) -> None:
    """Wait until v1 of tiny-embedder is Ready, then change the spec's model to v2."""
    cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "infsvc/tiny-embedder",
        "--for=condition=Ready",
        "--timeout=90s",
        timeout=100,
    )
    patch = json.dumps({"spec": {"model": {"version": "v2"}}})
    cluster.kubectl(
        "patch", "infsvc", "tiny-embedder", "-n", namespace, "--type=merge", "-p", patch
    )


def _progressing(
    cluster: cluster_setup.Cluster, namespace: str, reason: Callable[[str], bool]
) -> Callable[[], dict[str, Any] | None]:
    """A check returning the status once Progressing is True with a reason ``reason`` accepts."""

    def check() -> dict[str, Any] | None:
        status = objects.status(cluster, "infsvc/tiny-embedder", namespace=namespace)
        progressing = objects.condition(status, "Progressing")
        return (
            status
            if progressing.get("status") == "True" and reason(progressing["reason"])
            else None
        )

    return check


def test_rollout_waits_on_missing_prometheus_and_resumes_after_restart(
    cluster: cluster_setup.Cluster,
    namespace: str,
    operator: operator_process.RunningOperator,
    operator_kubeconfig: pathlib.Path,
    tmp_path: pathlib.Path,
) -> None:
    kubectl = cluster.kubectl
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    doc["metadata"]["namespace"] = namespace
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc))
    _roll_out_v2_once_ready(cluster, namespace)

    status = waiting.first(
        _progressing(cluster, namespace, lambda r: r == "PrometheusUnavailable"),
        what="the rollout to wait on Prometheus",
        timeout=90.0,
    )
    assert status["stable"]["version"] == "v1"
    assert status["candidate"]["version"] == "v2"
    assert status["rollout"]["phase"] == "Waiting"
    assert objects.condition(status, "Ready").get("status") == "True", (
        "stable keeps serving while the rollout waits"
    )
    assert objects.condition(status, "RolledBack").get("status") == "False"
    assert status["rollout"]["plan"], "the plan is shown before anything changes"
    deployments = kubectl("get", "deploy", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(deployments) == [
        "deployment.apps/tiny-embedder-v1",
        "deployment.apps/tiny-embedder-v2",
    ]

    # Restart the operator mid-rollout: the state is in status, so it resumes at the same step.
    operator.process.stop()
    before = objects.status(cluster, "infsvc/tiny-embedder", namespace=namespace)["rollout"]
    with processes.Supervisor() as supervisor:
        operator_process.start(
            supervisor, kubeconfig=operator_kubeconfig, log_path=tmp_path / "restarted.log"
        )
        time.sleep(8)
        after = objects.status(cluster, "infsvc/tiny-embedder", namespace=namespace)["rollout"]
    for key in ("phase", "step", "stepStartedAt", "deniedVersions"):
        assert after.get(key) == before.get(key), key


GATEWAY_CONTROLLER = "e2e.kubeinfer.io/status-writer"
"""controllerName of the test's GatewayClass: no controller runs; the test writes its status."""


def _feature_status(*names: str) -> str:
    return json.dumps({"status": {"supportedFeatures": [{"name": n} for n in sorted(names)]}})


@contextlib.contextmanager
def _gateway_class(cluster: cluster_setup.Cluster, *features: str) -> Iterator[str]:
    """A GatewayClass publishing ``features`` as its controller would; deleted afterwards."""
    name = f"e2e-{secrets.token_hex(3)}"
    doc = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": name},
        "spec": {"controllerName": GATEWAY_CONTROLLER},
    }
    cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc))
    try:
        _write_class_status(cluster, name, *features)
        yield name
    finally:
        cluster.kubectl("delete", "gatewayclass", name, "--wait=false")


def _write_class_status(cluster: cluster_setup.Cluster, name: str, *features: str) -> None:
    cluster.kubectl(
        "patch",
        "gatewayclass",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        _feature_status(*features),
    )


def _accept_route(cluster: cluster_setup.Cluster, namespace: str, gateway: str) -> None:
    """Report the HTTPRoute Accepted by its Gateway, as a gateway controller would."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    accepted = {
        "type": "Accepted",
        "status": "True",
        "reason": "Accepted",
        "message": "e2e",
        "lastTransitionTime": now,
    }
    parent = {
        "parentRef": {"name": gateway},
        "controllerName": GATEWAY_CONTROLLER,
        "conditions": [accepted],
    }
    cluster.kubectl(
        "patch",
        "httproute",
        "tiny-embedder",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"parents": [parent]}}),
    )


def _route_rule(cluster: cluster_setup.Cluster, namespace: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "httproute", "tiny-embedder", "-n", namespace, "-o", "json")
    rule: dict[str, Any] = json.loads(out.stdout)["spec"]["rules"][0]
    return rule


def test_shadow_mirrors_only_through_a_gateway_class_listing_the_mirror_feature(
    cluster: cluster_setup.Cluster,
    namespace: str,
    operator: operator_process.RunningOperator,
) -> None:
    kubectl = cluster.kubectl
    with _gateway_class(cluster, "Gateway", "HTTPRoute", "HTTPRouteBackendTimeout") as gw_class:
        gateway = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "inference", "namespace": namespace},
            "spec": {
                "gatewayClassName": gw_class,
                "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
            },
        }
        kubectl("apply", "-f", "-", stdin=yaml.safe_dump(gateway))
        doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
        doc["metadata"]["namespace"] = namespace
        doc["spec"]["traffic"] = {"provider": "gateway-api", "parentRefs": [{"name": "inference"}]}
        doc["spec"]["rollout"] = {"strategy": "shadow", "mirrorPercent": 10}
        kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc))
        waiting.first(
            lambda: (
                "tiny-embedder" in kubectl("get", "httproute", "-n", namespace, "-o", "name").stdout
            ),
            what="the operator to create the HTTPRoute",
            timeout=90.0,
        )
        _accept_route(cluster, namespace, "inference")
        _roll_out_v2_once_ready(cluster, namespace)

        status = waiting.first(
            _progressing(cluster, namespace, lambda r: r == "MirrorUnsupported"),
            what="the shadow to be held by its GatewayClass",
            timeout=90.0,
        )
        message = objects.condition(status, "Progressing")["message"]
        assert gw_class in message and "HTTPRouteRequestPercentageMirror" in message
        assert status["candidate"]["version"] == "v2"
        assert status["traffic"]["mirrorPercent"] == 0
        assert status["rollout"]["phase"] == "Waiting"
        assert (
            objects.condition(status, "TrafficReady").items()
            >= {"status": "True", "reason": "AsExpected"}.items()
        ), "stable serves"
        assert objects.condition(status, "Ready").get("status") == "True"
        rule = _route_rule(cluster, namespace)
        assert "filters" not in rule, "no RequestMirror filter while the class lacks the feature"
        assert [b["weight"] for b in rule["backendRefs"]] == [100, 0]

        def warnings() -> list[str]:
            out = kubectl(
                "get",
                "events",
                "-n",
                namespace,
                "-o",
                "json",
                "--field-selector=involvedObject.name=tiny-embedder,reason=MirrorUnsupported",
            ).stdout
            return [e["type"] for e in json.loads(out)["items"]]

        assert waiting.first(warnings, what="the hold's Event", timeout=90.0) == ["Warning"]

        _write_class_status(
            cluster,
            gw_class,
            "Gateway",
            "HTTPRoute",
            "HTTPRouteRequestMirror",
            "HTTPRouteRequestPercentageMirror",
        )

        # A held rollout sets no timer: only the GatewayClass watch (or the 60 s resync) wakes it.
        holds = ("MirrorUnsupported", "MirrorSupportUnknown", "")
        waiting.first(
            _progressing(cluster, namespace, lambda r: r not in holds),
            what="the GatewayClass watch to release the hold, well before the 60 s resync",
            timeout=30.0,
        )
        # past the hold and the candidate's start, the route is applied before status is written
        quiet = (*holds, "CandidateStarting")
        status = waiting.first(
            _progressing(cluster, namespace, lambda r: r not in quiet),
            what="the rollout to move past the mirror hold",
            timeout=90.0,
        )
        assert status["traffic"]["mirrorPercent"] == 10
        (mirror,) = _route_rule(cluster, namespace)["filters"]
        assert mirror["requestMirror"]["percent"] == 10
        backend = mirror["requestMirror"]["backendRef"]
        assert (backend["name"], backend["port"]) == ("tiny-embedder-v2", 8080)
