"""LogPolicy handlers: observe the pods a policy covers, the rollout of the agent DaemonSet and
of the Deployments running its sidecar, the collector's ``validate`` verdict on the rendered
configurations, and the agents' reports.

Reads come from the watch store; validation is :mod:`kubeinfer.controllers.log_validation`; the
plan is :mod:`kubeinfer.planning.log_policy`.
"""

from __future__ import annotations

import time

from kubeinfer.api import base, kinds
from kubeinfer.api import log_policy as api
from kubeinfer.controllers import context, log_reports, log_validation
from kubeinfer.controllers.reconcile import Controller
from kubeinfer.planning import children
from kubeinfer.planning import log_policy as planner
from kubeinfer.planning.labels import INFERENCE_SERVICE_LABEL
from kubeinfer.planning.logs import collector
from kubeinfer.planning.logs import sidecar as log_sidecar


async def observe(owner: children.Owner, spec: api.LogPolicySpec) -> planner.Observed:
    """Count the covered pods, read the agents' rollout and validate the configuration."""
    store = context.current().store
    if spec.inference_service is not None:
        selector = base.LabelSelector(
            match_labels={INFERENCE_SERVICE_LABEL: spec.inference_service}
        )
    else:
        selector = spec.selector or base.LabelSelector()
    matched = sum(
        1
        for p in store.all("Pod")
        if p["metadata"].get("namespace") == owner.namespace
        and selector.matches(p["metadata"].get("labels") or {})
    )
    agents = store.get("DaemonSet", owner.namespace, children.dns_name(owner.name, "log-agent"))
    status = (agents or {}).get("status") or {}
    text = collector.config_text(owner, spec)
    validation = await log_validation.validate(text, children.content_hash(text))
    sidecar = collector.sidecar_config_text(owner, spec)
    sidecar_digest = children.content_hash(sidecar)
    sidecar_validation = await log_validation.validate(sidecar, sidecar_digest)
    sidecar_pods, sidecar_pods_updated = log_sidecar.rollout(
        store.all("Deployment"), owner=owner, digest=sidecar_digest
    )
    return planner.Observed(
        matched_pods=matched,
        agents_desired=int(status["desiredNumberScheduled"])
        if "desiredNumberScheduled" in status
        else None,
        agents_updated=int(status.get("updatedNumberScheduled", 0)),
        validation=validation,
        sidecar_validation=sidecar_validation,
        sidecar_pods=sidecar_pods,
        sidecar_pods_updated=sidecar_pods_updated,
        reports=log_reports.recent(owner.namespace, owner.name, time.monotonic()),
    )


CONTROLLER = Controller(kinds.LOG_POLICY, observe, planner.plan)


# A policy whose agent reported is reconciled (the HTTP server starts after the context exists).
log_reports.subscribe(CONTROLLER.schedule)
