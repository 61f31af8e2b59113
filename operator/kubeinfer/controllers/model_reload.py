"""In-place reloads: load a version into a running model server, then record it on the pod.

The plan names the loads (:mod:`kubeinfer.planning.rollout.in_place`); this module carries them out the
way an operator drives a database's instance manager: an HTTP call to the runtime's
model-control API on the pod's IP and port (Triton answers a load once the new version serves,
keeping the old one until then), a check that exactly that version is ready, then a merge patch
of the pod's ``kubeinfer.io/model-version`` label, which moves the pod into that version's
Service and series. Each load runs as its own task so a reconcile never waits minutes for a big
model; a pod has at most one load in flight, and the pod's watch event (its new label) wakes the
next reconcile.

Outcomes: a runtime that answers with an error refused the version: the pod is annotated with
the answer (``kubeinfer.io/load-error``, never retried there), a Warning Event names it, and the
rollout fails the candidate. No answer (the server is still starting, a timeout) is retried by a
later reconcile. Every outcome is one log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from kubeinfer.api import base
from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import Reason
from kubeinfer.controllers import context, pod_views
from kubeinfer.kube import errors, events
from kubeinfer.planning import children
from kubeinfer.planning.labels import (
    LOAD_ERROR_ANNOTATION,
    LOADED_AT_RESTART_ANNOTATION,
    MODEL_VERSION_LABEL,
)
from kubeinfer.planning.rollout import in_place
from kubeinfer.planning.serving import model_server, runtimes

log = logging.getLogger(__name__)

RETRY_SECONDS = 10.0
"""When a load that got no answer is tried again."""
READY_TIMEOUT_SECONDS = 10.0
MAX_MESSAGE = 512
"""Characters of a runtime's error kept on the pod and in the Event."""
MAX_RECORDED = 4096
"""How many pods' last records the reloader keeps to refuse a repeated load (oldest forgotten)."""


class Refused(Exception):
    """The runtime answered the load with an error."""


class Unanswered(Exception):
    """The runtime gave no usable answer (not listening yet, a timeout, a 5xx while starting)."""


class Reloader:
    """Runs the loads of one kind's plans, at most one per pod at a time."""

    def __init__(self) -> None:
        self._in_flight: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._recorded: dict[tuple[str, str], tuple[str, int]] = {}
        """(namespace, pod) -> the (version, restarts) last recorded on it: until the pod's watch
        event brings that record into the store, a reconcile still sees the pod unrecorded and
        would load the same version again (the store keeps a newer watch state over our own
        write, see ``Store.put_written``)."""
        self._session: aiohttp.ClientSession | None = None

    def start(
        self,
        owner: children.Owner,
        spec: api.InferenceServiceSpec,
        body: Any,
        loads: tuple[in_place.Reload, ...],
        wake: Callable[[], None],
    ) -> None:
        """Start every load of ``loads`` whose pod has none in flight; ``wake`` reconciles the
        owner again (after a load that got no answer, which no watch event reports)."""
        for load in loads:
            key = (owner.namespace, load.pod)
            if key in self._in_flight or self._recorded.get(key) == (load.version, load.restarts):
                continue
            task = asyncio.get_running_loop().create_task(self._run(owner, spec, body, load, wake))
            self._in_flight[key] = task

    async def _run(
        self,
        owner: children.Owner,
        spec: api.InferenceServiceSpec,
        body: Any,
        load: in_place.Reload,
        wake: Callable[[], None],
    ) -> None:
        started = time.monotonic()
        try:
            await self._load(spec, load)
        except Refused as refused:
            message = str(refused)[:MAX_MESSAGE]
            log.warning(
                "Pod %s/%s refused to load %s %s: %s",
                owner.namespace,
                load.pod,
                spec.model.name,
                load.version,
                message,
            )
            if await _record(
                owner,
                load,
                annotations={LOAD_ERROR_ANNOTATION: f"{load.version}: {message}"},
            ):
                self._remember(owner, load)
            await events.post(
                context.current().kube,
                body,
                warning=True,
                reason=Reason.MODEL_LOAD_REFUSED,
                note=f"Pod {load.pod} refused to load version {load.version}: {message}",
            )
        except Unanswered as unanswered:
            log.info(
                "Load of %s %s into pod %s/%s got no answer (%s); retrying in %.0fs",
                spec.model.name,
                load.version,
                owner.namespace,
                load.pod,
                unanswered,
                RETRY_SECONDS,
            )
            asyncio.get_running_loop().call_later(RETRY_SECONDS, wake)
        else:
            if await _record(
                owner,
                load,
                labels={MODEL_VERSION_LABEL: load.version},
                annotations={
                    LOAD_ERROR_ANNOTATION: None,
                    LOADED_AT_RESTART_ANNOTATION: str(load.restarts),
                },
            ):
                self._remember(owner, load)
            log.info(
                "Loaded %s %s into pod %s/%s in place in %.1fs (it served %s)",
                spec.model.name,
                load.version,
                owner.namespace,
                load.pod,
                time.monotonic() - started,
                load.previous or "nothing",
            )
        finally:
            self._in_flight.pop((owner.namespace, load.pod), None)

    def _remember(self, owner: children.Owner, load: in_place.Reload) -> None:
        key = (owner.namespace, load.pod)
        self._recorded.pop(key, None)
        self._recorded[key] = (load.version, load.restarts)
        if len(self._recorded) > MAX_RECORDED:  # pods come and go: forget the oldest
            self._recorded.pop(next(iter(self._recorded)))

    async def _load(self, spec: api.InferenceServiceSpec, load: in_place.Reload) -> None:
        runtime = runtimes.RUNTIMES[spec.model.runtime]
        control = runtime.model_control
        if control is None:  # the API's CEL rule admits inPlace only for such runtimes
            raise Refused(f"runtime {runtime.name} cannot load a version in place")
        path, request = control.load(model_server.launch_of(spec), load.version)
        base_url = f"http://{_host(load.ip)}:{runtime.port}"
        session = self._client()
        timeout = aiohttp.ClientTimeout(total=base.duration_seconds(spec.model.load_timeout))
        try:
            async with session.post(base_url + path, json=request, timeout=timeout) as rsp:
                if rsp.status >= 500:
                    raise Unanswered(f"HTTP {rsp.status}")
                if rsp.status != 200:
                    raise Refused(await _error_of(rsp))
            ready = aiohttp.ClientTimeout(total=READY_TIMEOUT_SECONDS)
            url = base_url + control.ready(spec.model.name, load.version)
            async with session.get(url, timeout=ready) as rsp:
                if rsp.status != 200:
                    raise Unanswered(f"version {load.version} not ready after its load")
        except (aiohttp.ClientError, TimeoutError) as err:
            raise Unanswered(str(err) or type(err).__name__) from err

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        """Stop the loads in flight and close the HTTP session."""
        for task in list(self._in_flight.values()):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _error_of(rsp: aiohttp.ClientResponse) -> str:
    """The runtime's error message (Triton answers ``{"error": "..."}``)."""
    text = (await rsp.text()).strip()
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("error"):
        return str(payload["error"])
    return f"HTTP {rsp.status}: {text}"


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


async def _record(
    owner: children.Owner,
    load: in_place.Reload,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str | None],
) -> bool:
    """Record an outcome on the pod and in the watch mirror at once, so the next reconcile does
    not load the same version again before the pod's watch event arrives; whether the pod took
    the record."""
    ctx = context.current()
    patch: dict[str, Any] = {"metadata": {"annotations": annotations}}
    if labels:
        patch["metadata"]["labels"] = labels
    held = ctx.store.version("Pod", owner.namespace, load.pod)
    try:
        patched = await ctx.kube.patch("v1", "Pod", owner.namespace, load.pod, patch)
    except errors.NotFound:
        log.info("Pod %s/%s went away before its load was recorded", owner.namespace, load.pod)
        return False
    except errors.KubeError as err:
        # the next reconcile sees the pod unrecorded and loads again (a no-op for the server)
        log.warning(
            "Recorded nothing on pod %s/%s after its load: %s", owner.namespace, load.pod, err
        )
        return False
    ctx.store.put_written("Pod", pod_views.slim(patched), held_before=held)
    return True


RELOADER = Reloader()
"""The operator's one reloader (its tasks outlive the reconcile that started them)."""
