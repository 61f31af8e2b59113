"""The operator's real permissions in tests: ``manifests/`` RBAC plus a ServiceAccount token.

Owns: rendering ``manifests/`` with kubectl's kustomize, applying only its identity and access
objects (namespace, ServiceAccounts, roles, bindings, admission policies; never the workloads),
and writing a kubeconfig that authenticates as a ServiceAccount through a TokenRequest.
Must not: grant anything ``manifests/`` does not, so a missing verb fails a test.
"""

from __future__ import annotations

import pathlib
from typing import Any

import yaml

from e2e.harness import kubeconfig, kubectl, versions

MANIFESTS_DIR = versions.REPO_ROOT / "manifests"
OPERATOR_NAMESPACE = "kubeinfer-system"
OPERATOR_SERVICE_ACCOUNT = "kubeinfer-operator"
AGENT_SERVICE_ACCOUNT = "kubeinfer-agent"
TOKEN_DURATION = "24h"
ACCESS_KINDS = frozenset(
    {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        # Cluster-scoped prerequisites of the operator's children (the SLA tiers' priorities,
        # the DRA DeviceClass of kubeinfer's GPUs) and kopf's peering CRD.
        "PriorityClass",
        "DeviceClass",
        "CustomResourceDefinition",
    }
)


def render(admin: kubectl.Kubectl, directory: pathlib.Path = MANIFESTS_DIR) -> list[dict[str, Any]]:
    """Every object of the kustomization in ``directory``."""
    return [doc for doc in yaml.safe_load_all(admin.kustomize(directory)) if isinstance(doc, dict)]


def apply_access(admin: kubectl.Kubectl, directory: pathlib.Path = MANIFESTS_DIR) -> list[str]:
    """Apply the identity and access objects of ``manifests/``; return ``Kind/name`` of each."""
    objects = [obj for obj in render(admin, directory) if obj.get("kind") in ACCESS_KINDS]
    admin.apply(text=yaml.safe_dump_all(objects, sort_keys=False))
    return [f"{obj['kind']}/{obj['metadata']['name']}" for obj in objects]


def service_account_token(
    admin: kubectl.Kubectl,
    name: str,
    *,
    namespace: str,
    bound_pod: str | None = None,
    duration: str = TOKEN_DURATION,
) -> str:
    """A TokenRequest token for the ServiceAccount, optionally bound to a pod (and so its node)."""
    args = ["create", "token", name, f"--namespace={namespace}", f"--duration={duration}"]
    if bound_pod is not None:
        args += ["--bound-object-kind=Pod", f"--bound-object-name={bound_pod}"]
    return admin(*args).stdout.strip()


def service_account_kubeconfig(
    admin: kubectl.Kubectl,
    output: pathlib.Path,
    *,
    name: str,
    namespace: str,
    bound_pod: str | None = None,
) -> pathlib.Path:
    """Write a kubeconfig for the ServiceAccount, same server and CA as the admin's."""
    admin_config = yaml.safe_load(admin.kubeconfig.read_text(encoding="utf-8"))
    cluster = admin_config["clusters"][0]["cluster"]
    return kubeconfig.write(
        output,
        server=cluster["server"],
        ca=pathlib.Path(cluster["certificate-authority"]),
        user=f"system:serviceaccount:{namespace}:{name}",
        token=service_account_token(admin, name, namespace=namespace, bound_pod=bound_pod),
        namespace=namespace,
    )


def operator_kubeconfig(admin: kubectl.Kubectl, output: pathlib.Path) -> pathlib.Path:
    """Apply ``manifests/`` access objects; return a kubeconfig acting as the operator."""
    apply_access(admin)
    return service_account_kubeconfig(
        admin, output, name=OPERATOR_SERVICE_ACCOUNT, namespace=OPERATOR_NAMESPACE
    )
