"""An in-memory mirror of the objects kubeinfer watches, fed by watch events.

The controllers feed it from kopf's watch streams (one per kind), so a reconcile reads its
children and its pool from memory instead of issuing GETs. It holds plain bodies keyed by
kind, namespace and name; it never talks to the API server itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

Body = Mapping[str, Any]
Key = tuple[str, str, str]


class Store:
    """Latest known body of each watched object."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[tuple[str, str], Body]] = defaultdict(dict)

    def put(self, kind: str, body: Body) -> None:
        """Record the latest body of an object (from an ADDED or MODIFIED event)."""
        meta = body.get("metadata", {})
        self._objects[kind][(meta.get("namespace", ""), meta["name"])] = body

    def remove(self, kind: str, body: Body) -> None:
        """Forget an object (from a DELETED event)."""
        meta = body.get("metadata", {})
        self._objects[kind].pop((meta.get("namespace", ""), meta["name"]), None)

    def get(self, kind: str, namespace: str, name: str) -> Body | None:
        """Return the latest body of one object, if it is known."""
        return self._objects[kind].get((namespace, name))

    def all(self, kind: str) -> Iterator[Body]:
        """Iterate over every known object of a kind."""
        return iter(list(self._objects[kind].values()))

    def owned_by(self, kind: str, namespace: str, uid: str) -> list[Body]:
        """Return the objects of ``kind`` in ``namespace`` whose controller owner has ``uid``."""
        return [
            body
            for (ns, _), body in list(self._objects[kind].items())
            if ns == namespace
            and any(
                ref.get("uid") == uid for ref in body.get("metadata", {}).get("ownerReferences", [])
            )
        ]
