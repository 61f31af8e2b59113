"""Events on the objects kubeinfer reconciles, created through the operator's own API client.

Owns the shape of an ``events.k8s.io/v1`` Event and posting it. They are created directly,
not through ``kopf.event()``: kopf's poster is reachable only through context variables that
its own per-object handler tasks set. A reconcile scheduled by the resync, at startup, by a log
agent's report, or by a requeue timer armed in such a reconcile runs outside those tasks, so its
Events (a rollback decided by a timed analysis among them) were lost. Our client needs no such
context.

Must not decide what is worth an Event (the controllers do), nor fail its caller: an Event the
server refuses is logged, since the decision it reports has already been applied.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubeinfer.api.conditions import Reason
from kubeinfer.kube import errors
from kubeinfer.kube.client import Kube

log = logging.getLogger(__name__)

REPORTING_CONTROLLER = "kubeinfer.io/operator"
"""``reportingController`` of every Event (``source.component`` in the core/v1 view)."""
ACTION = "Reconcile"
"""``action``: what the operator was doing when it posted the Event."""
NOTE_LIMIT_BYTES = 1024
"""The API server refuses a longer ``note``."""
NAME_LIMIT = 253
"""Longest object name."""
FIELD_LIMIT = 128
"""The API server refuses a longer ``reason`` or ``reportingInstance``."""


def reporting_instance() -> str:
    """This replica's name: the pod name Kubernetes puts in HOSTNAME, else the host's."""
    return (os.environ.get("HOSTNAME") or socket.gethostname())[:FIELD_LIMIT]


def build(
    regarding: Mapping[str, Any],
    *,
    warning: bool,
    reason: Reason,
    note: str,
    now: datetime,
    instance: str,
    salt: str,
) -> dict[str, Any]:
    """Return the Event reporting ``reason``/``note`` about the object ``regarding``."""
    meta = regarding["metadata"]
    namespace = meta.get("namespace") or "default"
    # As client-go names them: the object's name and a unique suffix (here the time in
    # microseconds and ``salt``); generateName would not do, as "name." is refused as a prefix.
    stamp = int(now.timestamp() * 1_000_000)
    name = f"{meta['name'][: NAME_LIMIT - 32]}.{stamp:x}{salt}"
    encoded = note.encode()
    if len(encoded) > NOTE_LIMIT_BYTES:
        note = encoded[: NOTE_LIMIT_BYTES - 3].decode(errors="ignore") + "..."
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "eventTime": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": instance,
        "action": ACTION,
        "reason": reason[:FIELD_LIMIT],
        "type": "Warning" if warning else "Normal",
        "note": note,
        "regarding": {
            key: value
            for key, value in {
                "apiVersion": regarding["apiVersion"],
                "kind": regarding["kind"],
                "namespace": meta.get("namespace"),
                "name": meta["name"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            }.items()
            if value
        },
    }


async def post(
    kube: Kube, regarding: Mapping[str, Any], *, warning: bool, reason: Reason, note: str
) -> None:
    """Create an Event about ``regarding``; a refusal is logged, never raised."""
    event = build(
        regarding,
        warning=warning,
        reason=reason,
        note=note,
        now=datetime.now(UTC),
        instance=reporting_instance(),
        salt=secrets.token_hex(4),
    )
    try:
        await kube.create(event)
    except errors.KubeError as err:
        log.warning("Posted no Event %s on %s: %s", reason, regarding["metadata"]["name"], err)
