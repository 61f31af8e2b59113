"""InferenceService handlers: observe the pool, the Deployments, the route, its Gateways, the
metrics API, the namespace's LogPolicies (a server logging to files gets their collector
sidecars) and, for in-place reloads, the service's pods; start the loads a plan names
(:mod:`kubeinfer.controllers.model_reload`).

Reads come from the watch store; the plan is :mod:`kubeinfer.planning.inference_service`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from kubeinfer.api import inference_service as api
from kubeinfer.api import kinds
from kubeinfer.api import log_policy as log_api
from kubeinfer.controllers import (
    context,
    gateways,
    gpu_placement,
    model_reload,
    rollout_analysis,
)
from kubeinfer.controllers.reconcile import Controller, owner_of
from kubeinfer.kube import store as kube_store
from kubeinfer.planning import children
from kubeinfer.planning import inference_service as planner
from kubeinfer.planning.labels import (
    LOAD_ERROR_ANNOTATION,
    LOADED_AT_RESTART_ANNOTATION,
    MODEL_VERSION_LABEL,
)
from kubeinfer.planning.logs import sidecar as log_sidecar
from kubeinfer.planning.rollout import in_place
from kubeinfer.planning.rollout import status as rollout_status
from kubeinfer.planning.serving import autoscaling, gateway_support, model_server

HANDOVER_MANAGER = "kubeinfer-handover"
"""Field manager that keeps a promoted Deployment's replicas while the autoscaler takes over."""


async def observe(owner: children.Owner, spec: api.InferenceServiceSpec) -> planner.Observed:
    """Gather what the InferenceService planner needs from the store."""
    store = context.current().store
    pool: planner.PoolView | None = None
    if spec.placement.gpu_pool:
        body = store.get(kinds.GPU_POOL.kind, owner.namespace, spec.placement.gpu_pool)
        pool = gpu_placement.pool_state(store, owner, body)
    own = store.get(kinds.INFERENCE_SERVICE.kind, owner.namespace, owner.name)
    status = _status(own)
    now = datetime.now(UTC)
    state, stable = rollout_status.from_status(status)
    deployments = {
        d["metadata"]["labels"].get(MODEL_VERSION_LABEL, ""): _deployment_view(d)
        for d in store.owned_by("Deployment", owner.namespace, owner.uid)
    }
    route = store.get("HTTPRoute", owner.namespace, owner.name)
    accepted, message = _route_accepted(route)
    api_name = autoscaling.metrics_api_for(spec)
    apisvc = store.get("APIService", "", api_name)
    pods = list(_own_pods(store.all("Pod"), owner))
    parents = gateways.parents(store, owner.namespace, spec)
    # a shadow whose gateway cannot mirror sends the candidate nothing: nothing to analyse
    held = gateway_support.mirror_hold(spec, parents) is not None
    return planner.Observed(
        pool=pool,
        previous_placement=gpu_placement.previous_placement(own),
        deployments=deployments,
        pods=_pods(pods),
        route_accepted=accepted,
        route_message=message,
        gateways=parents,
        metrics_api=_metrics_view(api_name, apisvc),
        status=status,
        samples=None
        if held
        else await rollout_analysis.samples(owner, spec, state=state, stable=stable, now=now),
        now=now,
        log_policies=log_policies(store, owner.namespace) if spec.logging.mode == "file" else (),
        server_pods=_server_pods(pods) if in_place.enabled(spec) else (),
    )


def log_policies(store: kube_store.Store, namespace: str) -> tuple[log_sidecar.Policy, ...]:
    """The LogPolicies of ``namespace``; one whose spec does not parse is skipped here (its own
    reconcile reports it)."""
    found = []
    for body in store.all(kinds.LOG_POLICY.kind):
        if body["metadata"].get("namespace") != namespace:
            continue
        try:
            spec = log_api.LogPolicySpec.model_validate(body.get("spec") or {})
        except ValidationError:
            continue
        found.append(log_sidecar.Policy(owner_of(body), spec))
    return tuple(sorted(found, key=lambda p: p.owner.name))


def _own_pods(pods: Any, owner: children.Owner) -> Iterator[Any]:
    """The pods of this service (its label, its namespace)."""
    for pod in pods:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        if meta.get("namespace") == owner.namespace and labels.get(owner.label_key) == owner.name:
            yield pod


def _pods(pods: Any) -> dict[str, tuple[int, int]]:
    """Model version -> (pods not terminating, terminating pods) of the service's ``pods``."""
    counts: dict[str, list[int]] = {}
    for pod in pods:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        count = counts.setdefault(str(labels.get(MODEL_VERSION_LABEL, "")), [0, 0])
        count[1 if meta.get("deletionTimestamp") else 0] += 1
    return {v: (n, dying) for v, (n, dying) in counts.items()}


def _server_pods(pods: Any) -> tuple[in_place.ServerPod, ...]:
    """The service's ``pods`` that are not terminating, as in-place loads see them."""
    found = []
    for pod in pods:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        if meta.get("deletionTimestamp"):
            continue
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        annotations = meta.get("annotations") or {}
        found.append(
            in_place.ServerPod(
                name=meta["name"],
                ip=status.get("podIP") or "",
                ready=ready,
                labelled=labels.get(MODEL_VERSION_LABEL, ""),
                load_error=annotations.get(LOAD_ERROR_ANNOTATION, ""),
                restarts=_server_restarts(status),
                loaded_at_restart=_count(annotations.get(LOADED_AT_RESTART_ANNOTATION)),
            )
        )
    return tuple(found)


def _server_restarts(status: Any) -> int:
    """How often the model server container restarted (0 until it has a status)."""
    for container in status.get("containerStatuses") or []:
        if container.get("name") == model_server.SERVER_CONTAINER:
            return int(container.get("restartCount") or 0)
    return 0


def _count(text: Any) -> int | None:
    """A recorded restart count; None when absent or not a number (it is then rewritten)."""
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _status(body: Any) -> api.InferenceServiceStatus:
    """The last written status; an unreadable one counts as empty (it is rewritten whole)."""
    try:
        return api.InferenceServiceStatus.model_validate((body or {}).get("status") or {})
    except ValidationError:
        return api.InferenceServiceStatus()


async def prepare(
    owner: children.Owner, spec: api.InferenceServiceSpec, plan: planner.Plan
) -> None:
    """What runs between planning and applying: the autoscaler's handover and in-place loads."""
    await hand_over(owner, plan)
    if plan.reloads:
        body = context.current().store.get(
            kinds.INFERENCE_SERVICE.kind, owner.namespace, owner.name
        )
        model_reload.RELOADER.start(
            owner,
            spec,
            body or {},
            plan.reloads,
            wake=lambda: CONTROLLER.schedule(owner.namespace, owner.name),
        )


async def hand_over(owner: children.Owner, plan: planner.Plan) -> None:
    """Give a promoted candidate's replica count to the autoscaler before kubeinfer lets go.

    The candidate ran with replicas kubeinfer set. Applying it as stable without the field would
    drop the field (back to 1 pod); applying the current count under a second field manager
    first keeps it, and the autoscaler takes it from there.
    """
    if plan.handover is None:
        return
    ctx = context.current()
    body = ctx.store.get("Deployment", owner.namespace, plan.handover)
    if body is None:
        return
    replicas = int((body.get("spec") or {}).get("replicas") or 1)
    await ctx.kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": plan.handover, "namespace": owner.namespace},
            "spec": {"replicas": replicas},
        },
        field_manager=HANDOVER_MANAGER,
    )


def _deployment_view(body: Any) -> planner.DeploymentView:
    status = body.get("status") or {}
    conds = {c.get("type"): c for c in status.get("conditions") or []}
    progressing = conds.get("Progressing", {})
    failed = progressing.get("reason") == "ProgressDeadlineExceeded"
    return planner.DeploymentView(
        replicas=int(status.get("replicas", 0)),
        ready_replicas=int(status.get("readyReplicas", 0)),
        available=conds.get("Available", {}).get("status") == "True",
        failed=failed,
        message=str(progressing.get("message", "")),
    )


def _route_accepted(route: Any) -> tuple[bool | None, str]:
    if route is None:
        return None, ""
    parents = (route.get("status") or {}).get("parents") or []
    for parent in parents:
        for cond in parent.get("conditions") or []:
            if cond.get("type") == "Accepted":
                return cond.get("status") == "True", str(cond.get("message", ""))
    return False, "No Gateway controller has reported on the HTTPRoute yet."


def _metrics_view(name: str, body: Any) -> planner.MetricsApiView:
    if body is None:
        return planner.MetricsApiView(name=name, exists=False)
    conds = {c.get("type"): c for c in (body.get("status") or {}).get("conditions") or []}
    available = conds.get("Available", {})
    return planner.MetricsApiView(
        name=name,
        exists=True,
        available=available.get("status") == "True",
        message=str(available.get("message", "")),
    )


CONTROLLER = Controller(kinds.INFERENCE_SERVICE, observe, planner.plan, prepare=prepare)
