"""Rollouts judged by real Prometheus: simulators stand for the pods of both versions on
loopback, Debian's Prometheus scrapes them with the labels the operator's ServiceMonitor gives,
and the operator (run with ``--prometheus-url``) analyses candidate against stable.

Covers: a healthy canary promotes through every step (the old version's Deployment goes, the
autoscaler targets the new one); a candidate whose simulators return 5% errors is rolled back
automatically, with ``RolledBack`` carrying the evidence and the version denylisted (and its
Event read back from the API server); a canary whose candidate gets fewer requests than
``minSamples`` waits with ``InsufficientData`` and moves on once traffic arrives; Prometheus
down (nothing listening at ``--prometheus-url``) waits with ``PrometheusUnavailable`` through
more analyses than ``failureLimit`` allows failures, and never rolls back. Argo CD's own
evaluator, with the shipped health scripts, judges the live rolled-back InferenceService
Healthy with the rollback named (never Degraded, which would re-sync the bad commit). The time
from the degradation to all traffic on stable is printed (``pytest -s``) beside the target of
two analysis intervals (60 s with the default 30 s), the worst case the scrape interval and
analysis settings allow (``analysis.rollback_budget_seconds``), and Flagger's documented
default interval of 60 s times its ``threshold`` of failed checks (5 in its tutorials: 5 min).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from e2e.harness import (
    argocd,
    argocd_live,
    objects,
    operator_process,
    prometheus,
    scrape_targets,
    waiting,
)
from e2e.harness import cluster as cluster_setup
from e2e.simulator import behaviour, fleet, load, server
from kubeinfer.api import inference_service as api
from kubeinfer.planning.rollout import analysis

pytestmark = pytest.mark.e2e

NAME = "chat"
LOAD = load.ROLLOUT
TRICKLE = load.Limits(rate=0.2, duration_s=900.0, max_requests=200, concurrency=2)
"""Spread over a stable and a candidate pod: ~6 candidate requests a 60 s window, under 20."""


@pytest.fixture
def operator_with_prometheus_down(
    kubeinfer_crds: tuple[str, ...], operator_kubeconfig: pathlib.Path, tmp_path: pathlib.Path
) -> Iterator[operator_process.RunningOperator]:
    """The operator pointed at a loopback port where no Prometheus listens (it is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with operator_process.running(
        operator_kubeconfig, tmp_path / "kubeinfer-operator.log", ["--prometheus-url", url]
    ) as running:
        yield running


def _manifest(namespace: str, version: str, pause: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubeinfer.io/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": NAME, "namespace": namespace},
            "spec": {
                "model": {
                    "name": "chat",
                    "version": version,
                    "uri": "s3://models/chat",
                    "runtime": "vllm",
                },
                "resources": {"gpus": 0, "cpu": "1", "memory": "2Gi", "sharedMemory": "256Mi"},
                "replicas": {"min": 2, "max": 2},
                "sla": {"tier": "silver"},
                "autoscaling": {"engine": "keda"},
                "traffic": {"provider": "none"},
                "rollout": {
                    "strategy": "canary",
                    "steps": [{"weight": 20, "pause": pause}, {"weight": 50, "pause": pause}],
                    "analysis": {"interval": "30s", "minSamples": 20},  # failureLimit 0
                },
            },
        }
    )


def _await(
    cluster: cluster_setup.Cluster,
    namespace: str,
    check: Callable[[], Any],
    *,
    what: str,
    timeout: float = 240,
) -> Any:
    """Poll ``check`` until it holds; on timeout the failure shows the rollout's status."""
    return waiting.first(
        check,
        timeout=timeout,
        what=what,
        on_timeout=lambda: _summary(cluster, namespace),
        interval=1.0,
    )


def _summary(cluster: cluster_setup.Cluster, namespace: str) -> str:
    status = objects.status(cluster, f"infsvc/{NAME}", namespace=namespace)
    return json.dumps(
        {"rollout": status.get("rollout"), "progressing": objects.condition(status, "Progressing")},
        indent=1,
    )


def _event(cluster: cluster_setup.Cluster, namespace: str, reason: str) -> dict[str, Any] | None:
    """The first Event with ``reason`` on the InferenceService, read through events.k8s.io/v1.

    The rollout's analyses and its rollback run in reconciles woken by the requeue timer (or the
    resync), not by a watch event: nothing in the cluster changes between two analyses.
    (kubectl, not the Python client: its model refuses the core/v1 Events other components
    post, which have no ``eventTime``.)
    """
    out = cluster.kubectl("get", "events.v1.events.k8s.io", "-n", namespace, "-o", "json").stdout
    found: list[dict[str, Any]] = json.loads(out)["items"]
    return next(
        (
            e
            for e in found
            if e.get("reason") == reason and (e.get("regarding") or {}).get("name") == NAME
        ),
        None,
    )


@contextlib.contextmanager
def _simulated(
    cluster: cluster_setup.Cluster,
    namespace: str,
    scraper: prometheus.Prometheus,
    limits: load.Limits = LOAD,
) -> Iterator[fleet.Fleet]:
    """A simulator per pod of every version, scraped by Prometheus, under ``limits`` of load."""
    identity = server.Identity(runtime="vllm", model="chat")
    with (
        contextlib.closing(cluster.api_client()) as api,
        fleet.Fleet(identity, behaviour.Behaviour()) as sims,
        scrape_targets.Follower(
            api, namespace=namespace, monitor_name=NAME, simulators=sims, scraper=scraper
        ) as follower,
    ):
        waiting.first(
            lambda: len(sims.addresses()) >= 1,
            timeout=60,
            what="simulators for the stable pods",
            on_timeout=lambda: f"(follower error: {follower.error!r})",
            interval=1.0,
        )
        _, stop = sims.start_load(limits)
        try:
            yield sims
        finally:
            stop()


def _break(sims: fleet.Fleet, version_prefix: str, document: dict[str, Any]) -> list[str]:
    """Apply ``document`` to the simulators of one version's pods (their admin endpoint)."""
    broken = []
    for pod, address in sims.addresses().items():
        if pod.startswith(version_prefix):
            request = urllib.request.Request(
                f"http://{address}/admin/behaviour",
                data=json.dumps(document).encode(),
                method="PUT",
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200
            broken.append(pod)
    return broken


def _start_rollout(cluster: cluster_setup.Cluster, namespace: str, pause: str) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=_manifest(namespace, "v1", pause))
    cluster.kubectl(
        "wait",
        "-n",
        namespace,
        f"infsvc/{NAME}",
        "--for=condition=Ready",
        "--timeout=120s",
        timeout=130,
    )


def test_healthy_candidate_promotes_through_every_step(
    cluster: cluster_setup.Cluster,
    namespace: str,
    scraper: prometheus.Prometheus,
    analysing_operator: operator_process.RunningOperator,
) -> None:
    _start_rollout(cluster, namespace, pause="30s")
    with _simulated(cluster, namespace, scraper):
        started = time.monotonic()
        cluster.kubectl("apply", "-f", "-", stdin=_manifest(namespace, "v2", pause="30s"))
        weights: set[int] = set()

        def promoted() -> bool:
            status = objects.status(cluster, f"infsvc/{NAME}", namespace=namespace)
            weights.add(int(status.get("traffic", {}).get("candidateWeight", 0)))
            return bool(status.get("stable", {}).get("version") == "v2")

        _await(
            cluster,
            namespace,
            promoted,
            timeout=420,
            what="v2 to be promoted",
        )
        print(
            f"\nhealthy canary promoted after {time.monotonic() - started:.0f} s; weights seen {sorted(weights)}"
        )
    assert {20, 50} <= weights
    status = objects.status(cluster, f"infsvc/{NAME}", namespace=namespace)
    assert objects.condition(status, "Progressing")["reason"] in ("Promoted", "NoRollout")
    assert objects.condition(status, "Ready")["status"] == "True"
    assert all(m["verdict"] == "Passed" for m in status["rollout"]["measurements"])
    waiting.first(
        lambda: (
            cluster.kubectl("get", "deploy", "-n", namespace, "-o", "name").stdout.split()
            == ["deployment.apps/chat-v2"]
        ),
        timeout=60,
        what="the old version's Deployment to go",
        interval=1.0,
    )
    scaled = cluster.kubectl(
        "get", "scaledobject", NAME, "-n", namespace, "-o", "jsonpath={.spec.scaleTargetRef.name}"
    ).stdout
    assert scaled == "chat-v2"


def test_candidate_with_five_percent_errors_is_rolled_back(
    cluster: cluster_setup.Cluster,
    namespace: str,
    scraper: prometheus.Prometheus,
    analysing_operator: operator_process.RunningOperator,
    live: argocd_live.LiveJudge,
) -> None:
    _start_rollout(cluster, namespace, pause="10m")
    with _simulated(cluster, namespace, scraper) as sims:
        cluster.kubectl("apply", "-f", "-", stdin=_manifest(namespace, "v2", pause="10m"))

        def judged_healthy() -> bool:
            measurements = (
                objects.status(cluster, f"infsvc/{NAME}", namespace=namespace)
                .get("rollout", {})
                .get("measurements")
                or []
            )
            return bool(measurements) and all(m["verdict"] == "Passed" for m in measurements)

        _await(
            cluster,
            namespace,
            judged_healthy,
            what="a passing analysis of the candidate",
        )
        assert _break(sims, "chat-v2", {"errorRate": 0.05})
        degraded = time.monotonic()

        def rolled_back() -> dict[str, Any] | None:
            status = objects.status(cluster, f"infsvc/{NAME}", namespace=namespace)
            if (
                status.get("rollout", {}).get("phase") == "RolledBack"
                and status["traffic"]["candidateWeight"] == 0
            ):
                return status
            return None

        status = _await(
            cluster,
            namespace,
            rolled_back,
            what="the rollback",
        )
        took = time.monotonic() - degraded
        spec = api.InferenceServiceSpec.model_validate(
            yaml.safe_load(_manifest(namespace, "v2", pause="10m"))["spec"]
        )
        budget = analysis.rollback_budget_seconds(spec)
        print(
            f"\n5% errors: all traffic back on stable {took:.0f} s after the degradation "
            f"(target 2 x 30 s analysis interval = 60 s; worst case {budget:.0f} s = 2 x "
            f"{analysis.SCRAPE_INTERVAL_SECONDS} s scrapes + "
            f"(failureLimit {spec.rollout.analysis.failure_limit} + 1) x 30 s; "
            f"Flagger: default 60 s interval x threshold 5 of its tutorials = 300 s)"
        )
        # A bound with room for a loaded machine, not the target: the figure is reported.
        assert took <= budget + 60, f"rollback took {took:.0f} s, over {budget:.0f} s + 60 s"
    rolled = objects.condition(status, "RolledBack")
    assert rolled["status"] == "True"
    event = waiting.first(
        lambda: _event(cluster, namespace, "RolledBack"),
        timeout=30,
        what="the RolledBack Event",
        interval=1.0,
    )
    assert event["reportingController"] == "kubeinfer.io/operator"
    assert event["regarding"]["kind"] == "InferenceService"
    assert event["type"] == "Normal" and "success-rate=" in event["note"], event
    assert "success-rate=" in rolled["message"]
    assert objects.condition(status, "Ready")["status"] == "True", "stable keeps serving"
    assert status["rollout"]["deniedVersions"] == ["v2"]
    assert status["stable"]["version"] == "v1"
    waiting.first(
        lambda: (
            cluster.kubectl("get", "deploy", "-n", namespace, "-o", "name").stdout.split()
            == ["deployment.apps/chat-v1"]
        ),
        timeout=60,
        what="the candidate's Deployment to go",
        interval=1.0,
    )
    # Argo CD, judging the live object with the shipped health scripts, must not see Degraded
    # (it would re-sync the bad commit): Healthy, naming the rollback.
    health = live.judge(yaml.safe_load(_manifest(namespace, "v2", pause="10m")))
    judged = objects.condition(
        yaml.safe_load(live.scratch.read_text(encoding="utf-8"))["status"], "RolledBack"
    )
    assert health == argocd.Health("Healthy", judged["message"]), health
    assert judged["message"].startswith("Rolled back v2"), judged


def _assert_waits(status: dict[str, Any], *, verdict: str, saying: str) -> None:
    """The rollout waits (every metric judged ``verdict``), stable serves, nothing rolled back."""
    progressing = objects.condition(status, "Progressing")
    assert progressing["status"] == "True"
    assert saying in progressing["message"], progressing["message"]
    assert status["rollout"]["phase"] == "Waiting"
    assert {m["verdict"] for m in status["rollout"]["measurements"]} == {verdict}
    assert objects.condition(status, "RolledBack")["status"] == "False"
    assert objects.condition(status, "Ready")["status"] == "True", "stable keeps serving"
    assert status["stable"]["version"] == "v1"


def test_low_traffic_canary_waits_with_the_reason_then_proceeds_when_traffic_arrives(
    cluster: cluster_setup.Cluster,
    namespace: str,
    scraper: prometheus.Prometheus,
    analysing_operator: operator_process.RunningOperator,
) -> None:
    _start_rollout(cluster, namespace, pause="30s")
    with _simulated(cluster, namespace, scraper, limits=TRICKLE) as sims:
        cluster.kubectl("apply", "-f", "-", stdin=_manifest(namespace, "v2", pause="30s"))

        def waits_for_data() -> dict[str, Any] | None:
            status = objects.status(cluster, f"infsvc/{NAME}", namespace=namespace)
            progressing = objects.condition(status, "Progressing")
            return status if progressing.get("reason") == "InsufficientData" else None

        status = _await(
            cluster,
            namespace,
            waits_for_data,
            what="the canary to wait for traffic",
        )
        _assert_waits(status, verdict="Inconclusive", saying="needed to judge")
        assert status["rollout"]["step"] == 0
        assert status["rollout"]["waitingSince"]

        _, stop = sims.start_load(LOAD)
        try:
            _await(
                cluster,
                namespace,
                lambda: (
                    objects.status(cluster, f"infsvc/{NAME}", namespace=namespace)
                    .get("rollout", {})
                    .get("step", 0)
                    >= 1
                    or objects.status(cluster, f"infsvc/{NAME}", namespace=namespace)
                    .get("stable", {})
                    .get("version")
                    == "v2"
                ),
                what="the canary to move on once traffic arrived",
            )
        finally:
            stop()
    assert (
        objects.condition(
            objects.status(cluster, f"infsvc/{NAME}", namespace=namespace), "RolledBack"
        )["status"]
        == "False"
    )


def test_prometheus_down_waits_with_its_reason_and_never_rolls_back(
    cluster: cluster_setup.Cluster,
    namespace: str,
    operator_with_prometheus_down: operator_process.RunningOperator,
) -> None:
    _start_rollout(cluster, namespace, pause="30s")
    cluster.kubectl("apply", "-f", "-", stdin=_manifest(namespace, "v2", pause="30s"))
    analyses: set[str] = set()

    # More analyses than failureLimit + 1: had they counted as failures, it would have rolled back.
    def waited_through_three_analyses() -> dict[str, Any] | None:
        status = objects.status(cluster, f"infsvc/{NAME}", namespace=namespace)
        if objects.condition(status, "Progressing").get("reason") == "PrometheusUnavailable":
            analyses.add(status["rollout"]["lastAnalysisAt"])
        return status if len(analyses) >= 3 else None

    status = _await(
        cluster,
        namespace,
        waited_through_three_analyses,
        what="three analyses that could not reach Prometheus",
    )
    _assert_waits(status, verdict="Error", saying="Prometheus did not answer")
    assert status["rollout"]["failures"] == 0
