"""An asynchronous, typed face over the ``kubernetes`` client's REST calls.

Server-side apply under one field manager, reads, status merge-patches, deletes, and token
reviews (who sent a bearer token), addressed
through :mod:`kubeinfer.kube.resources` so no discovery is needed. Blocking calls run in worker
threads. Every request is reported to an injected observer (the controllers count them in
Prometheus); this module itself knows nothing of metrics.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from kubeinfer.kube import errors, resources

FIELD_MANAGER = "kubeinfer"
Manifest = dict[str, Any]
Items = list[Manifest]
RequestObserver = Callable[[str, str, int], None]
"""Called with (verb, kind, HTTP status) after every request."""


CONCURRENCY = 16
"""Requests in flight at once: worker threads and pooled HTTPS connections."""


def load_config() -> Any:
    """Return an API client configured in-cluster, or from KUBECONFIG / ~/.kube/config."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        k8s_config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = CONCURRENCY
    return k8s.ApiClient(configuration)


class Kube:
    """The operator's only door to the API server."""

    def __init__(
        self,
        api: Any,
        *,
        observe: RequestObserver | None = None,
        field_manager: str = FIELD_MANAGER,
    ) -> None:
        self._api = api
        self._observe = observe or (lambda verb, kind, status: None)
        self._field_manager = field_manager
        self._pool = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="kube")

    async def apply(self, manifest: Manifest, *, field_manager: str | None = None) -> Manifest:
        """Server-side apply ``manifest`` under this client's field manager, forcing conflicts.

        Forcing is right for children: kubeinfer is their only intended writer, and a conflict
        with another manager would otherwise leave the child stale forever.
        """
        res = resources.lookup(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        path = res.path(meta.get("namespace"), meta["name"])
        query = [("fieldManager", field_manager or self._field_manager), ("force", "true")]
        # The apply content type is YAML, of which JSON is a subset: the client sends the body
        # serialised as JSON.
        body = manifest
        return await self._call(
            "apply",
            res.kind,
            path,
            "PATCH",
            query=query,
            body=body,
            content_type="application/apply-patch+yaml",
        )

    async def create(self, manifest: Manifest) -> Manifest:
        """Create one object."""
        res = resources.lookup(manifest["apiVersion"], manifest["kind"])
        path = res.path(manifest["metadata"].get("namespace"))
        return await self._call("create", res.kind, path, "POST", body=manifest)

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> Manifest | None:
        """Return one object, or None when it does not exist."""
        res = resources.lookup(api_version, kind)
        try:
            return await self._call("get", kind, res.path(namespace, name), "GET")
        except errors.NotFound:
            return None

    async def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None, *, selector: str = ""
    ) -> Items:
        """Return the objects of a kind, optionally in one namespace and by label selector."""
        res = resources.lookup(api_version, kind)
        query = [("labelSelector", selector)] if selector else []
        out = await self._call("list", kind, res.path(namespace), "GET", query=query)
        items: Items = out.get("items", [])
        return items

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: Manifest
    ) -> Manifest:
        """Merge-patch the status subresource."""
        res = resources.lookup(api_version, kind)
        path = res.path(namespace, name) + "/status"
        return await self._merge_patch("patch_status", kind, path, {"status": status})

    async def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Manifest
    ) -> Manifest:
        """Merge-patch one object (metadata a controller records on objects it does not own)."""
        res = resources.lookup(api_version, kind)
        return await self._merge_patch("patch", kind, res.path(namespace, name), patch)

    async def _merge_patch(self, verb: str, kind: str, path: str, body: Manifest) -> Manifest:
        return await self._call(
            verb, kind, path, "PATCH", body=body, content_type="application/merge-patch+json"
        )

    async def review_token(self, token: str, audiences: list[str]) -> Manifest:
        """Ask the API server who ``token`` belongs to (a TokenReview); return its ``status``.

        The review is valid only for a token issued for one of ``audiences``, so a token meant
        for the API server (or another service) is not accepted in their place.
        """
        res = resources.lookup("authentication.k8s.io/v1", "TokenReview")
        body = {
            "apiVersion": res.api_version,
            "kind": res.kind,
            "spec": {"token": token, "audiences": audiences},
        }
        review = await self._call("create", res.kind, res.path(), "POST", body=body)
        status: Manifest = review.get("status") or {}
        return status

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        """Delete one object; a missing object is not an error."""
        res = resources.lookup(api_version, kind)
        try:
            await self._call("delete", kind, res.path(namespace, name), "DELETE")
        except errors.NotFound:
            return

    async def _call(
        self,
        verb: str,
        kind: str,
        path: str,
        method: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: str | Manifest | None = None,
        content_type: str = "application/json",
    ) -> Manifest:
        def call() -> Manifest:
            method_, url, headers, data, post = self._api.param_serialize(
                method,
                path,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(
                method_, url, header_params=headers, body=data, post_params=post
            )
            raw = response.read()
            if not 200 <= response.status < 300:
                raise k8s.ApiException(
                    status=response.status, reason=response.reason, body=raw.decode()
                )
            decoded = json.loads(raw) if raw else {}
            return decoded if isinstance(decoded, dict) else {}

        try:
            result = await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except k8s.ApiException as err:
            self._observe(verb, kind, int(err.status or 0))
            raise _translate(err) from err
        self._observe(verb, kind, 200)
        return result


def _translate(err: k8s.ApiException) -> errors.KubeError:
    status = int(err.status or 0)
    try:
        payload = json.loads(err.body or "{}")
    except ValueError:
        payload = {}
    message = str(payload.get("message") or err.reason or "")
    if status == 404:
        details = payload.get("details") or {}
        if details.get("name"):
            return errors.NotFound(status, message)
        return errors.NotServed(status, message)
    if status == 403 and _has_cause(payload, "NamespaceTerminating"):
        return errors.NamespaceTerminating(status, message)
    if status == 409:
        return errors.Conflict(status, message)
    if status == 422:
        return errors.Invalid(status, message)
    return errors.KubeError(status, message)


def _has_cause(payload: dict[str, Any], reason: str) -> bool:
    causes = (payload.get("details") or {}).get("causes") or []
    return any(c.get("reason") == reason for c in causes)
