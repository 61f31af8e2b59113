"""The shape pods are mirrored in: only the fields the planners read, so the pod mirror stays
small on big clusters (a 10,000-pod cluster's full pod bodies would dominate the operator's
memory)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeinfer.planning.labels import LOAD_ERROR_ANNOTATION, LOADED_AT_RESTART_ANNOTATION

KEPT_ANNOTATIONS = frozenset({LOAD_ERROR_ANNOTATION, LOADED_AT_RESTART_ANNOTATION})
"""Annotations the in-place loads record on a pod."""


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A pod as the store holds it."""
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    annotations = body["metadata"].get("annotations") or {}
    return {
        "metadata": {
            **{
                k: body["metadata"].get(k)
                for k in (
                    "name",
                    "namespace",
                    "labels",
                    "uid",
                    "deletionTimestamp",
                    "resourceVersion",
                )
            },
            "annotations": {k: v for k, v in annotations.items() if k in KEPT_ANNOTATIONS},
        },
        "spec": {
            "nodeName": spec.get("nodeName"),
            "containers": [
                {"resources": c.get("resources") or {}} for c in spec.get("containers") or []
            ],
        },
        "status": {
            "phase": status.get("phase"),
            "podIP": status.get("podIP"),
            "conditions": status.get("conditions") or [],
            "containerStatuses": [
                {"name": c.get("name"), "restartCount": c.get("restartCount", 0)}
                for c in status.get("containerStatuses") or []
            ],
        },
    }
