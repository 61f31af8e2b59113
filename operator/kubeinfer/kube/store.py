"""An in-memory mirror of the objects kubeinfer watches, fed by watch events.

The controllers feed it from kopf's watch streams (one per kind), so a reconcile reads its
children and its pool from memory instead of issuing GETs. It holds plain bodies keyed by
kind, namespace and name, indexed by owner uid so finding an object's children costs what the
children number, not what the cluster holds. It never talks to the API server itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

Body = Mapping[str, Any]
Key = tuple[str, str]


def _key(body: Body) -> Key:
    meta = body.get("metadata", {})
    return meta.get("namespace") or "", meta["name"]


def _owners(body: Body) -> set[str]:
    refs = body.get("metadata", {}).get("ownerReferences") or []
    return {str(ref["uid"]) for ref in refs if ref.get("uid")}


class Store:
    """Latest known body of each watched object."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[Key, Body]] = defaultdict(dict)
        self._by_owner: dict[tuple[str, str], set[Key]] = defaultdict(set)

    def put(self, kind: str, body: Body) -> None:
        """Record the latest body of an object (from an ADDED or MODIFIED event)."""
        key = _key(body)
        old = self._objects[kind].get(key)
        if old is not None:
            self._unindex(kind, key, old)
        self._objects[kind][key] = body
        for uid in _owners(body):
            self._by_owner[(kind, uid)].add(key)

    def version(self, kind: str, namespace: str, name: str) -> str | None:
        """The resourceVersion of the body held for an object, or None when none is held."""
        held = self.get(kind, namespace, name)
        return None if held is None else held["metadata"].get("resourceVersion")

    def put_written(self, kind: str, written: Body, *, held_before: str | None) -> bool:
        """Take the result of this operator's own write, unless the watch moved on meanwhile.

        ``held_before`` is the resourceVersion held when the write was sent. A watch event that
        arrived while the write was in flight may carry a state newer than the write's answer
        (a Deployment's controller reports its pods within milliseconds of the create), and
        resourceVersions are opaque, so they are never compared for order: the store keeps
        whatever the watch brought and the watch delivers the write itself soon after. Returns
        whether the written body was taken.
        """
        meta = written["metadata"]
        if self.version(kind, meta.get("namespace") or "", meta["name"]) != held_before:
            return False
        self.put(kind, written)
        return True

    def remove(self, kind: str, body: Body) -> None:
        """Forget an object (from a DELETED event)."""
        key = _key(body)
        old = self._objects[kind].pop(key, None)
        if old is not None:
            self._unindex(kind, key, old)

    def _unindex(self, kind: str, key: Key, body: Body) -> None:
        for uid in _owners(body):
            keys = self._by_owner.get((kind, uid))
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_owner[(kind, uid)]

    def get(self, kind: str, namespace: str, name: str) -> Body | None:
        """Return the latest body of one object, if it is known."""
        return self._objects[kind].get((namespace, name))

    def all(self, kind: str) -> Iterator[Body]:
        """Iterate over every known object of a kind."""
        return iter(list(self._objects[kind].values()))

    def owned_by(self, kind: str, namespace: str, uid: str) -> list[Body]:
        """Return the objects of ``kind`` in ``namespace`` that have an owner with ``uid``."""
        keys = sorted(self._by_owner.get((kind, uid), ()))
        objects = self._objects[kind]
        return [objects[k] for k in keys if k[0] == namespace and k in objects]
