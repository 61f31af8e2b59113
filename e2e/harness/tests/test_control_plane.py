"""The harness's control plane behaves like a real cluster with GPU nodes.

Covers: the API server runs the pinned Kubernetes release; kwok GPU nodes are Ready with
``nvidia.com/gpu`` capacity and GPU Feature Discovery labels; a Deployment requesting GPUs
converges to Running pods on them and an impossible request stays Pending; third-party CRDs are
established and accept objects; the operator's ServiceAccount has exactly ``manifests/`` RBAC;
the agent may patch only its own node.
"""

from __future__ import annotations

import contextlib
import functools
import json
import pathlib
from typing import Any

import kubernetes
import pytest

from e2e.harness import cluster as cluster_setup
from e2e.harness import gpu_nodes, rbac, versions, waiting

pytestmark = pytest.mark.e2e


def _deployment(name: str, *, replicas: int, gpus: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {"nvidia.com/gpu.present": "true"},
                    "containers": [
                        {
                            "name": "server",
                            "image": "registry.invalid/model-server:1",
                            "resources": {"limits": {gpu_nodes.GPU_RESOURCE: str(gpus)}},
                        }
                    ],
                },
            },
        },
    }


def test_api_server_runs_the_pinned_kubernetes_release(cluster: cluster_setup.Cluster) -> None:
    reported = json.loads(cluster.kubectl("version", "--output=json").stdout)
    assert reported["serverVersion"]["gitVersion"] == versions.load().kubernetes
    assert reported["clientVersion"]["gitVersion"] == versions.load().kubernetes
    assert cluster.kubectl("get", "--raw=/readyz").stdout.strip() == "ok"


def test_fake_gpu_nodes_are_ready_with_gpu_capacity_and_gfd_labels(
    cluster: cluster_setup.Cluster, api: Any
) -> None:
    core: Any = kubernetes.client.CoreV1Api(api)
    for name in cluster.gpu_nodes:
        node = core.read_node(name)
        assert gpu_nodes.is_ready(node)
        assert node.status.capacity[gpu_nodes.GPU_RESOURCE] == "8"
        assert node.status.allocatable[gpu_nodes.GPU_RESOURCE] == "8"
        assert node.metadata.labels["nvidia.com/gpu.present"] == "true"
        assert node.metadata.labels["nvidia.com/gpu.count"] == "8"
        assert node.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
        assert not node.spec.taints, "kwok should have cleared the not-ready taints"


def test_topology_annotation_is_carried_verbatim(cluster: cluster_setup.Cluster, api: Any) -> None:
    topology = json.dumps({"gpus": 2, "links": [["GPU0", "GPU1", "NV18"]]})
    spec = gpu_nodes.GpuNodeSpec(name="gpu-topology-probe", gpus=2, topology=topology)
    core: Any = kubernetes.client.CoreV1Api(api)
    gpu_nodes.create(api, [spec])
    try:
        node = core.read_node(spec.name)
        assert node.metadata.annotations[gpu_nodes.TOPOLOGY_ANNOTATION] == topology
    finally:
        core.delete_node(spec.name)


def test_deployment_requesting_gpus_converges_to_running_pods_on_gpu_nodes(
    cluster: cluster_setup.Cluster, api: Any, namespace: str
) -> None:
    apps: Any = kubernetes.client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("llm", replicas=3, gpus=4))
    cluster.kubectl(
        "wait",
        f"--namespace={namespace}",
        "--for=condition=Available",
        "--timeout=60s",
        "deployment/llm",
        timeout=70,
    )
    pods: Any = kubernetes.client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector="app=llm"
    )
    assert len(pods.items) == 3
    assert {pod.status.phase for pod in pods.items} == {"Running"}
    assert {pod.spec.node_name for pod in pods.items} <= set(cluster.gpu_nodes)


def test_pod_asking_for_more_gpus_than_any_node_stays_pending(
    cluster: cluster_setup.Cluster, api: Any, namespace: str
) -> None:
    apps: Any = kubernetes.client.AppsV1Api(api)
    core: Any = kubernetes.client.CoreV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("too-big", replicas=1, gpus=9))

    def unschedulable() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="app=too-big").items
        conditions = [c for p in pods for c in (p.status.conditions or [])]
        return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in conditions)

    def refused_for_gpus() -> bool:
        events = core.list_namespaced_event(namespace, field_selector="reason=FailedScheduling")
        return any("Insufficient nvidia.com/gpu" in (e.message or "") for e in events.items)

    waiting.until(unschedulable, what="the scheduler to refuse the pod", timeout=60)
    waiting.until(refused_for_gpus, what="a FailedScheduling event naming GPUs", timeout=30)


@pytest.mark.parametrize(
    "crd",
    [
        "httproutes.gateway.networking.k8s.io",
        "gateways.gateway.networking.k8s.io",
        "servicemonitors.monitoring.coreos.com",
        "podmonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "scaledobjects.keda.sh",
    ],
)
def test_third_party_crd_is_established(cluster: cluster_setup.Cluster, crd: str) -> None:
    assert crd in cluster.crds
    established = cluster.kubectl(
        "get", f"crd/{crd}", "-o", "jsonpath={.status.conditions[?(@.type=='Established')].status}"
    ).stdout
    assert established == "True"


def test_third_party_kinds_accept_objects(cluster: cluster_setup.Cluster, namespace: str) -> None:
    objects = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: llm, namespace: {namespace}}}
spec:
  parentRefs: [{{name: inference-gateway}}]
  rules: [{{backendRefs: [{{name: llm, port: 8000}}]}}]
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {{name: llm, namespace: {namespace}}}
spec:
  selector: {{matchLabels: {{app: llm}}}}
  endpoints: [{{port: metrics}}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {{name: llm, namespace: {namespace}}}
spec:
  scaleTargetRef: {{name: llm}}
  triggers: [{{type: cpu, metricType: Utilization, metadata: {{value: "50"}}}}]
"""
    cluster.kubectl.apply(text=objects)
    names = cluster.kubectl(
        "get", "httproute,servicemonitor,scaledobject", f"--namespace={namespace}", "-o", "name"
    ).stdout.split()
    assert len(names) == 3


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("list", "nodes", True),
        ("watch", "inferenceservices.kubeinfer.io", True),
        ("patch", "inferenceservices.kubeinfer.io/status", True),
        ("update", "gpupools.kubeinfer.io/status", True),
        ("create", "deployments.apps", True),
        ("delete", "pods", True),
        ("create", "scaledobjects.keda.sh", True),
        ("patch", "clusterkopfpeerings.kopf.dev", True),
        ("create", "secrets", False),
        ("get", "secrets", False),
        ("update", "inferenceservices.kubeinfer.io", False),
        ("create", "inferenceservices.kubeinfer.io", False),
        ("delete", "nodes", False),
        ("create", "clusterroles.rbac.authorization.k8s.io", False),
    ],
)
def test_operator_service_account_has_exactly_manifest_rbac(
    cluster: cluster_setup.Cluster,
    operator_kubeconfig: pathlib.Path,
    verb: str,
    resource: str,
    allowed: bool,
) -> None:
    resource_and_group, _, subresource = resource.partition("/")
    plural, _, group = resource_and_group.partition(".")
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "verb": verb,
                "group": group,
                "resource": plural,
                "subresource": subresource,
            }
        },
    }
    with contextlib.closing(cluster.api_client(operator_kubeconfig)) as as_operator:
        authz: Any = kubernetes.client.AuthorizationV1Api(as_operator)
        answer = authz.create_self_subject_access_review(review)
    assert answer.status.allowed is allowed


def test_operator_token_is_refused_what_rbac_does_not_grant(
    cluster: cluster_setup.Cluster, operator_kubeconfig: pathlib.Path, namespace: str
) -> None:
    with contextlib.closing(cluster.api_client(operator_kubeconfig)) as as_operator:
        core: Any = kubernetes.client.CoreV1Api(as_operator)
        assert {n.metadata.name for n in core.list_node().items} >= set(cluster.gpu_nodes)
        with pytest.raises(kubernetes.client.ApiException) as refused:
            core.create_namespaced_secret(
                namespace, {"metadata": {"name": "stolen"}, "stringData": {"k": "v"}}
            )
        assert refused.value.status == 403


def _dry_run_refused(core: Any, node: str, patch: dict[str, Any]) -> bool:
    try:
        core.patch_node(node, patch, dry_run="All")
    except kubernetes.client.ApiException as err:
        if err.status == 403:
            return True
        raise
    return False


def test_agent_may_patch_only_the_node_its_pod_runs_on(
    cluster: cluster_setup.Cluster, api: Any
) -> None:
    own, other = cluster.gpu_nodes[0], cluster.gpu_nodes[1]
    rbac.apply_access(cluster.kubectl)
    core: Any = kubernetes.client.CoreV1Api(api)
    pod_name = "agent-identity-probe"
    core.create_namespaced_pod(
        rbac.OPERATOR_NAMESPACE,
        {
            "metadata": {"name": pod_name},
            "spec": {
                "serviceAccountName": rbac.AGENT_SERVICE_ACCOUNT,
                "nodeName": own,
                "containers": [{"name": "agent", "image": "registry.invalid/agent:1"}],
            },
        },
    )
    try:
        config = rbac.service_account_kubeconfig(
            cluster.kubectl,
            cluster.run_dir / "kubeconfigs" / "agent-probe.kubeconfig",
            name=rbac.AGENT_SERVICE_ACCOUNT,
            namespace=rbac.OPERATOR_NAMESPACE,
            bound_pod=pod_name,
        )
        patch = {"metadata": {"annotations": {"gpu.kubeinfer.io/agent-probe": "seen"}}}
        with contextlib.closing(cluster.api_client(config)) as as_agent:
            agent_core: Any = kubernetes.client.CoreV1Api(as_agent)
            # The API server enforces a new admission policy once its informer has seen it.
            waiting.until(
                functools.partial(_dry_run_refused, agent_core, other, patch),
                what="the own-node admission policy to be enforced",
                timeout=30,
            )
            agent_core.patch_node(own, patch)
            with pytest.raises(kubernetes.client.ApiException) as refused:
                agent_core.patch_node(other, patch)
        assert refused.value.status == 403
        assert "may only change the Node its own pod runs on" in str(refused.value.body)
    finally:
        core.delete_namespaced_pod(pod_name, rbac.OPERATOR_NAMESPACE, grace_period_seconds=0)
