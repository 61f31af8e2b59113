"""The kustomize base in ``manifests/`` is valid and schedulable on a real control plane.

Covers: it renders with kubectl's kustomize and holds the operator's and agent's objects; the API server accepts all
of it (schemas, admission policy CEL); the agent DaemonSet lands on exactly the GPU nodes and
the operator Deployment becomes Available (kwok runs the pods).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.harness import cluster as cluster_setup
from e2e.harness import rbac

pytestmark = pytest.mark.e2e


@pytest.fixture
def applied_base(cluster: cluster_setup.Cluster) -> Iterator[None]:
    """``manifests/`` applied for real; workloads removed afterwards (RBAC stays for others)."""
    cluster.kubectl.apply(rbac.MANIFESTS_DIR)
    yield
    cluster.kubectl(
        "delete",
        f"--namespace={rbac.OPERATOR_NAMESPACE}",
        "deployment/kubeinfer-operator",
        "daemonset/kubeinfer-agent",
        "--wait=false",
    )


def test_base_renders_the_operator_and_agent_objects(cluster: cluster_setup.Cluster) -> None:
    rendered = {(o["kind"], o["metadata"]["name"]) for o in rbac.render(cluster.kubectl)}
    assert rendered >= {
        ("Namespace", "kubeinfer-system"),
        ("ServiceAccount", "kubeinfer-operator"),
        ("ServiceAccount", "kubeinfer-agent"),
        ("ClusterRole", "kubeinfer-operator"),
        ("ClusterRole", "kubeinfer-agent"),
        ("ClusterRoleBinding", "kubeinfer-operator"),
        ("ClusterRoleBinding", "kubeinfer-agent"),
        ("ValidatingAdmissionPolicy", "kubeinfer-agent-own-node"),
        ("ValidatingAdmissionPolicyBinding", "kubeinfer-agent-own-node"),
        ("Deployment", "kubeinfer-operator"),
        ("DaemonSet", "kubeinfer-agent"),
    }


def test_no_object_carries_argo_cd_tracking_metadata(cluster: cluster_setup.Cluster) -> None:
    for obj in rbac.render(cluster.kubectl):
        metadata = obj["metadata"]
        assert "app.kubernetes.io/instance" not in (metadata.get("labels") or {})
        assert "argocd.argoproj.io/tracking-id" not in (metadata.get("annotations") or {})


def test_agent_runs_on_every_gpu_node_and_operator_becomes_available(
    cluster: cluster_setup.Cluster, applied_base: None
) -> None:
    namespace = f"--namespace={rbac.OPERATOR_NAMESPACE}"
    cluster.kubectl(
        "rollout", "status", namespace, "daemonset/kubeinfer-agent", "--timeout=60s", timeout=70
    )
    cluster.kubectl(
        "wait",
        namespace,
        "--for=condition=Available",
        "deployment/kubeinfer-operator",
        "--timeout=60s",
        timeout=70,
    )
    agent_nodes = cluster.kubectl(
        "get",
        "pods",
        namespace,
        "--selector=app.kubernetes.io/component=agent",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ).stdout.split()
    gpu_nodes = cluster.kubectl(
        "get", "nodes", "--selector=nvidia.com/gpu.present=true", "-o", "name"
    ).stdout.split()
    assert sorted(agent_nodes) == sorted(name.removeprefix("node/") for name in gpu_nodes)
