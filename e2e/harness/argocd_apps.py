"""Argo CD Applications as a user writes them, and what Argo CD reports about them.

Owns: the Application manifest kubeinfer documents (automated sync with prune and self-heal,
server-side apply, a short retry; a plain directory or a Helm chart from one Git repository),
``State`` (sync status and revision, health, the last operation's phase and message,
conditions, and each managed resource's sync, health and health message) read from an Application's status, and ``Recorder``, which watches every
Application in Argo CD's namespace from a background thread and keeps each change of state with
the time it was seen, so a test can say what Argo CD ever showed and how long it took.
Must not: run Argo CD (``argocd_core`` does) or decide what a state should be (tests do).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
import types
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes

from e2e.harness import argocd_core, waiting

log = logging.getLogger(__name__)

GROUP = "argoproj.io"
VERSION = "v1alpha1"
PLURAL = "applications"
SYNC_OPTIONS = ("ServerSideApply=true", "CreateNamespace=true")
WATCH_SECONDS = 60


def application(
    name: str,
    *,
    repo_url: str,
    path: str,
    namespace: str,
    helm_values: Mapping[str, Any] | None = None,
    revision: str = "main",
) -> dict[str, Any]:
    """An Application syncing ``path`` of ``repo_url`` into ``namespace``: automated, pruning,
    self-healing, applied server-side. ``helm_values`` makes the source a Helm chart."""
    source: dict[str, Any] = {"repoURL": repo_url, "targetRevision": revision, "path": path}
    if helm_values is not None:
        source["helm"] = {"valuesObject": dict(helm_values)}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Application",
        "metadata": {"name": name, "namespace": argocd_core.NAMESPACE},
        "spec": {
            "project": "default",
            "source": source,
            "destination": {"server": argocd_core.IN_CLUSTER, "namespace": namespace},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": list(SYNC_OPTIONS),
                "retry": {
                    "limit": 2,
                    "backoff": {"duration": "2s", "factor": 2, "maxDuration": "10s"},
                },
            },
        },
    }


@dataclasses.dataclass(frozen=True)
class Resource:
    """One resource an Application manages, as its status lists it."""

    ref: str
    """``Kind/name``."""
    sync: str
    health: str
    message: str
    """The health script's message (kept because the controller runs with
    ``--persist-resource-health``)."""


@dataclasses.dataclass(frozen=True)
class State:
    """What Argo CD shows for one Application at one moment."""

    sync: str
    revision: str
    health: str
    operation: str
    operation_message: str
    conditions: tuple[str, ...]
    resources: tuple[Resource, ...]

    def resource(self, ref: str) -> Resource | None:
        """The managed resource ``Kind/name``, or None."""
        return next((r for r in self.resources if r.ref == ref), None)

    @classmethod
    def of(cls, app: Mapping[str, Any]) -> State:
        """Read the state from an Application object."""
        status = app.get("status") or {}
        sync = status.get("sync") or {}
        health = status.get("health") or {}
        operation = status.get("operationState") or {}
        return cls(
            sync=sync.get("status", ""),
            revision=sync.get("revision", ""),
            health=health.get("status", ""),
            operation=operation.get("phase", ""),
            operation_message=operation.get("message", ""),
            conditions=tuple(
                f"{c.get('type')}: {c.get('message')}" for c in status.get("conditions") or []
            ),
            resources=tuple(
                Resource(
                    ref=f"{r.get('kind')}/{r.get('name')}",
                    sync=r.get("status", ""),
                    health=(r.get("health") or {}).get("status", ""),
                    message=(r.get("health") or {}).get("message", ""),
                )
                for r in status.get("resources") or []
            ),
        )


@dataclasses.dataclass(frozen=True)
class Seen:
    """A state of one Application and when the recorder saw it (``time.monotonic()``)."""

    at: float
    app: str
    state: State


class Recorder:
    """Every change of every Application's state, seen through a watch; a context manager."""

    def __init__(self, api: Any) -> None:
        self._custom: Any = kubernetes.client.CustomObjectsApi(api)
        self._seen: list[Seen] = []
        self._last: dict[str, State] = {}
        self._objects: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watch: Any = None
        self._thread = threading.Thread(target=self._run, name="argocd-recorder", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(timeout=WATCH_SECONDS + 5)

    def _run(self) -> None:
        version = ""
        while not self._stopping.is_set():
            watch: Any = kubernetes.watch
            self._watch = watch.Watch()
            try:
                for event in self._watch.stream(
                    self._custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    argocd_core.NAMESPACE,
                    PLURAL,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                ):
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    self._record(obj, deleted=event["type"] == "DELETED")
            except kubernetes.client.ApiException as err:
                if err.status != 410:  # 410 Gone: list again from now
                    self.error = err
                    log.warning("Application watch failed", extra={"error": str(err)})
                    time.sleep(1)
                version = ""
            except Exception as err:  # noqa: BLE001 - kept for the test to report, then retried
                self.error = err
                if not self._stopping.is_set():
                    log.warning("Application watch broke", extra={"error": str(err)})
                    time.sleep(1)

    def _record(self, obj: dict[str, Any], *, deleted: bool) -> None:
        name = obj["metadata"]["name"]
        with self._lock:
            if deleted:
                self._objects.pop(name, None)
                self._last.pop(name, None)
                return
            self._objects[name] = obj
            state = State.of(obj)
            if self._last.get(name) != state:
                self._last[name] = state
                self._seen.append(Seen(time.monotonic(), name, state))

    def history(self, app: str, since: float = 0.0) -> list[Seen]:
        """Every state of ``app`` seen at or after ``since``, oldest first."""
        with self._lock:
            return [s for s in self._seen if s.app == app and s.at >= since]

    def current(self, app: str) -> dict[str, Any]:
        """The newest Application object the watch delivered ({} before the first)."""
        with self._lock:
            return dict(self._objects.get(app, {}))

    def state(self, app: str) -> State | None:
        """The newest state of ``app``, or None before it was seen."""
        with self._lock:
            return self._last.get(app)

    def wait(
        self,
        app: str,
        check: Callable[[State], bool],
        *,
        what: str,
        since: float = 0.0,
        timeout: float = 120.0,
    ) -> Seen:
        """The first state of ``app`` seen since ``since`` for which ``check`` holds."""

        def found() -> Seen | None:
            return next((s for s in self.history(app, since) if check(s.state)), None)

        seen: Seen = waiting.first(
            found,
            what=f"Application {app}: {what}",
            timeout=timeout,
            interval=0.2,
            on_timeout=lambda: self.describe(app, since),
        )
        return seen

    def describe(self, app: str, since: float = 0.0) -> str:
        """The states of ``app`` since ``since``, one a line, for a failure message."""
        lines = [
            f"+{s.at - since:7.1f}s sync={s.state.sync}@{s.state.revision[:8]} "
            f"health={s.state.health} "
            f"op={s.state.operation} ({s.state.operation_message}) "
            f"conditions={list(s.state.conditions)} "
            f"resources={[(r.ref, r.sync, r.health, r.message) for r in s.state.resources]}"
            for s in self.history(app, since)
        ]
        with contextlib.suppress(Exception):
            if self.error is not None:
                lines.append(f"watch error: {self.error!r}")
        return "\n".join(lines[-40:])
