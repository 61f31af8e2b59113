"""Simulators standing for the pods of a Deployment: one per pod, each on its own 127.0.0.x
or on the pod's own (loopback) IP.

Owns: one asyncio event loop in a background thread that serves every simulator of the fleet
(cheap on two cores: no process per pod), the pod -> address map, fleet-wide behaviour and
per-version changes (sent through each simulator's admin endpoint, and inherited by simulators
added later), each simulator's load log, and load runs on the same loop. Must not: look at the
API server; the caller says which pods exist and, optionally, their IPs (``sync``), so the
fleet follows whatever the Deployment really runs.

Pod IPs: ``sync(pods, hosts={pod: ip})`` serves that pod's simulator on ``ip:port`` (the
``port`` given to the fleet, e.g. the runtime's 8000), so a client that reads pod IPs from the
API server, as an operator calling each pod does, reaches it. Linux routes all of 127.0.0.0/8
to ``lo``, so any 127.x address binds without setup; anything else is refused with
``server.AddressError`` before any simulator changes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import types
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

import aiohttp
import aiohttp.web

from e2e.simulator import behaviour, load, model_control, server

T = TypeVar("T")
FIRST_HOST = 2  # 127.0.0.1 is the control plane's; simulators take 127.0.0.2 upwards
LAST_HOST = 254
CALL_TIMEOUT_SECONDS = 30.0


class FleetError(RuntimeError):
    """The fleet ran out of loopback addresses, a simulator's admin endpoint refused a change, or
    a change needs a runtime or version the fleet does not serve."""


class Fleet:
    """Simulators keyed by pod name; ``with Fleet(...) as fleet:`` stops them all on exit."""

    def __init__(
        self,
        identity: server.Identity,
        initial: behaviour.Behaviour | None = None,
        *,
        port: int = 0,
    ) -> None:
        self.identity = identity
        self.port = port
        """Port every simulator listens on; 0: any free one (needed on shared 127.0.0.x)."""
        self._behaviour = initial or behaviour.Behaviour()
        self._versions: dict[int, model_control.VersionSettings] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="simulator-fleet", daemon=True
        )
        self._runners: dict[str, aiohttp.web.AppRunner] = {}
        self._simulators: dict[str, server.Simulator] = {}
        self._addresses: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Fleet:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.sync(())
        self._call(_cancel_others())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CALL_TIMEOUT_SECONDS)
        self._loop.close()

    # -- membership -------------------------------------------------------------------------------

    def sync(self, pods: Iterable[str], *, hosts: Mapping[str, str] | None = None) -> None:
        """Serve a simulator for every pod in ``pods`` and stop those of pods that are gone.
        A pod in ``hosts`` (pod -> IP) gets its simulator on that IP, others a free 127.0.0.x;
        ``server.AddressError`` (nothing changed) if any of those IPs is not loopback."""
        hosts = dict(hosts or {})
        for host in hosts.values():
            server.require_loopback(host)
        wanted = set(pods)
        with self._lock:
            current = set(self._runners)
        for pod in sorted(current - wanted):
            self._call(self._remove(pod))
        for pod in sorted(wanted - current):
            self._call(self._add(pod, hosts.get(pod)))

    def addresses(self) -> dict[str, str]:
        """``host:port`` of each pod's simulator."""
        with self._lock:
            return {pod: f"{host}:{port}" for pod, (host, port) in self._addresses.items()}

    def urls(self) -> list[str]:
        """Base URL of every simulator, in pod-name order."""
        return [f"http://{address}" for _, address in sorted(self.addresses().items())]

    async def _add(self, pod: str, host: str | None) -> None:
        if host is None:
            with self._lock:
                used = {h for h, _ in self._addresses.values()}
            free = [f"127.0.0.{n}" for n in range(FIRST_HOST, LAST_HOST + 1)]
            host = next((h for h in free if h not in used), None)
        if host is None:
            raise FleetError("no free 127.0.0.x address left for another simulator")
        simulator = server.Simulator(self.identity, self._behaviour)
        for version, settings in self._versions.items():
            simulator.model.set_version(version, settings)
        runner, port = await server.start(simulator, host=host, port=self.port)
        with self._lock:
            self._runners[pod] = runner
            self._simulators[pod] = simulator
            self._addresses[pod] = (host, port)

    async def _remove(self, pod: str) -> None:
        with self._lock:
            runner = self._runners.pop(pod)
            self._simulators.pop(pod)
            self._addresses.pop(pod)
        await runner.cleanup()

    # -- behaviour and load -----------------------------------------------------------------------

    def set_behaviour(self, document: Mapping[str, Any]) -> behaviour.Behaviour:
        """Change latency / error rate on every simulator (through its admin endpoint) and for
        simulators added later; return the new behaviour."""
        with self._lock:
            self._behaviour = self._behaviour.updated(document)
        self._call(self._put_all("/admin/behaviour", dict(document)))
        return self._behaviour

    def set_version(self, version: int, document: Mapping[str, Any]) -> None:
        """Set how ``version`` behaves, loads or fails to load (``PUT /admin/versions/{version}``
        of ``model_control``) on every simulator and on simulators added later. Triton only."""
        if self.identity.runtime != "triton":
            raise FleetError("per-version settings need runtime triton (model control)")
        settings = model_control.VersionSettings.from_json(dict(document), self._behaviour)
        if version not in self.identity.versions:
            raise FleetError(f"version {version} is not in {self.identity.versions}")
        with self._lock:
            self._versions[version] = settings
        self._call(self._put_all(f"/admin/versions/{version}", dict(document)))

    def loads(self) -> dict[str, list[dict[str, Any]]]:
        """Each pod's load log, as ``GET /admin/loads`` answers: loads, failed loads, unloads."""
        return self._call(self._read_loads())

    async def _read_loads(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            simulators = dict(self._simulators)
        return {pod: [e.to_json() for e in sim.model.loads] for pod, sim in simulators.items()}

    async def _put_all(self, path: str, document: dict[str, Any]) -> None:
        async with aiohttp.ClientSession() as session:
            for url in self.urls():
                async with session.put(f"{url}{path}", json=document) as response:
                    if response.status != 200:
                        raise FleetError(f"{url} refused {document}: {await response.text()}")

    def start_load(
        self, limits: load.Limits
    ) -> tuple[concurrent.futures.Future[load.Report], Callable[[], None]]:
        """Start a load run over the fleet's current simulators; return its future and a
        ``stop()`` callable that ends it early."""
        stop = asyncio.Event()
        future = asyncio.run_coroutine_threadsafe(
            load.run(self.urls, limits, model=self.identity.model, stop=stop), self._loop
        )

        def request_stop() -> None:
            self._loop.call_soon_threadsafe(stop.set)

        return future, request_stop

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(
            timeout=CALL_TIMEOUT_SECONDS
        )


async def _cancel_others() -> None:
    """Cancel every other task on this loop (load runs nobody stopped) and let each unwind, so
    none is left suspended when the loop closes."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
