"""Rollouts on the real control plane: a version change starts a candidate beside stable,
Prometheus being unreachable is reported as its own reason and never rolls back, and an
operator restarted mid-rollout resumes at the same step from status."""

from __future__ import annotations

import functools
import json
import pathlib
import time
from typing import Any

import pytest
import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import operator_process, processes, versions, waiting

pytestmark = pytest.mark.e2e
EXAMPLE = versions.REPO_ROOT / "manifests" / "examples" / "02-inferenceservice-cpu.yaml"


_eventually = functools.partial(waiting.first, timeout=90.0, interval=0.5)
"""Poll until the check holds; returns its first truthy result."""


def _status(cluster: cluster_setup.Cluster, namespace: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "infsvc", "tiny-embedder", "-n", namespace, "-o", "json").stdout
    status: dict[str, Any] = json.loads(out).get("status") or {}
    return status


def _condition(status: dict[str, Any], kind: str) -> tuple[str, str]:
    found: dict[str, str] = next(
        (c for c in status.get("conditions") or [] if c["type"] == kind), {}
    )
    return found.get("status", ""), found.get("reason", "")


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
    kubectl(
        "wait",
        "-n",
        namespace,
        "infsvc/tiny-embedder",
        "--for=condition=Ready",
        "--timeout=90s",
        timeout=100,
    )

    patch = json.dumps({"spec": {"model": {"version": "v2"}}})
    kubectl("patch", "infsvc", "tiny-embedder", "-n", namespace, "--type=merge", "-p", patch)

    def waits_on_prometheus() -> dict[str, Any] | None:
        status = _status(cluster, namespace)
        if _condition(status, "Progressing") == ("True", "PrometheusUnavailable"):
            return status
        return None

    status = _eventually(waits_on_prometheus, what="the rollout to wait on Prometheus")
    assert status["stable"]["version"] == "v1"
    assert status["candidate"]["version"] == "v2"
    assert status["rollout"]["phase"] == "Waiting"
    assert _condition(status, "Ready")[0] == "True", "stable keeps serving while the rollout waits"
    assert _condition(status, "RolledBack")[0] == "False"
    assert status["rollout"]["plan"], "the plan is shown before anything changes"
    deployments = kubectl("get", "deploy", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(deployments) == [
        "deployment.apps/tiny-embedder-v1",
        "deployment.apps/tiny-embedder-v2",
    ]

    # Restart the operator mid-rollout: the state is in status, so it resumes at the same step.
    operator.process.stop()
    before = _status(cluster, namespace)["rollout"]
    with processes.Supervisor() as supervisor:
        operator_process.start(
            supervisor, kubeconfig=operator_kubeconfig, log_path=tmp_path / "restarted.log"
        )
        time.sleep(8)
        after = _status(cluster, namespace)["rollout"]
    for key in ("phase", "step", "stepStartedAt", "deniedVersions"):
        assert after.get(key) == before.get(key), key
