"""Reading objects the way a person does with kubectl: an object, its status, one condition.

Owns: ``get`` (``kubectl get -o json``: one object, or a list for a plural), ``status`` (an
object's status, {} before the first write) and ``condition`` (one condition of an object or a status, {}
when absent); the one copy of each for every e2e test.
Must not: write anything, or wait (``waiting`` polls).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from e2e.harness import cluster as cluster_setup


def get(cluster: cluster_setup.Cluster, *what: str, namespace: str) -> dict[str, Any]:
    """``kubectl get <what…> -n <namespace> -o json``: the object, or a List for a plural."""
    out = cluster.kubectl("get", *what, "-n", namespace, "-o", "json").stdout
    found: dict[str, Any] = json.loads(out)
    return found


def status(cluster: cluster_setup.Cluster, ref: str, *, namespace: str) -> dict[str, Any]:
    """The status of ``ref`` (``infsvc/name``) as the API server holds it, {} before any."""
    found: dict[str, Any] = get(cluster, ref, namespace=namespace).get("status") or {}
    return found


def condition(body: Mapping[str, Any], type_: str) -> dict[str, Any]:
    """The condition of type ``type_`` of an object (its ``status`` is a mapping) or of a status
    itself, or {}."""
    nested = body.get("status")
    found_in: Mapping[str, Any] = nested if isinstance(nested, Mapping) else body
    found: dict[str, Any] = next(
        (dict(c) for c in found_in.get("conditions") or [] if c.get("type") == type_), {}
    )
    return found
