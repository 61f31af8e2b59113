"""Shared shape of child objects: names, labels and owner references.

Every child carries a controller ownerReference to its custom resource (so deleting the resource
garbage-collects it) and kubeinfer's labels, and never Argo CD's tracking label or annotation:
Argo CD would otherwise show the child as its own resource and prune or fight over it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from kubeinfer.planning.labels import APPLIED_HASH_ANNOTATION, PREFIX, owner_label

Manifest = dict[str, Any]

MANAGED_BY = "kubeinfer"
ARGOCD_TRACKING_LABEL = "app.kubernetes.io/instance"
ARGOCD_TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"


@dataclass(frozen=True)
class Owner:
    """The custom resource that owns children: identity plus the labels it carries."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str
    generation: int = 0
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def label_key(self) -> str:
        """The label naming this owner on its children, e.g. ``kubeinfer.io/inferenceservice``."""
        return owner_label(self.kind)


def owner_reference(owner: Owner) -> Manifest:
    """Return a controller ownerReference to ``owner``."""
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_labels(owner: Owner, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Labels every child of ``owner`` carries; Argo CD's tracking label is never copied."""
    labels = {
        k: v
        for k, v in owner.labels.items()
        if k != ARGOCD_TRACKING_LABEL and not k.startswith(PREFIX)
    }
    labels.update(
        {
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "app.kubernetes.io/part-of": "kubeinfer",
            owner.label_key: owner.name,
        }
    )
    labels.update(extra or {})
    return dict(sorted(labels.items()))


def metadata(
    owner: Owner,
    name: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    namespaced: bool = True,
) -> Manifest:
    """Return the metadata block of a child named ``name``."""
    meta: Manifest = {"name": name}
    if namespaced:
        meta["namespace"] = owner.namespace
    meta["labels"] = child_labels(owner, labels)
    clean = {k: v for k, v in (annotations or {}).items() if k != ARGOCD_TRACKING_ANNOTATION}
    if clean:
        meta["annotations"] = dict(sorted(clean.items()))
    meta["ownerReferences"] = [owner_reference(owner)]
    return meta


def dns_name(*parts: str, limit: int = 63) -> str:
    """Join parts into a DNS-1123 label, shortened with a stable hash suffix when too long."""
    raw = "-".join(p for p in parts if p)
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def content_hash(value: Any) -> str:
    """Return a short, stable hash of a JSON-serialisable value."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stamp_hash(manifest: Manifest) -> Manifest:
    """Return ``manifest`` with :data:`APPLIED_HASH_ANNOTATION` set to the hash of its content."""
    meta = dict(manifest["metadata"])
    annotations = dict(meta.get("annotations", {}))
    annotations.pop(APPLIED_HASH_ANNOTATION, None)
    digest = content_hash({**manifest, "metadata": {**meta, "annotations": annotations}})
    annotations[APPLIED_HASH_ANNOTATION] = digest
    meta["annotations"] = dict(sorted(annotations.items()))
    return {**manifest, "metadata": meta}
