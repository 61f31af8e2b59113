"""The operator against the real control plane, running as its ServiceAccount.

Covers: an example reaching Ready (and `kubectl wait`), printer columns and `kubectl get
kubeinfer`, a specific non-Ready reason with an Event, apply-time rejection by CEL rules,
garbage collection of children, and that a reconcile of an unchanged object sends no write.
"""

from __future__ import annotations

import re
import time

import pytest
import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import metrics_text, operator_process, versions, waiting

pytestmark = pytest.mark.e2e
EXAMPLES = versions.REPO_ROOT / "manifests" / "examples"


def _example(name: str, namespace: str) -> str:
    doc = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    doc["metadata"]["namespace"] = namespace
    return yaml.safe_dump(doc)


def _writes(op: operator_process.RunningOperator) -> dict[str, float]:
    """The operator's API writes so far, by ``"<verb> <kind>"``."""
    text = metrics_text.scrape(op.liveness_url.replace("/healthz", "/metrics"))
    found: dict[str, float] = {}
    for sample in metrics_text.samples(text, "kubeinfer_api_requests_total"):
        verb, kind = sample.labels["verb"], sample.labels["kind"]
        if verb in {"apply", "patch_status", "delete"}:
            found[f"{verb} {kind}"] = found.get(f"{verb} {kind}", 0.0) + float(sample.value)
    return found


def test_cpu_example_becomes_ready_and_kubectl_wait_works(
    cluster: cluster_setup.Cluster, namespace: str, operator: operator_process.RunningOperator
) -> None:
    kubectl = cluster.kubectl
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=_example("02-inferenceservice-cpu.yaml", namespace),
    )
    kubectl(
        "wait",
        "-n",
        namespace,
        "inferenceservice/tiny-embedder",
        "--for=condition=Ready",
        "--timeout=90s",
        timeout=100,
    )
    table = kubectl("get", "infsvc", "-n", namespace).stdout
    assert re.search(r"tiny-embedder\s+True\s+AsExpected\s+minilm\s+v1\s+0\s+bronze\s+1", table), (
        table
    )
    peers = kubectl("get", "clusterkopfpeering", "kubeinfer", "-o", "yaml").stdout
    assert "kubeinfer" in peers, "the operator creates its peering object at startup"
    everything = kubectl("get", "kubeinfer", "-n", namespace).stdout
    assert "inferenceservice.kubeinfer.io/tiny-embedder" in everything
    status = yaml.safe_load(
        kubectl("get", "infsvc", "tiny-embedder", "-n", namespace, "-o", "yaml").stdout
    )["status"]
    assert status["observedGeneration"] == 1
    assert {c["type"] for c in status["conditions"]} >= {
        "Ready",
        "Placed",
        "ModelLoaded",
        "TrafficReady",
    }
    events = kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=ChildrenApplied"
    ).stdout
    assert "Applied Deployment tiny-embedder-v1" in events
    metrics = next(c for c in status["conditions"] if c["type"] == "MetricsAvailable")
    assert metrics["status"] == "False" and metrics["reason"] == "MetricsAPIMissing"
    # Its Events tell the story once: each change once, no Event for a condition's healthy first
    # value (Progressing NoRollout, Placed), and no Ready Event repeating ModelLoaded's.
    posted = [
        (e["reason"], e["message"])
        for e in yaml.safe_load(
            kubectl(
                "get",
                "events",
                "-n",
                namespace,
                "--field-selector",
                "involvedObject.name=tiny-embedder,involvedObject.kind=InferenceService",
                "-o",
                "yaml",
            ).stdout
        )["items"]
    ]
    assert len(posted) == len(set(posted)), posted
    assert not [m for _, m in posted if m.startswith(("Progressing is", "Placed is True"))], posted
    assert ("MetricsAPIMissing", _event_message(metrics)) in posted, posted


def _event_message(condition: dict[str, str]) -> str:
    """The Event message the operator posts for a condition it records."""
    return f"{condition['type']} is {condition['status']}: {condition['message']}"


def test_unchanged_object_reconcile_sends_no_write(
    cluster: cluster_setup.Cluster, namespace: str, operator: operator_process.RunningOperator
) -> None:
    kubectl = cluster.kubectl
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=_example("02-inferenceservice-cpu.yaml", namespace),
    )
    kubectl(
        "wait",
        "-n",
        namespace,
        "infsvc/tiny-embedder",
        "--for=condition=Ready",
        "--timeout=90s",
        timeout=100,
    )
    # Other tests' namespaces may still be terminating, which makes the operator write there;
    # measure only once the cluster is otherwise quiet.
    waiting.first(
        lambda: "Terminating" not in kubectl("get", "namespaces", "--no-headers").stdout,
        timeout=120,
        what="terminating namespaces to go",
    )
    time.sleep(3)  # let trailing child events settle
    before = _writes(operator)
    # An annotation change is a watch event that triggers a full reconcile but changes nothing
    # desired (labels, unlike annotations, propagate to the children).
    kubectl("annotate", "-n", namespace, "infsvc/tiny-embedder", "example.com/touched=yes")
    time.sleep(5)
    assert _writes(operator) == before


def test_missing_pool_is_reported_with_a_reason_and_an_event(
    cluster: cluster_setup.Cluster, namespace: str, operator: operator_process.RunningOperator
) -> None:
    kubectl = cluster.kubectl
    doc = yaml.safe_load(_example("03-inferenceservice-gpu.yaml", namespace))
    doc["spec"]["placement"]["gpuPool"] = "no-such-pool"
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(doc))

    def reason() -> str:
        out = kubectl(
            "get",
            "infsvc",
            "llama",
            "-n",
            namespace,
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Ready")].reason}',
        ).stdout
        return out

    waiting.first(lambda: reason() == "PoolNotFound", what="Ready reason PoolNotFound")
    events = kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=PoolNotFound"
    ).stdout
    assert "no-such-pool" in events or "PoolNotFound" in events


def test_cel_rule_rejects_at_apply_time_naming_the_field(
    cluster: cluster_setup.Cluster, namespace: str, kubeinfer_crds: tuple[str, ...]
) -> None:
    doc = yaml.safe_load(_example("03-inferenceservice-gpu.yaml", namespace))
    del doc["spec"]["sla"]["latencyP95Ms"]
    result = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(doc), check=False
    )
    assert result.returncode != 0
    assert "spec.sla.latencyP95Ms" in result.stderr
    assert "required for the gold tier" in result.stderr


def test_deleting_the_resource_garbage_collects_its_children(
    cluster: cluster_setup.Cluster, namespace: str, operator: operator_process.RunningOperator
) -> None:
    kubectl = cluster.kubectl
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=_example("02-inferenceservice-cpu.yaml", namespace),
    )
    selector = "kubeinfer.io/inferenceservice=tiny-embedder"

    def children() -> list[str]:
        out = kubectl(
            "get", "deploy,svc,hpa,pdb", "-n", namespace, "-l", selector, "-o", "name"
        ).stdout
        return out.split()

    waiting.first(lambda: len(children()) >= 5, what="children to be created")
    kubectl("delete", "infsvc", "tiny-embedder", "-n", namespace, "--wait=true")
    waiting.first(lambda: children() == [], timeout=60, what="children to be garbage-collected")
