"""Reading an InferenceService the way a person does with kubectl: its status and conditions.

Owns: ``status`` (``kubectl get infsvc -o json``'s status, {} before the first write) and
``condition`` (one condition of a status, {} when absent).
Must not: write anything.
"""

from __future__ import annotations

import json
from typing import Any

from e2e.harness import cluster as cluster_setup


def status(cluster: cluster_setup.Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The InferenceService's status as the API server holds it."""
    out = cluster.kubectl("get", "infsvc", name, "-n", namespace, "-o", "json").stdout
    found: dict[str, Any] = json.loads(out).get("status") or {}
    return found


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    """The condition of type ``kind`` in ``status``, or {}."""
    found: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c["type"] == kind), {}
    )
    return found
