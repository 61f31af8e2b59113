"""Reports the LogPolicy agents post to the operator: cumulative counts and disk-pressure steps.

Owns: taking a report (``POST /v1/log-agent-reports``, sent by the agent's ``kubeinfer_report``
extension every 10 s) from an authenticated agent only, parsing it, keeping the latest one per
policy and node in memory, forgetting reports older than ``STALE_AFTER_SECONDS``, and scheduling
the policy's reconcile when one arrives.
Must not: decide conditions or status (``planning.log_policy`` does).

Who may report: the agent sends a projected ServiceAccount token issued for the audience
``planning.log_policy.REPORT_AUDIENCE`` (401 without one, or when the API server's TokenReview
does not accept it) and may report only for LogPolicies of its ServiceAccount's namespace (403),
where the policy's DaemonSet and sidecars run. A pod of that namespace could still post false
counts; reports only feed status, never configuration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from kubeinfer.controllers import agent_tokens, context
from kubeinfer.kube import errors
from kubeinfer.planning import log_policy as planner
from kubeinfer.planning.logs import collector

log = logging.getLogger(__name__)

PATH = "/v1/log-agent-reports"
STALE_AFTER_SECONDS = 60.0
DROP_REASONS = ("levelOff", "sampling", "rateLimit", "undelivered")

_latest: dict[tuple[str, str, str], tuple[float, planner.AgentReport]] = {}
_on_report: list[Callable[[str, str], None]] = []


class ReportError(ValueError):
    """A report body that is not the agent's report shape."""


def subscribe(callback: Callable[[str, str], None]) -> None:
    """Call ``callback(namespace, policy)`` whenever a report for that policy arrives."""
    _on_report.append(callback)


def parse(body: Mapping[str, Any]) -> tuple[str, str, planner.AgentReport]:
    """``(namespace, policy, report)`` of a posted report, or ``ReportError`` naming the field."""
    try:
        namespace, policy, node = (str(body[k]) for k in ("namespace", "policy", "node"))
        dropped = body.get("dropped") or {}
        report = planner.AgentReport(
            node=node,
            seen=int(body["seen"]),
            kept=int(body["kept"]),
            dropped=tuple((r, int(dropped.get(r, 0))) for r in DROP_REASONS),
            disk_pressure_level=int(body.get("diskPressureLevel", 0)),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ReportError(f"not a log agent report: {err!r}") from err
    if not (namespace and policy and node):
        raise ReportError("namespace, policy and node must not be empty")
    return namespace, policy, report


def record(namespace: str, policy: str, report: planner.AgentReport, now: float) -> None:
    """Keep ``report`` as its agent's latest and tell the subscribers."""
    previous = _latest.get((namespace, policy, report.node))
    _latest[(namespace, policy, report.node)] = (now, report)
    if previous is None or previous[1].disk_pressure_level != report.disk_pressure_level:
        log.info(
            "Received LogPolicy agent report",
            extra={
                "policy": f"{namespace}/{policy}",
                "node": report.node,
                "disk_pressure_level": report.disk_pressure_level,
            },
        )
    for callback in _on_report:
        callback(namespace, policy)


def recent(namespace: str, policy: str, now: float) -> tuple[planner.AgentReport, ...]:
    """The policy's reports younger than ``STALE_AFTER_SECONDS``, by node."""
    for key in [k for k, (at, _) in _latest.items() if now - at > STALE_AFTER_SECONDS]:
        del _latest[key]
    return tuple(
        report
        for (ns, name, _), (_, report) in sorted(_latest.items())
        if (ns, name) == (namespace, policy)
    )


def _refuse(status: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="kubeinfer"'} if status == 401 else None
    return web.json_response({"error": message}, status=status, headers=headers)


async def handle(request: web.Request) -> web.Response:
    """``POST /v1/log-agent-reports``: 204 when taken; 401 without an accepted token, 403 for
    another namespace's policy, 400 naming what is wrong with the body, 503 when the token
    cannot be reviewed."""
    token = agent_tokens.bearer(request.headers.get("Authorization"))
    if token is None:
        return _refuse(
            401, "a bearer token (the agent's projected ServiceAccount token) is required"
        )
    try:
        identity = await agent_tokens.identify(context.current().kube, token, time.monotonic())
    except errors.KubeError as err:
        log.warning("Failed to review a LogPolicy agent's token", extra={"error": str(err)})
        return _refuse(503, f"the token could not be reviewed: {err}")
    if identity is None:
        return _refuse(
            401, f"the token was not accepted for audience {collector.REPORT_AUDIENCE!r}"
        )
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ReportError("the body must be a JSON object")
        namespace, policy, report = parse(body)
    except (ReportError, ValueError) as err:
        return _refuse(400, str(err))
    if identity.namespace != namespace:
        return _refuse(
            403,
            f"{identity.username} may not report for LogPolicies of namespace {namespace!r}",
        )
    record(namespace, policy, report, time.monotonic())
    return web.Response(status=204)
