"""kopf watch handlers: mirror watched objects into the store and wake the right reconciles.

One raw-event handler per kind. Raw event handlers store nothing on the objects (no finalizers,
no progress annotations), which keeps the operator level-triggered and GitOps-quiet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import kopf

from kubeinfer.api import GROUP, VERSION, kinds
from kubeinfer.controllers import (
    chaos_experiment,
    context,
    gateways,
    gpu_pool,
    inference_service,
    log_policy,
    pod_views,
)
from kubeinfer.controllers.reconcile import Controller
from kubeinfer.kube import client, errors, resources
from kubeinfer.kube.store import Store
from kubeinfer.planning import children
from kubeinfer.planning.labels import INFERENCE_SERVICE_LABEL
from kubeinfer.planning.logs import sidecar as log_sidecar

CONTROLLERS: dict[str, Controller] = {
    c.kind.kind: c
    for c in (
        inference_service.CONTROLLER,
        gpu_pool.CONTROLLER,
        chaos_experiment.CONTROLLER,
        log_policy.CONTROLLER,
    )
}
MANAGED = {"app.kubernetes.io/managed-by": children.MANAGED_BY}
Body = Mapping[str, Any]


def _mirror(kind: str, event: Mapping[str, Any], body: Body) -> None:
    store = context.current().store
    if event.get("type") == "DELETED":
        store.remove(kind, body)
    else:
        store.put(kind, body)


def _register_custom(kind: kinds.Kind) -> None:
    controller = CONTROLLERS[kind.kind]

    @kopf.on.event(GROUP, VERSION, kind.plural)
    async def on_custom(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        _mirror(kind.kind, event, dict(body))
        if event.get("type") != "DELETED" and not controller.is_own_echo(body):
            controller.schedule(body.metadata["namespace"], body.metadata["name"])
        if kind is kinds.GPU_POOL:
            pool = body.metadata["name"]
            CONTROLLERS[kinds.INFERENCE_SERVICE.kind].schedule_all(
                lambda b: (b.get("spec", {}).get("placement") or {}).get("gpuPool") == pool
            )
        if kind is kinds.LOG_POLICY:
            # an InferenceService logging to files runs a sidecar per policy selecting it
            namespace = body.metadata["namespace"]
            CONTROLLERS[kinds.INFERENCE_SERVICE.kind].schedule_all(
                lambda b: (
                    b["metadata"]["namespace"] == namespace
                    and ((b.get("spec") or {}).get("logging") or {}).get("mode") == "file"
                )
            )
        if kind is kinds.INFERENCE_SERVICE:
            # its recorded placement holds GPUs of its pool
            used = (body.get("spec", {}).get("placement") or {}).get("gpuPool")
            if used:
                CONTROLLERS[kinds.GPU_POOL.kind].schedule(body.metadata["namespace"], used)


def _register_child(res: resources.Resource) -> None:
    group, _, version = res.api_version.rpartition("/")

    @kopf.on.event(group, version, res.plural, labels=MANAGED)
    async def on_child(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        _mirror(res.kind, event, dict(body))
        for ref in body.metadata.get("ownerReferences") or []:
            owner = CONTROLLERS.get(ref.get("kind", ""))
            if owner is not None and ref.get("apiVersion", "").startswith(GROUP + "/"):
                owner.schedule(body.metadata["namespace"], ref["name"])
        # a Deployment running LogPolicy sidecars tells those policies how far it rolled
        for policy in log_sidecar.policies_of(log_sidecar.template_annotations(body)):
            CONTROLLERS[kinds.LOG_POLICY.kind].schedule(body.metadata["namespace"], policy)


def _slim_claim(body: Body) -> dict[str, Any]:
    """An allocated claim says which GPUs are held (GPUPool) and taken (placement)."""
    return {
        "metadata": {k: body["metadata"].get(k) for k in ("name", "namespace", "labels")},
        "status": {"allocation": (body.get("status") or {}).get("allocation")},
    }


def _slim_slice(body: Body) -> dict[str, Any]:
    """A node publishing kubeinfer's devices makes DRA enforcement possible there."""
    spec = body.get("spec") or {}
    return {
        "metadata": {"name": body["metadata"]["name"]},
        "spec": {k: spec.get(k) for k in ("driver", "nodeName", "pool", "devices")},
    }


_GATEWAY_API = "gateway.networking.k8s.io/v1"


def _keep(body: Body) -> dict[str, Any]:
    return dict(body)


PREFILL: tuple[tuple[resources.Resource, str, Callable[[Body], dict[str, Any]]], ...] = (
    *(
        (res, f"app.kubernetes.io/managed-by={children.MANAGED_BY}", _keep)
        for res in resources.CHILD_KINDS
    ),
    *((resources.lookup(k.api_version, k.kind), "", _keep) for k in kinds.ALL),
    (resources.lookup("v1", "Node"), "", _keep),
    (resources.lookup("v1", "Pod"), "", pod_views.slim),
    (resources.lookup("apiregistration.k8s.io/v1", "APIService"), "", _keep),
    (resources.lookup("resource.k8s.io/v1", "ResourceClaim"), "", _slim_claim),
    (resources.lookup("resource.k8s.io/v1", "ResourceSlice"), "", _slim_slice),
    (resources.lookup(_GATEWAY_API, gateways.GATEWAY), "", gateways.slim_gateway),
    (resources.lookup(_GATEWAY_API, gateways.GATEWAY_CLASS), "", gateways.slim_class),
)
"""What the store holds before the first reconcile, and in which shape."""


async def prefill(kube: client.Kube, store: Store) -> int:
    """List every watched kind into the store before any reconcile runs; return the count.

    Controllers must not act on a half-filled mirror: an operator restarted mid-rollout would
    otherwise see its InferenceService before its candidate Deployment and believe the candidate
    gone. This is the informer's wait for cache sync; the watches keep it current afterwards.
    """
    count = 0
    for res, selector, shape in PREFILL:
        try:
            items = await kube.list_objects(res.api_version, res.kind, selector=selector)
        except errors.NotServed:
            continue
        for item in items:
            store.put(res.kind, shape(item))
        count += len(items)
    return count


def _register_cluster_inputs() -> None:
    def wake(*kind_names: str, predicate: Callable[[Body], bool] = lambda b: True) -> None:
        for name in kind_names:
            CONTROLLERS[name].schedule_all(predicate)

    @kopf.on.event("", "v1", "nodes")
    async def on_node(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        _mirror("Node", event, dict(body))
        wake(kinds.GPU_POOL.kind)

    @kopf.on.event("", "v1", "pods")
    async def on_pod(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        slim = pod_views.slim(dict(body))
        _mirror("Pod", event, slim)
        namespace = slim["metadata"]["namespace"]
        if slim["spec"]["nodeName"]:
            wake(kinds.GPU_POOL.kind)
        wake(
            kinds.CHAOS_EXPERIMENT.kind,
            kinds.LOG_POLICY.kind,
            predicate=lambda b: b["metadata"]["namespace"] == namespace,
        )
        # a pod of a service going away releases GPUs that a replica move waits for
        service = (slim["metadata"].get("labels") or {}).get(INFERENCE_SERVICE_LABEL)
        if service:
            CONTROLLERS[kinds.INFERENCE_SERVICE.kind].schedule(namespace, service)

    @kopf.on.event("resource.k8s.io", "v1", "resourceclaims")
    async def on_claim(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        # allocated claims say which GPUs are held (GPUPool) and taken (placement)
        _mirror("ResourceClaim", event, _slim_claim(dict(body)))
        wake(kinds.GPU_POOL.kind)
        namespace = body.metadata["namespace"]
        wake(
            kinds.INFERENCE_SERVICE.kind,
            predicate=lambda b: b["metadata"]["namespace"] == namespace,
        )

    @kopf.on.event("resource.k8s.io", "v1", "resourceslices")
    async def on_slice(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        # a node publishing kubeinfer's devices makes DRA enforcement possible there
        _mirror("ResourceSlice", event, _slim_slice(dict(body)))
        wake(kinds.INFERENCE_SERVICE.kind)

    # a shadow mirrors only through Gateways whose class lists the mirror feature
    @kopf.on.event("gateway.networking.k8s.io", "v1", "gateways")
    async def on_gateway(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        slim = gateways.slim_gateway(dict(body))
        _mirror(gateways.GATEWAY, event, slim)
        key = (slim["metadata"]["namespace"], slim["metadata"]["name"])
        wake(kinds.INFERENCE_SERVICE.kind, predicate=lambda b: key in gateways.parent_keys(b))

    @kopf.on.event("gateway.networking.k8s.io", "v1", "gatewayclasses")
    async def on_gateway_class(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        _mirror(gateways.GATEWAY_CLASS, event, gateways.slim_class(dict(body)))
        of_class = gateways.gateways_of_class(context.current().store, body.metadata["name"])
        wake(
            kinds.INFERENCE_SERVICE.kind,
            predicate=lambda b: not of_class.isdisjoint(gateways.parent_keys(b)),
        )

    @kopf.on.event("apiregistration.k8s.io", "v1", "apiservices")
    async def on_apiservice(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        _mirror("APIService", event, dict(body))
        wake(kinds.INFERENCE_SERVICE.kind)


def register() -> None:
    """Register every watch handler with kopf's default registry."""
    for kind in kinds.ALL:
        _register_custom(kind)
    for res in resources.CHILD_KINDS:
        _register_child(res)
    _register_cluster_inputs()
