"""How rollouts size the versions on the real control plane: zero-spare GPU moves and blue-green's
delayed scale-down. Analysis runs on a real Prometheus with a query that answers 1 (passes) or 0
(fails), so each step is gated by a real analysis pass.

Covers, on one KWOK node whose 8 GPUs are all held by the stable version's two 4-GPU replicas:
a version change runs in ZeroSpare mode (status and an Event say so, the plan shows 0 extra GPUs),
replicas move one at a time (each move an Event), the upgrade is promoted with both pods of the
new version holding the node's GPUs through DRA claims and the autoscaler back on them; then a
version whose analysis fails is rolled back and stable grows back onto the released GPUs. At no
time is a pod unschedulable: the scheduler posts no ``FailedScheduling`` Event and no pod seen
during the rollouts had ``PodScheduled=False``.

``gpuSurge: never`` with a strategy that needs a full stable is refused at apply time. And for a
blue-green switch: the previous version's Deployment keeps running for
``scaleDownDelay`` (status.rollout.retired says until when), then is deleted; with GPUs, where
the candidate surges onto the node's free sets, its pods survive the switch (same UIDs, one
ReplicaSet) and the placement follows it while the previous version keeps its own sets.
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import gpu_agents, objects, operator_process, processes, prometheus, waiting

pytestmark = pytest.mark.e2e
NAME = "llm"


@pytest.fixture
def analysing_operator(
    kubeinfer_crds: tuple[str, ...],
    operator_kubeconfig: pathlib.Path,
    tmp_path: pathlib.Path,
) -> Iterator[operator_process.RunningOperator]:
    """The operator as its ServiceAccount, analysing rollouts on a Prometheus of its own."""
    with processes.Supervisor() as supervisor:
        scraper = prometheus.start(supervisor, tmp_path / "prometheus")
        yield operator_process.start(
            supervisor,
            kubeconfig=operator_kubeconfig,
            log_path=tmp_path / "kubeinfer-operator.log",
            extra_args=["--prometheus-url", scraper.url],
        )


@pytest.fixture
def one_node(
    cluster: cluster_setup.Cluster, api: Any, namespace: str, tmp_path: pathlib.Path
) -> Iterator[str]:
    """One fresh 8-GPU KWOK node labelled for this test, with its agent publishing DRA devices."""
    with gpu_agents.a100_nodes(
        cluster.kubectl,
        api,
        count=1,
        pool=namespace,
        work_dir=tmp_path / "agents",
        extra_args=["--sample-interval=1", "--resync=5"],
    ) as agents:
        yield agents[0].node


PASSING = "vector(1)"
FAILING = "vector(0)"


def _analysis(query: str) -> dict[str, Any]:
    return {
        "interval": "10s",
        "minSamples": 0,
        "metrics": [{"name": "up", "query": query, "thresholdRange": {"min": 0.5}}],
    }


def _manifests(namespace: str, version: str) -> str:
    pool = {
        "apiVersion": "kubeinfer.io/v1alpha1",
        "kind": "GPUPool",
        "metadata": {"name": "a100", "namespace": namespace},
        "spec": {"nodeSelector": {"matchLabels": {"kubeinfer.io/e2e-pool": namespace}}},
    }
    service = {
        "apiVersion": "kubeinfer.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "model": {"name": "llm", "version": version, "uri": "hf://org/llm"},
            "resources": {"gpus": 4, "cpu": "1", "memory": "1Gi", "sharedMemory": "256Mi"},
            "placement": {"gpuPool": "a100", "topology": "any"},
            "replicas": {"min": 2, "max": 2},
            "sla": {"tier": "bronze"},
            "traffic": {"provider": "none"},
            "rollout": {
                "strategy": "canary",
                "steps": [{"weight": 50, "pause": "10s"}],
                "analysis": _analysis(PASSING),
            },
        },
    }
    return yaml.safe_dump_all([pool, service])


def _pods(cluster: cluster_setup.Cluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = objects.get(cluster, "pods", namespace=namespace)["items"]
    return items


def _events(cluster: cluster_setup.Cluster, namespace: str, reason: str) -> list[str]:
    out = objects.get(cluster, "events", namespace=namespace)["items"]
    # condition transitions post Events with the condition's reason too ("Progressing is ...")
    return [
        e.get("message", "")
        for e in out
        if e.get("reason") == reason and not e.get("message", "").startswith("Progressing is")
    ]


class Watcher:
    """Polls the service's pods and status while a rollout runs, keeping what tests judge."""

    def __init__(self, cluster: cluster_setup.Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.unschedulable: dict[str, dict[str, Any]] = {}
        self.modes: set[str] = set()
        self.plans: list[Any] = []

    def status(self) -> dict[str, Any]:
        for pod in _pods(self.cluster, self.namespace):
            if objects.condition(pod, "PodScheduled").get("status") == "False":
                self.unschedulable[pod["metadata"]["name"]] = pod
        status: dict[str, Any] = (
            objects.get(self.cluster, f"inferenceservice/{NAME}", namespace=self.namespace).get(
                "status"
            )
            or {}
        )
        rollout = status.get("rollout") or {}
        self.modes.add(rollout.get("mode", ""))
        if rollout.get("plan"):
            self.plans.append(rollout["plan"])
        return status

    def until_settled(self, *, stable: str, what: str) -> dict[str, Any]:
        """Poll until ``stable`` serves with no candidate; return that status."""

        def settled() -> dict[str, Any] | None:
            status = self.status()
            # Promoted lasts one pass; after it the rollout is Idle on the new stable
            done = status["stable"]["version"] == stable and not status.get("candidate")
            return status if done else None

        found: dict[str, Any] = waiting.first(
            settled,
            timeout=300,
            interval=0.3,
            what=what,
            on_timeout=lambda: json.dumps(self.status().get("rollout")),
        )
        return found


def _live(cluster: cluster_setup.Cluster, namespace: str) -> list[dict[str, Any]]:
    """The service's pods that are not terminating."""
    return [p for p in _pods(cluster, namespace) if not p["metadata"].get("deletionTimestamp")]


def _holds_the_node(
    cluster: cluster_setup.Cluster, namespace: str, version: str
) -> list[dict[str, Any]] | None:
    """Both pods, all of ``version`` and Ready (the node's GPUs are all theirs)."""
    pods = _live(cluster, namespace)
    versions = {p["metadata"]["labels"].get("kubeinfer.io/model-version") for p in pods}
    ready = all(objects.condition(p, "Ready").get("status") == "True" for p in pods)
    return pods if len(pods) == 2 and versions == {version} and ready else None


def test_with_every_gpu_in_use_replicas_move_both_ways_and_never_wait_on_a_gpu(
    cluster: cluster_setup.Cluster,
    namespace: str,
    analysing_operator: operator_process.RunningOperator,
    one_node: str,
) -> None:
    kubectl = cluster.kubectl
    kubectl("apply", "-f", "-", stdin=_manifests(namespace, "v1"))

    pods = waiting.first(
        lambda: _holds_the_node(cluster, namespace, "v1"),
        timeout=120,
        what="two 4-GPU v1 pods holding all 8 GPUs",
    )
    assert {p["spec"].get("nodeName") for p in pods} == {one_node}
    svc = objects.get(cluster, f"inferenceservice/{NAME}", namespace=namespace)
    assert objects.condition(svc, "Ready").get("status") == "True"

    watcher = Watcher(cluster, namespace)
    patch = json.dumps({"spec": {"model": {"version": "v2"}}})
    kubectl("patch", "infsvc", NAME, "-n", namespace, "--type=merge", "-p", patch)
    started = time.monotonic()
    status = watcher.until_settled(stable="v2", what="the upgrade to be promoted")
    print(f"v1 -> v2 with zero spare GPUs promoted after {time.monotonic() - started:.1f} s")
    assert "ZeroSpare" in watcher.modes
    assert [{"weight": 50, "candidateReplicas": 1, "stableReplicas": 1, "gpus": 0}] in (
        watcher.plans
    )
    assert _events(cluster, namespace, "ZeroSpareRollout"), "the mode is explained in an Event"
    assert _events(cluster, namespace, "Promoted") == [
        "Promoted v2 to stable after moving 2 replicas one at a time."
    ]
    assert _events(cluster, namespace, "ReplicaMoving") == [
        "Moving replica 2 of 2 from v1 to v2: stable 0, candidate 2."
    ]
    waiting.first(
        lambda: _holds_the_node(cluster, namespace, "v2"), what="both v2 pods ready", timeout=90.0
    )
    claims = objects.get(cluster, "resourceclaims", namespace=namespace)["items"]
    held = [
        frozenset(
            d["device"]
            for d in ((c.get("status") or {}).get("allocation") or {})
            .get("devices", {})
            .get("results", [])
        )
        for c in claims
    ]
    held = [h for h in held if h]
    assert len(held) == 2, held
    assert len(frozenset().union(*held)) == 8, held
    deployments = kubectl("get", "deploy", "-n", namespace, "-o", "name").stdout.split()
    assert deployments == [f"deployment.apps/{NAME}-v2"]
    hpa = objects.get(cluster, f"hpa/{NAME}", namespace=namespace)
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{NAME}-v2", "the autoscaler is back"
    assert status["rollout"]["mode"] == ""

    # v3's analysis fails: the move is undone and v2 grows back onto the released GPUs.
    patch = json.dumps(
        {"spec": {"model": {"version": "v3"}, "rollout": {"analysis": _analysis(FAILING)}}}
    )
    kubectl("patch", "infsvc", NAME, "-n", namespace, "--type=merge", "-p", patch)
    started = time.monotonic()

    def rolled_back() -> dict[str, Any] | None:
        status = watcher.status()
        done = (status.get("rollout") or {}).get("rolledBackFrom") == "v3"
        return status if done and _holds_the_node(cluster, namespace, "v2") else None

    status = waiting.first(rolled_back, timeout=300, interval=0.3, what="v3 rolled back, v2 whole")
    print(f"v3 rolled back and v2 whole again after {time.monotonic() - started:.1f} s")
    assert objects.condition(status, "RolledBack").get("status") == "True"
    waiting.first(
        lambda: (
            objects.get(cluster, f"hpa/{NAME}", namespace=namespace)["spec"]["scaleTargetRef"][
                "name"
            ]
            == f"{NAME}-v2"
        ),
        what="stable handed back to the autoscaler",
        timeout=90.0,
    )
    assert watcher.unschedulable == {}, "no pod waited on a GPU another still held"
    assert _events(cluster, namespace, "FailedScheduling") == []


@pytest.mark.usefixtures("analysing_operator")
def test_blue_green_keeps_the_previous_version_for_the_scale_down_delay(
    cluster: cluster_setup.Cluster, namespace: str
) -> None:
    kubectl = cluster.kubectl
    doc = yaml.safe_load(_manifests(namespace, "v1").split("---")[1])
    doc["spec"]["resources"] = {"gpus": 0, "cpu": "1", "memory": "1Gi", "sharedMemory": "256Mi"}
    doc["spec"]["placement"] = {}
    doc["spec"]["rollout"].update(strategy="blueGreen", scaleDownDelay="15s")
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc))
    kubectl(
        "wait",
        "-n",
        namespace,
        f"infsvc/{NAME}",
        "--for=condition=Ready",
        "--timeout=90s",
        timeout=100,
    )
    watcher = Watcher(cluster, namespace)
    patch = json.dumps({"spec": {"model": {"version": "v2"}}})
    kubectl("patch", "infsvc", NAME, "-n", namespace, "--type=merge", "-p", patch)
    status = watcher.until_settled(stable="v2", what="the blue-green switch")
    switched = time.monotonic()
    retired = status["rollout"]["retired"]
    assert retired["version"] == "v1" and retired["scaleDownAt"]
    deployments = kubectl("get", "deploy", "-n", namespace, "-o", "name").stdout.split()
    assert f"deployment.apps/{NAME}-v1" in deployments, "v1 keeps running after the switch"
    front = objects.get(cluster, f"service/{NAME}", namespace=namespace)
    assert front["spec"]["selector"]["kubeinfer.io/model-version"] == "v2"

    def v1_gone() -> bool:
        names = kubectl("get", "deploy", "-n", namespace, "-o", "name").stdout.split()
        return f"deployment.apps/{NAME}-v1" not in names

    waiting.first(v1_gone, timeout=60, what="v1 deleted after the scale-down delay")
    waited = time.monotonic() - switched
    print(f"v1 deleted {waited:.1f} s after the switch was seen (scaleDownDelay 15s)")
    assert waited > 5, "not deleted at the switch"
    assert _events(cluster, namespace, "ScaledDown")
    waiting.first(
        lambda: watcher.status()["rollout"].get("retired") is None,
        timeout=30,
        what="status.rollout.retired cleared",
    )


def _live_pods(cluster: cluster_setup.Cluster, namespace: str, version: str) -> dict[str, str]:
    """Pod name -> UID of ``version``'s pods that are not terminating."""
    return {
        p["metadata"]["name"]: p["metadata"]["uid"]
        for p in _live(cluster, namespace)
        if p["metadata"]["labels"].get("kubeinfer.io/model-version") == version
    }


def test_a_gpu_blue_green_switch_keeps_the_promoted_pods(
    cluster: cluster_setup.Cluster,
    namespace: str,
    analysing_operator: operator_process.RunningOperator,
    one_node: str,
) -> None:
    kubectl = cluster.kubectl
    pool, doc = yaml.safe_load_all(_manifests(namespace, "v1"))
    doc["spec"]["resources"]["gpus"] = 2  # two replicas hold 4 of the 8 GPUs: v2 surges
    doc["spec"]["rollout"].update(strategy="blueGreen", scaleDownDelay="15s")
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([pool, doc]))
    waiting.first(
        lambda: _holds_the_node(cluster, namespace, "v1"), what="two v1 pods ready", timeout=90.0
    )
    v1_sets = objects.get(cluster, f"inferenceservice/{NAME}", namespace=namespace)["status"][
        "placement"
    ]

    watcher = Watcher(cluster, namespace)
    patch = json.dumps({"spec": {"model": {"version": "v2"}}})
    kubectl("patch", "infsvc", NAME, "-n", namespace, "--type=merge", "-p", patch)

    def candidate_ready() -> dict[str, str] | None:
        status = watcher.status()
        ready = (status.get("candidate") or {}).get("readyReplicas") == 2
        pods = _live_pods(cluster, namespace, "v2")
        return pods if ready and len(pods) == 2 else None

    candidates = waiting.first(candidate_ready, timeout=120, what="two v2 candidate pods ready")
    assert "Surge" in watcher.modes
    status = watcher.until_settled(stable="v2", what="the blue-green switch")
    retired = status["rollout"]["retired"]
    assert retired["version"] == "v1" and retired["placement"] == v1_sets
    v2_sets = {(p["node"], tuple(p["gpus"])) for p in status["placement"]}
    assert not v2_sets & {(p["node"], tuple(p["gpus"])) for p in v1_sets}

    def v1_gone() -> bool:
        names = kubectl("get", "deploy", "-n", namespace, "-o", "name").stdout.split()
        return f"deployment.apps/{NAME}-v1" not in names

    waiting.first(v1_gone, timeout=60, what="v1 deleted after the scale-down delay")
    assert _live_pods(cluster, namespace, "v2") == candidates, "promotion re-created no v2 pod"
    sets = kubectl(
        "get", "rs", "-n", namespace, "-l", "kubeinfer.io/model-version=v2", "-o", "name"
    )
    assert len(sets.stdout.split()) == 1, "the v2 pod template never changed"
    assert watcher.unschedulable == {}


@pytest.mark.usefixtures("kubeinfer_crds")
def test_moving_replicas_is_refused_for_strategies_that_need_a_full_stable(
    cluster: cluster_setup.Cluster, namespace: str
) -> None:
    doc = yaml.safe_load(_manifests(namespace, "v1").split("---")[1])
    doc["spec"]["rollout"].update(strategy="shadow", gpuSurge="never")
    result = cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc), check=False)
    assert result.returncode != 0
    assert "spec.rollout.gpuSurge" in result.stderr
    assert "needs the canary strategy" in result.stderr
