"""Where each kind lives on the API server: group, version, plural, and whether it is namespaced.

A static table, so no discovery request is needed to address the kinds kubeinfer reads and
writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeinfer.api import kinds


@dataclass(frozen=True)
class Resource:
    """An API resource's address."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """Return the REST path of the collection, or of one object when ``name`` is given."""
        root = (
            f"/apis/{self.api_version}" if "/" in self.api_version else f"/api/{self.api_version}"
        )
        if self.namespaced and namespace:
            root += f"/namespaces/{namespace}"
        root += f"/{self.plural}"
        return f"{root}/{name}" if name else root


_BUILTIN = (
    Resource("v1", "Service", "services"),
    Resource("v1", "ConfigMap", "configmaps"),
    Resource("v1", "Pod", "pods"),
    Resource("v1", "Node", "nodes", namespaced=False),
    Resource("v1", "Event", "events"),
    Resource("events.k8s.io/v1", "Event", "events"),
    Resource("apps/v1", "Deployment", "deployments"),
    Resource("apps/v1", "DaemonSet", "daemonsets"),
    Resource("batch/v1", "Job", "jobs"),
    Resource("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    Resource("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    Resource("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
    Resource("gateway.networking.k8s.io/v1", "Gateway", "gateways"),
    Resource("gateway.networking.k8s.io/v1", "GatewayClass", "gatewayclasses", namespaced=False),
    Resource("networking.istio.io/v1", "VirtualService", "virtualservices"),
    Resource("keda.sh/v1alpha1", "ScaledObject", "scaledobjects"),
    Resource("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
    Resource("apiregistration.k8s.io/v1", "APIService", "apiservices", namespaced=False),
    Resource("kopf.dev/v1", "ClusterKopfPeering", "clusterkopfpeerings", namespaced=False),
    Resource("resource.k8s.io/v1", "ResourceClaimTemplate", "resourceclaimtemplates"),
    Resource("resource.k8s.io/v1", "ResourceClaim", "resourceclaims"),
    Resource("resource.k8s.io/v1", "ResourceSlice", "resourceslices", namespaced=False),
    Resource("authentication.k8s.io/v1", "TokenReview", "tokenreviews", namespaced=False),
)
_CUSTOM = tuple(Resource(k.api_version, k.kind, k.plural) for k in kinds.ALL)

BY_KIND: dict[tuple[str, str], Resource] = {(r.api_version, r.kind): r for r in _BUILTIN + _CUSTOM}
CHILD_KINDS: tuple[Resource, ...] = tuple(
    r
    for r in _BUILTIN
    if r.kind
    not in {
        "Pod",
        "Node",
        "Event",
        "APIService",
        "ResourceClaim",
        "ResourceSlice",
        "ClusterKopfPeering",
        "TokenReview",
        "Gateway",
        "GatewayClass",
    }
)
"""Kinds kubeinfer creates as children (watched to re-reconcile their owner)."""


def lookup(api_version: str, kind: str) -> Resource:
    """Return the address of ``apiVersion``/``kind``; raise ``KeyError`` for unknown kinds."""
    return BY_KIND[(api_version, kind)]
