"""Hot model reload: a Triton service takes new versions in place, behind the same analysis.

The service's pods run on a KWOK node whose ``podCIDR`` is a loopback range, so each pod's IP is
a 127.x address where its Triton simulator listens on Triton's port: the operator calls the
pods' model-control API exactly as it would in a cluster (and the harness plays the
endpointslice controller, which refuses loopback addresses). Debian's Prometheus scrapes the
simulators with the pods' labels, as in the other rollout tests.

Covers: the operator loads the stable version into each fresh server and the service becomes
Ready; a healthy version is promoted through every step in place (each step's candidate pods,
every pod loaded exactly once per version, the same pods throughout, the Deployment's template
never changed); a version whose servers return 5% errors is rolled back by loading stable again,
with ``RolledBack`` carrying the evidence and still no pod restarted; a version the servers
refuse to load fails at once with Triton's answer on the pod, in an Event and as the rollback's
evidence; a server whose container restarted (empty again) is loaded again; and apply-time
refusals of inPlace for another runtime or a non-numeric version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import (
    gpu_nodes,
    objects,
    operator_process,
    prometheus,
    scrape_targets,
    waiting,
)
from e2e.simulator import behaviour, fleet, load, server
from kubeinfer.planning.labels import LOAD_ERROR_ANNOTATION, LOADED_AT_RESTART_ANNOTATION
from kubeinfer.planning.serving import runtimes

pytestmark = pytest.mark.e2e

NAME = "chat"
PODS = 4
LOAD = load.ROLLOUT
VERSIONS = (2, 3, 4, 5)
BAD_LOAD = "failed to load 'chat' version 5: unable to find '/models/chat/5/model.plan'"


def _manifest(namespace: str, node: str, version: int, **rollout: Any) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubeinfer.io/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": NAME, "namespace": namespace},
            "spec": {
                "model": {
                    "name": NAME,
                    "version": str(version),
                    "uri": "s3://models/repository",
                    "runtime": "triton",
                },
                "resources": {"gpus": 0, "cpu": "1", "memory": "2Gi", "sharedMemory": "256Mi"},
                "replicas": {"min": PODS, "max": PODS},
                "sla": {"tier": "silver"},
                # the HPA controller holds minReplicas even without metrics (KEDA is not run)
                "autoscaling": {"engine": "hpa"},
                "traffic": {"provider": "none"},
                "placement": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "tolerations": [{**gpu_nodes.LOOPBACK_TAINT, "operator": "Equal"}],
                },
                "rollout": {
                    "reload": "inPlace",
                    "steps": [{"weight": 25, "pause": "20s"}, {"weight": 50, "pause": "20s"}],
                    "analysis": {"interval": "20s", "minSamples": 20},
                    **rollout,
                },
            },
        }
    )


def _pods(cluster: cluster_setup.Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    items = objects.get(cluster, "pods", namespace=namespace)["items"]
    return {p["metadata"]["name"]: p for p in items}


def _versions(cluster: cluster_setup.Cluster, namespace: str) -> dict[str, str]:
    """Pod -> the version label the operator put on it after its load."""
    return {
        name: (pod["metadata"].get("labels") or {}).get("kubeinfer.io/model-version", "")
        for name, pod in _pods(cluster, namespace).items()
    }


def _await(
    cluster: cluster_setup.Cluster,
    namespace: str,
    check: Callable[[], Any],
    *,
    what: str,
    timeout: float = 240,
) -> Any:
    def summary() -> str:
        status = objects.status(cluster, f"infsvc/{NAME}", namespace=namespace)
        return json.dumps(
            {
                "rollout": status.get("rollout"),
                "progressing": objects.condition(status, "Progressing"),
                "pods": _versions(cluster, namespace),
            },
            indent=1,
        )

    return waiting.first(check, timeout=timeout, what=what, on_timeout=summary, interval=1.0)


@contextlib.contextmanager
def _servers(
    cluster: cluster_setup.Cluster, namespace: str, scraper: prometheus.Prometheus
) -> Iterator[fleet.Fleet]:
    """A Triton simulator on each pod's IP, started empty (explicit model control)."""
    identity = server.Identity(runtime="triton", model=NAME, versions=VERSIONS, start_loaded=False)
    port = runtimes.RUNTIMES["triton"].port
    with (
        contextlib.closing(cluster.api_client()) as api,
        fleet.Fleet(identity, behaviour.Behaviour(), port=port) as sims,
        scrape_targets.Follower(
            api,
            namespace=namespace,
            monitor_name=NAME,
            simulators=sims,
            scraper=scraper,
            endpoints="selector",
        ),
    ):
        sims.set_version(5, {"loadError": BAD_LOAD})
        yield sims


@dataclasses.dataclass(frozen=True)
class Serving:
    """Version 2 loaded in every pod of a Ready service: its servers, its pods' UIDs, its node."""

    sims: fleet.Fleet
    uids: dict[str, str]
    node: str


@pytest.fixture
def serving(
    cluster: cluster_setup.Cluster,
    namespace: str,
    scraper: prometheus.Prometheus,
    analysing_operator: operator_process.RunningOperator,
    loopback_node: gpu_nodes.GpuNodeSpec,
) -> Iterator[Serving]:
    """The service Ready on version 2, every server loaded by the operator."""
    node = loopback_node.name
    cluster.kubectl("apply", "-f", "-", stdin=_manifest(namespace, node, 2))
    with _servers(cluster, namespace, scraper) as sims:
        _await(
            cluster,
            namespace,
            lambda: (
                set(_versions(cluster, namespace).values()) == {"2"}
                and len(_versions(cluster, namespace)) == PODS
            ),
            what="every pod to load version 2",
        )
        cluster.kubectl(
            "wait", "-n", namespace, f"infsvc/{NAME}", "--for=condition=Ready", "--timeout=120s",
            timeout=130,
        )  # fmt: skip
        uids = {n: p["metadata"]["uid"] for n, p in _pods(cluster, namespace).items()}
        yield Serving(sims, uids, node)


def _rolled_back(
    cluster: cluster_setup.Cluster, namespace: str, *, what: str, timeout: float
) -> dict[str, Any]:
    """The status once RolledBack is True."""

    def check() -> dict[str, Any] | None:
        status = objects.status(cluster, f"infsvc/{NAME}", namespace=namespace)
        return status if objects.condition(status, "RolledBack").get("status") == "True" else None

    found: dict[str, Any] = _await(
        cluster, namespace, check, what=f"{what} to be rolled back", timeout=timeout
    )
    return found


def _generation(cluster: cluster_setup.Cluster, namespace: str) -> str:
    return cluster.kubectl(
        "get", "deploy", NAME, "-n", namespace, "-o", "jsonpath={.metadata.generation}"
    ).stdout


def _loaded(sims: fleet.Fleet) -> dict[str, list[int]]:
    """Pod -> the versions its server loaded through the API, in order."""
    return {
        pod: [entry["version"] for entry in entries if entry["outcome"] == "Loaded"]
        for pod, entries in sims.loads().items()
    }


def test_healthy_version_is_promoted_in_place_without_restarting_a_pod(
    cluster: cluster_setup.Cluster, namespace: str, serving: Serving
) -> None:
    sims, uids = serving.sims, serving.uids
    generation = _generation(cluster, namespace)
    _, stop = sims.start_load(LOAD)
    try:
        started = time.monotonic()
        cluster.kubectl("apply", "-f", "-", stdin=_manifest(namespace, serving.node, 3))
        candidates: set[int] = set()

        def promoted() -> bool:
            status = objects.status(cluster, f"infsvc/{NAME}", namespace=namespace)
            candidates.add(sum(v == "3" for v in _versions(cluster, namespace).values()))
            return bool(status.get("stable", {}).get("version") == "3")

        _await(cluster, namespace, promoted, what="version 3 to be promoted", timeout=360)
        print(
            f"\nin-place canary of {PODS} pods promoted after "
            f"{time.monotonic() - started:.0f} s (steps 25%/50%, 20 s pauses, 20 s analysis "
            f"interval); candidate pods seen {sorted(candidates)}; pods re-created 0"
        )
    finally:
        stop()
    _await(
        cluster,
        namespace,
        lambda: set(_versions(cluster, namespace).values()) == {"3"},
        what="every pod to serve version 3",
    )
    status = objects.status(cluster, f"infsvc/{NAME}", namespace=namespace)
    assert status["rollout"]["mode"] in ("InPlace", "")
    assert all(m["verdict"] == "Passed" for m in status["rollout"]["measurements"])
    assert {1, 2} <= candidates, f"each step's candidate pods: saw {sorted(candidates)}"
    after = {n: p["metadata"]["uid"] for n, p in _pods(cluster, namespace).items()}
    assert after == uids, "the same pods served both versions"
    assert _generation(cluster, namespace) == generation, "the pod template never changed"
    loaded = _loaded(sims)
    assert len(loaded) == PODS and all(v == [2, 3] for v in loaded.values()), loaded
    deployments = cluster.kubectl("get", "deploy", "-n", namespace, "-o", "name").stdout
    assert deployments.split() == [f"deployment.apps/{NAME}"]


def test_failing_version_is_rolled_back_by_loading_stable_again(
    cluster: cluster_setup.Cluster, namespace: str, serving: Serving
) -> None:
    sims, uids = serving.sims, serving.uids
    sims.set_version(3, {"behaviour": {"errorRate": 0.05}})
    _, stop = sims.start_load(LOAD)
    try:
        cluster.kubectl("apply", "-f", "-", stdin=_manifest(namespace, serving.node, 3))
        status = _rolled_back(cluster, namespace, what="version 3", timeout=300)
    finally:
        stop()
    rolled_back = objects.condition(status, "RolledBack")
    assert "success-rate" in rolled_back["message"], rolled_back
    assert status["stable"]["version"] == "2"
    assert objects.condition(status, "Ready")["status"] == "True"
    _await(
        cluster,
        namespace,
        lambda: set(_versions(cluster, namespace).values()) == {"2"},
        what="every pod back on version 2",
    )
    reloaded = [pod for pod, versions in _loaded(sims).items() if versions == [2, 3, 2]]
    assert reloaded, f"a candidate pod loaded 3 and then 2 again: {_loaded(sims)}"
    after = {n: p["metadata"]["uid"] for n, p in _pods(cluster, namespace).items()}
    assert after == uids, "no pod was restarted to roll back"


def test_version_the_server_refuses_fails_at_once_with_its_answer(
    cluster: cluster_setup.Cluster, namespace: str, serving: Serving
) -> None:
    sims = serving.sims
    cluster.kubectl("apply", "-f", "-", stdin=_manifest(namespace, serving.node, 5))
    status = _rolled_back(cluster, namespace, what="version 5", timeout=120)
    message = objects.condition(status, "RolledBack")["message"]
    assert BAD_LOAD in message, message
    annotated = {
        name: (pod["metadata"].get("annotations") or {}).get(LOAD_ERROR_ANNOTATION)
        for name, pod in _pods(cluster, namespace).items()
    }
    refused = [name for name, note in annotated.items() if note]
    assert len(refused) == 1 and BAD_LOAD in str(annotated[refused[0]])
    events = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector=reason=ModelLoadRefused",
        "-o", "jsonpath={.items[*].message}",
    ).stdout  # fmt: skip
    assert refused[0] in events and BAD_LOAD in events
    assert set(_versions(cluster, namespace).values()) == {"2"}
    assert sum(1 for versions in sims.loads().values() for e in versions if e["version"] == 5) == 1


def test_a_server_that_restarts_empty_is_loaded_again(
    cluster: cluster_setup.Cluster, namespace: str, serving: Serving
) -> None:
    sims, uids = serving.sims, serving.uids
    pod = sorted(uids)[0]
    # the kubelet's part: the container restarted, and Triton came back with nothing loaded
    address = sims.addresses()[pod]
    request = urllib.request.Request(
        f"http://{address}/v2/repository/models/{NAME}/unload", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    cluster.kubectl(
        "patch", "pod", pod, "-n", namespace, "--subresource=status", "--type=json",
        "-p", '[{"op": "replace", "path": "/status/containerStatuses/0/restartCount", "value": 1}]',
    )  # fmt: skip
    _await(
        cluster,
        namespace,
        lambda: _loaded(sims)[pod] == [2, 2],
        what="the restarted server to be loaded again",
        timeout=60,
    )
    annotations = _pods(cluster, namespace)[pod]["metadata"]["annotations"]
    assert annotations[LOADED_AT_RESTART_ANNOTATION] == "1"
    assert all(v == [2] for p, v in _loaded(sims).items() if p != pod), _loaded(sims)


@pytest.mark.parametrize(
    ("change", "field", "saying"),
    [
        (
            {"runtime": "vllm", "uri": "hf://org/chat"},
            "spec.rollout.reload",
            "needs runtime triton",
        ),
        ({"version": "v3"}, "spec.model.version", "Triton version number"),
    ],
    ids=["another runtime", "a version that names no repository directory"],
)
def test_in_place_is_refused_at_apply_time_where_it_cannot_work(
    cluster: cluster_setup.Cluster,
    namespace: str,
    change: dict[str, str],
    field: str,
    saying: str,
) -> None:
    doc = yaml.safe_load(_manifest(namespace, "any", 2))
    doc["spec"]["model"].update(change)
    result = cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc), check=False)
    assert result.returncode != 0
    assert field in result.stderr and saying in result.stderr, result.stderr
