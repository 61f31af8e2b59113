"""Gateway API inputs of InferenceServices: parent Gateways, their classes, and who they concern.

Reads Gateways and GatewayClasses from the watch store (kept slim: a Gateway's class name, a
class's supported features) for :mod:`kubeinfer.planning.serving.gateway_support`, and tells the watch
handlers which InferenceServices a Gateway or GatewayClass event concerns. Decides nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeinfer.api import inference_service as api
from kubeinfer.kube.store import Store
from kubeinfer.planning.serving import gateway_support

GATEWAY = "Gateway"
GATEWAY_CLASS = "GatewayClass"
Body = Mapping[str, Any]
Key = tuple[str, str]


def slim_gateway(body: Body) -> dict[str, Any]:
    """A Gateway as the store keeps it: its name and class."""
    meta = body["metadata"]
    return {
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace", "")},
        "spec": {"gatewayClassName": (body.get("spec") or {}).get("gatewayClassName")},
    }


def slim_class(body: Body) -> dict[str, Any]:
    """A GatewayClass as the store keeps it: its name and supported features."""
    status = body.get("status") or {}
    return {
        "metadata": {"name": body["metadata"]["name"]},
        "status": {"supportedFeatures": status.get("supportedFeatures") or []},
    }


def parents(
    store: Store, namespace: str, spec: api.InferenceServiceSpec
) -> tuple[gateway_support.Parent, ...]:
    """The route's parent Gateways as the store knows them (none unless gateway-api)."""
    if spec.traffic.provider != "gateway-api":
        return ()
    found = []
    for ref in spec.traffic.parent_refs:
        gw_namespace = ref.namespace or namespace
        gateway = store.get(GATEWAY, gw_namespace, ref.name)
        class_name = (gateway.get("spec") or {}).get("gatewayClassName") if gateway else None
        gw_class = store.get(GATEWAY_CLASS, "", class_name) if class_name else None
        found.append(
            gateway_support.Parent(
                gateway=f"{gw_namespace}/{ref.name}",
                gateway_class=str(class_name) if class_name else None,
                features=(
                    gateway_support.supported_features(
                        (gw_class.get("status") or {}).get("supportedFeatures")
                    )
                    if gw_class is not None
                    else None
                ),
            )
        )
    return tuple(found)


def parent_keys(service: Body) -> set[Key]:
    """``(namespace, name)`` of every Gateway an InferenceService body names as a parent."""
    namespace = service["metadata"].get("namespace", "")
    refs = ((service.get("spec") or {}).get("traffic") or {}).get("parentRefs") or []
    return {(ref.get("namespace") or namespace, ref["name"]) for ref in refs if ref.get("name")}


def gateways_of_class(store: Store, class_name: str) -> set[Key]:
    """``(namespace, name)`` of every known Gateway of a class."""
    return {
        (g["metadata"]["namespace"], g["metadata"]["name"])
        for g in store.all(GATEWAY)
        if (g.get("spec") or {}).get("gatewayClassName") == class_name
    }
