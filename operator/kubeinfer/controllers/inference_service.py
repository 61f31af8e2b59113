"""InferenceService handlers: observe the pool, the Deployments, the route and the metrics API.

Reads come from the watch store; the plan is :mod:`kubeinfer.planning.inference_service`.
"""

from __future__ import annotations

from typing import Any

from kubeinfer.api import inference_service as api
from kubeinfer.api import kinds
from kubeinfer.controllers import context, gpu_placement
from kubeinfer.controllers.reconcile import Controller
from kubeinfer.planning import autoscaling, children
from kubeinfer.planning import inference_service as planner


async def observe(owner: children.Owner, spec: api.InferenceServiceSpec) -> planner.Observed:
    """Gather what the InferenceService planner needs from the store."""
    store = context.current().store
    pool: planner.PoolView | None = None
    if spec.placement.gpu_pool:
        body = store.get(kinds.GPU_POOL.kind, owner.namespace, spec.placement.gpu_pool)
        pool = gpu_placement.pool_state(store, owner, body)
    own = store.get(kinds.INFERENCE_SERVICE.kind, owner.namespace, owner.name)
    deployments = {
        d["metadata"]["labels"].get(planner.VERSION_LABEL, ""): _deployment_view(d)
        for d in store.owned_by("Deployment", owner.namespace, owner.uid)
    }
    route = store.get("HTTPRoute", owner.namespace, owner.name)
    accepted, message = _route_accepted(route)
    api_name = autoscaling.metrics_api_for(spec)
    apisvc = store.get("APIService", "", api_name)
    return planner.Observed(
        pool=pool,
        previous_placement=gpu_placement.previous_placement(own),
        deployments=deployments,
        route_accepted=accepted,
        route_message=message,
        metrics_api=_metrics_view(api_name, apisvc),
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


CONTROLLER = Controller(kinds.INFERENCE_SERVICE, observe, planner.plan)
