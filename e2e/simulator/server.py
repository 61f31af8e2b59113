"""The simulated model server: one aiohttp application per simulated pod.

Owns: the HTTP surface a runtime's pod offers — its health and readiness paths (taken from
``kubeinfer.planning.serving.runtimes``, so probes and simulator agree), ``GET /v1/models``,
``POST /v1/completions`` (OpenAI-style), ``GET /metrics`` — and the admin endpoint
``GET|PUT /admin/behaviour`` that changes latency and error rate at run time. For runtime
``triton`` also Triton's model-control API and per-version admin endpoints (``model_control``):
the version loaded picks the behaviour, and a Triton simulator can start with no model loaded
(``Identity.start_loaded=False``, as ``--model-control-mode=explicit`` does until the first
load); then completions answer 400 and readiness (``/v2/health/ready``, which Triton answers
400 when not ready) fails. Triton with ``--strict-readiness`` and nothing loaded would answer
ready; the simulator's server readiness follows its one model instead.
Must not: bind anything but a loopback address (callers pass the address; ``serve`` checks it).

Metrics (one registry per application, so several simulators share a process):

- ``kubeinfer_request_duration_seconds`` histogram (label ``model``): measured wall time of each
  completion, including the injected latency. The adapter rules and KEDA's PromQL read it.
- ``kubeinfer_requests_total`` counter (labels ``model``, ``code``).
- for runtime ``vllm`` also vLLM's own names: ``vllm:e2e_request_latency_seconds``,
  ``vllm:request_success_total`` and ``vllm:num_requests_running`` (label ``model_name``).
- for runtime ``triton`` also Triton's own counters, labelled ``model`` and ``version`` (the
  version that answered): ``nv_inference_request_success``, ``nv_inference_request_failure``
  (plus ``reason="BACKEND"``) and ``nv_inference_count``, named as Triton names them (no
  ``_total``).

The scraper adds ``namespace``, ``pod`` and the ServiceMonitor's pod target labels; the
simulator itself never exports those names.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import random
import time
import uuid
from typing import Any

import aiohttp.web
import prometheus_client

from e2e.simulator import behaviour, model_control
from kubeinfer.planning.serving import runtimes

LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Seconds; dense around the 100-500 ms targets gold tiers use, so p95 interpolates closely."""
MAX_TOKENS_LIMIT = 4096


class AddressError(ValueError):
    """A simulator or load target was asked to use an address that is not loopback."""


def require_loopback(host: str) -> None:
    """Raise ``AddressError`` unless ``host`` is ``localhost`` or in 127.0.0.0/8 (or ::1)."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError as err:
        raise AddressError(f"{host!r} is not an IP address or localhost") from err
    if not loopback:
        raise AddressError(f"{host} is not a loopback address; simulators only use loopback")


@dataclasses.dataclass(frozen=True)
class Identity:
    """What the simulated server serves: runtime (vllm, triton, generic), model name, and the
    model's versions (Triton's version directories; other runtimes serve the default)."""

    runtime: str
    model: str
    load_seconds: float = 0.0
    """Readiness answers 503 (Triton: 400) for this long after start, as a model load would."""
    versions: tuple[int, ...] = (1,)
    default_version: int | None = None
    """Loaded at start and by a load without a version policy; None: the latest (highest)."""
    start_loaded: bool = True
    """False (Triton only): start with nothing loaded, as ``--model-control-mode=explicit``."""

    def __post_init__(self) -> None:
        if self.runtime not in runtimes.RUNTIMES:
            raise ValueError(
                f"unknown runtime {self.runtime!r}; known: {sorted(runtimes.RUNTIMES)}"
            )
        if not self.versions or any(v < 1 for v in self.versions):
            raise ValueError(f"versions must be integers > 0, got {self.versions}")
        if self.default_version is not None and self.default_version not in self.versions:
            raise ValueError(f"default_version {self.default_version} is not in {self.versions}")
        if not self.start_loaded and self.runtime != "triton":
            raise ValueError("only triton starts with no model loaded (explicit model control)")

    @property
    def start_version(self) -> int:
        """The version loaded at start and without a version policy."""
        return self.default_version if self.default_version is not None else max(self.versions)


class _Metrics:
    """The collectors of one simulated server, in their own registry."""

    def __init__(self, identity: Identity) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.duration = prometheus_client.Histogram(
            "kubeinfer_request_duration_seconds",
            "Wall time of completion requests, including queueing and generation.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = prometheus_client.Counter(
            "kubeinfer_requests",
            "Completion requests answered, by HTTP status code.",
            ["model", "code"],
            registry=self.registry,
        )
        self.vllm = identity.runtime == "vllm"
        if self.vllm:
            self.vllm_latency = prometheus_client.Histogram(
                "vllm:e2e_request_latency_seconds",
                "Histogram of end to end request latency in seconds.",
                ["model_name"],
                buckets=LATENCY_BUCKETS,
                registry=self.registry,
            )
            self.vllm_success = prometheus_client.Counter(
                "vllm:request_success",
                "Count of successfully processed requests.",
                ["model_name", "finished_reason"],
                registry=self.registry,
            )
            self.vllm_running = prometheus_client.Gauge(
                "vllm:num_requests_running",
                "Number of requests currently running.",
                ["model_name"],
                registry=self.registry,
            )

        self.triton = _TritonCounters() if identity.runtime == "triton" else None

    def observe(self, model: str, seconds: float, code: int, version: int | None) -> None:
        self.duration.labels(model=model).observe(seconds)
        self.requests.labels(model=model, code=str(code)).inc()
        if self.vllm:
            self.vllm_latency.labels(model_name=model).observe(seconds)
            if code == 200:
                self.vllm_success.labels(model_name=model, finished_reason="length").inc()
        if self.triton is not None and version is not None:
            self.triton.observe(model, version, ok=code == 200)

    def exposition(self) -> bytes:
        text = prometheus_client.generate_latest(self.registry)
        return text + (self.triton.exposition() if self.triton is not None else b"")


_TRITON_COUNTERS = {
    "nv_inference_request_success": "Number of successful inference requests, all batch sizes",
    "nv_inference_request_failure": "Number of failed inference requests, all batch sizes",
    "nv_inference_count": "Number of inferences performed (does not include cached requests)",
}


class _TritonCounters:
    """Triton's per-model-version counters, exposed under Triton's names: prometheus_client
    would add ``_total`` to a counter, which Triton's own exposition does not have."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str, int], float] = {}

    def observe(self, model: str, version: int, *, ok: bool) -> None:
        for name in _TRITON_COUNTERS:
            self._values.setdefault((name, model, version), 0.0)
        outcome = "nv_inference_request_success" if ok else "nv_inference_request_failure"
        self._values[(outcome, model, version)] += 1
        if ok:
            self._values[("nv_inference_count", model, version)] += 1  # batch size 1

    def exposition(self) -> bytes:
        lines = []
        for name, help_text in _TRITON_COUNTERS.items():
            samples = sorted((k, v) for k, v in self._values.items() if k[0] == name)
            if not samples:
                continue
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            reason = ',reason="BACKEND"' if name == "nv_inference_request_failure" else ""
            for (_, model, version), value in samples:
                labels = f'model="{_escape(model)}",version="{version}"{reason}'
                lines.append(f"{name}{{{labels}}} {value}")
        return "".join(f"{line}\n" for line in lines).encode()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Simulator:
    """State of one simulated server: identity, current behaviour, metrics, random source."""

    def __init__(
        self,
        identity: Identity,
        initial: behaviour.Behaviour | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.identity = identity
        self.behaviour = initial or behaviour.Behaviour()
        self.metrics = _Metrics(identity)
        self.model = model_control.ModelState(
            identity.model,
            versions=identity.versions,
            default=identity.start_version,
            loaded_at_start=identity.start_loaded,
            startup_seconds=identity.load_seconds,
        )
        self._rng = random.Random(seed)  # simulated latency, not cryptography
        self.in_flight = 0
        self._gate: tuple[int, asyncio.Semaphore] | None = None

    @property
    def ready(self) -> bool:
        """Whether a version of the simulated model is loaded and has finished loading."""
        return self.model.ready()

    def application(self) -> aiohttp.web.Application:
        """The aiohttp application serving this simulator."""
        runtime = runtimes.RUNTIMES[self.identity.runtime]
        app = aiohttp.web.Application()
        app.router.add_get(runtime.health_path, self._health)
        if runtime.ready_path != "/v1/models":
            app.router.add_get(runtime.ready_path, self._ready)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get(runtime.metrics_path, self._metrics)
        app.router.add_get("/admin/behaviour", self._get_behaviour)
        app.router.add_put("/admin/behaviour", self._put_behaviour)
        if self.identity.runtime == "triton":
            model_control.add_routes(app, self.model, lambda: self.behaviour)
        return app

    # -- probes and model list ------------------------------------------------------------------

    async def _health(self, _: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(text="ok")

    def _not_ready(self) -> aiohttp.web.Response:
        if self.identity.runtime == "triton":  # Triton answers 400 while not ready
            return aiohttp.web.Response(status=400)
        return aiohttp.web.json_response(
            _error("model is loading", "ServiceUnavailable"), status=503
        )

    async def _ready(self, _: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(text="ready") if self.ready else self._not_ready()

    async def _models(self, _: aiohttp.web.Request) -> aiohttp.web.Response:
        if not self.ready:  # vLLM's readiness probe is this path
            return self._not_ready()
        entry = {
            "id": self.identity.model,
            "object": "model",
            "created": int(time.time()),
            "owned_by": f"kubeinfer-simulator/{self.identity.runtime}",
        }
        return aiohttp.web.json_response({"object": "list", "data": [entry]})

    # -- completions ----------------------------------------------------------------------------

    async def _completions(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        started = time.monotonic()
        self.in_flight += 1
        self._running_gauge()
        version = self.model.loaded  # the version that answers, even if a reload swaps meanwhile
        try:
            status, body = await self._complete(request)
        finally:
            self.in_flight -= 1
            self._running_gauge()
        self.metrics.observe(self.identity.model, time.monotonic() - started, status, version)
        return aiohttp.web.json_response(body, status=status)

    def _running_gauge(self) -> None:
        if self.metrics.vllm:
            self.metrics.vllm_running.labels(model_name=self.identity.model).set(self.in_flight)

    async def _complete(self, request: aiohttp.web.Request) -> tuple[int, dict[str, Any]]:
        if self.model.loaded is None:  # Triton, explicit model control: nothing loaded
            message = (
                f"Request for unknown model: '{self.identity.model}' has no available versions"
            )
            return 400, _error(message, "invalid_request_error")
        if not self.ready:
            return 503, _error("model is loading", "ServiceUnavailable")
        try:
            payload = await request.json()
        except ValueError:
            payload = None
        parsed = self._parse(payload)
        if isinstance(parsed, str):
            status = 404 if parsed.startswith("The model") else 400
            return status, _error(
                parsed, "NotFoundError" if status == 404 else "invalid_request_error"
            )
        prompt, max_tokens = parsed
        # One consistent draw even if the admin or a reload changes it meanwhile.
        current = self.model.effective(self.behaviour)
        async with self._slot(current.concurrency):
            await asyncio.sleep(current.delay_seconds(self._rng))
        if current.fails(self._rng):
            return 500, _error("simulated server error", "InternalServerError")
        return 200, self._completion(prompt, max_tokens)

    def _slot(self, concurrency: int) -> contextlib.AbstractAsyncContextManager[Any]:
        """A place among ``concurrency`` requests worked on at once (none needed when 0)."""
        if concurrency == 0:
            return contextlib.nullcontext()
        if self._gate is None or self._gate[0] != concurrency:
            self._gate = (concurrency, asyncio.Semaphore(concurrency))
        return self._gate[1]

    def _parse(self, payload: Any) -> tuple[str, int] | str:
        """``(prompt, max_tokens)`` of a completion request, or what is wrong with it."""
        if not isinstance(payload, dict):
            return "request body must be a JSON object"
        model = payload.get("model", self.identity.model)
        if model != self.identity.model:
            return f"The model `{model}` does not exist."
        prompt = payload.get("prompt", "")
        max_tokens = payload.get("max_tokens", 16)
        if not isinstance(prompt, str) or not isinstance(max_tokens, int):
            return "prompt must be a string, max_tokens an integer"
        if not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            return f"max_tokens must be in [1, {MAX_TOKENS_LIMIT}]"
        return prompt, max_tokens

    def _completion(self, prompt: str, max_tokens: int) -> dict[str, Any]:
        words = prompt.split() or ["<empty>"]
        text = " ".join(words[i % len(words)] for i in range(max_tokens))
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.identity.model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}],
            "usage": {
                "prompt_tokens": len(prompt.split()),
                "completion_tokens": max_tokens,
                "total_tokens": len(prompt.split()) + max_tokens,
            },
        }

    # -- metrics and admin ----------------------------------------------------------------------

    async def _metrics(self, _: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(
            body=self.metrics.exposition(),
            headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST},
        )

    async def _get_behaviour(self, _: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response(self.behaviour.to_json())

    async def _put_behaviour(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        try:
            document = await request.json()
            if not isinstance(document, dict):
                raise behaviour.BehaviourError("the body must be a JSON object")
            updated = self.behaviour.updated(document)
            self.model.check_overlays(updated)  # every version's overlay must still hold
            self.behaviour = updated
        except (ValueError, behaviour.BehaviourError) as err:
            return aiohttp.web.json_response({"error": str(err)}, status=400)
        return aiohttp.web.json_response(self.behaviour.to_json())


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


async def start(simulator: Simulator, *, host: str, port: int) -> tuple[aiohttp.web.AppRunner, int]:
    """Serve ``simulator`` on ``host:port`` (port 0: any free one); return the runner and port."""
    require_loopback(host)
    runner = aiohttp.web.AppRunner(simulator.application(), access_log=None)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, host, port)
    await site.start()
    bound = int(runner.addresses[0][1])  # the port the kernel chose when ``port`` is 0
    return runner, bound
