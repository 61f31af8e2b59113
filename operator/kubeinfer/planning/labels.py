"""Every ``kubeinfer.io`` key the operator and its node agent put on objects, in one place.

Owns the names of labels, annotations and the scheduling gate, and the names Prometheus gives
the labels it scrapes from pods. Must not: decide anything or import other planning modules
(every layer above reads these names). Two ``kubeinfer.io`` strings live elsewhere because they
are values, not keys: the API group (``kubeinfer.api.GROUP``) and the Events'
``reportingController`` (``kubeinfer.kube.events``).
"""

from __future__ import annotations

import re

PREFIX = "kubeinfer.io/"
"""Labels under this prefix are kubeinfer's own: children never inherit them from an owner."""


def owner_label(kind: str) -> str:
    """The label naming a kind's owner on its children: ``kubeinfer.io/<kind in lower case>``."""
    return f"{PREFIX}{kind.lower()}"


def series_label(key: str) -> str:
    """The name Prometheus gives a pod label it scrapes (every non-alphanumeric becomes ``_``)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


# --- on children and pods of an InferenceService -----------------------------------------------

INFERENCE_SERVICE_LABEL = owner_label("InferenceService")
"""The InferenceService a child or pod belongs to; also marks the pods that hold GPUs."""
MODEL_VERSION_LABEL = f"{PREFIX}model-version"
"""The model version a pod serves; Services and the ServiceMonitor select by it."""
LOADED_AT_RESTART_ANNOTATION = f"{PREFIX}loaded-at-restart"
"""The server container's restart count when its version was loaded. A container that restarted
since then came back empty (explicit model control loads nothing at start), whatever the
pod's version label says, so it is loaded again."""
LOAD_ERROR_ANNOTATION = f"{PREFIX}load-error"
"""``<version>: <the runtime's answer>`` on a pod that refused to load that version."""
LOG_POLICIES_ANNOTATION = f"{PREFIX}log-policies"
"""The LogPolicies whose collector sidecars a pod template runs."""
LOG_CONFIG_HASH_ANNOTATION = f"{PREFIX}log-config-hash"
"""The collector configuration hashes a pod runs (a changed policy rolls it)."""
APPLIED_HASH_ANNOTATION = f"{PREFIX}applied-hash"
"""Hash of the desired child as last applied; equal hash means no write is needed."""
PLACEMENT_GATE = "gpu.kubeinfer.io/placement"
"""Scheduling gate on the pods of a GPU service that has no placement yet."""

INFERENCE_SERVICE_SERIES = series_label(INFERENCE_SERVICE_LABEL)
"""Prometheus label naming the InferenceService on its pods' series (ServiceMonitor podTargetLabels)."""
MODEL_VERSION_SERIES = series_label(MODEL_VERSION_LABEL)
"""Prometheus label naming the model version on its pods' series."""

# --- on GPU nodes, published by the node agent -------------------------------------------------

INVENTORY_ANNOTATION = "gpu.kubeinfer.io/inventory"
"""The one annotation the agent publishes (compact JSON of ``api.node_inventory.NodeInventory``)."""
NVLINK_LABEL = "gpu.kubeinfer.io/nvlink"
NVSWITCH_LABEL = "gpu.kubeinfer.io/nvswitch"
NUMA_NODES_LABEL = "gpu.kubeinfer.io/numa-nodes"
INVENTORY_VERSION_LABEL = "gpu.kubeinfer.io/inventory-version"
