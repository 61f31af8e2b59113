"""ChaosExperiment handlers: observe the target pods and the fault Job.

Reads come from the watch store; the plan is :mod:`kubeinfer.planning.chaos_experiment`.
"""

from __future__ import annotations

from typing import Any

from kubeinfer.api import base, kinds
from kubeinfer.api import chaos_experiment as api
from kubeinfer.controllers import context
from kubeinfer.controllers.reconcile import Controller
from kubeinfer.planning import chaos_experiment as planner
from kubeinfer.planning import children


async def observe(owner: children.Owner, spec: api.ChaosExperimentSpec) -> planner.Observed:
    """Gather the target pods and the fault Job from the store."""
    store = context.current().store
    namespace = spec.target.namespace or owner.namespace
    selector = base.LabelSelector.model_validate(planner.target_selector(spec))
    pods = tuple(
        planner.PodView(
            name=p["metadata"]["name"], ready=_ready(p), node=p.get("spec", {}).get("nodeName", "")
        )
        for p in store.all("Pod")
        if p["metadata"].get("namespace") == namespace
        and selector.matches(p["metadata"].get("labels") or {})
        and not p["metadata"].get("deletionTimestamp")
    )
    jobs = store.owned_by("Job", owner.namespace, owner.uid)
    return planner.Observed(pods=pods, job=_job_view(jobs[0]) if jobs else None)


def _ready(pod: Any) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _job_view(job: Any) -> planner.JobView:
    status = job.get("status") or {}
    return planner.JobView(
        active=int(status.get("active", 0)),
        succeeded=int(status.get("succeeded", 0)),
        failed=int(status.get("failed", 0)),
        start_time=status.get("startTime"),
        completion_time=status.get("completionTime"),
    )


CONTROLLER = Controller(kinds.CHAOS_EXPERIMENT, observe, planner.plan)
