"""Errors raised by the kube layer.

KubeError                  any failed request (status code and server message)
├── NotFound               404 for an object
├── NotServed              404 for a whole resource: its API (CRD) is not installed
├── Conflict               409 (server-side apply field conflict, resourceVersion)
└── Invalid                422: the server rejected the object; the message names the field
"""

from __future__ import annotations


class KubeError(Exception):
    """A request to the API server failed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class NotFound(KubeError):
    """The object does not exist."""


class NotServed(KubeError):
    """The resource type is not served by this cluster (its CRD or API group is missing)."""


class Conflict(KubeError):
    """A write conflicted with another field manager or a newer version."""


class Invalid(KubeError):
    """The API server rejected the object as invalid."""


class NamespaceTerminating(KubeError):
    """The namespace is being deleted, so nothing new may be created in it."""
