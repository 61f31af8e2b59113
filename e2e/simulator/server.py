"""The simulated model server: one aiohttp application per simulated pod.

Owns: the HTTP surface a runtime's pod offers — its health and readiness paths (taken from
``kubeinfer.planning.runtimes``, so probes and simulator agree), ``GET /v1/models``,
``POST /v1/completions`` (OpenAI-style), ``GET /metrics`` — and the admin endpoint
``GET|PUT /admin/behaviour`` that changes latency and error rate at run time.
Must not: bind anything but a loopback address (callers pass the address; ``serve`` checks it).

Metrics (one registry per application, so several simulators share a process):

- ``kubeinfer_request_duration_seconds`` histogram (label ``model``): measured wall time of each
  completion, including the injected latency. The adapter rules and KEDA's PromQL read it.
- ``kubeinfer_requests_total`` counter (labels ``model``, ``code``).
- for runtime ``vllm`` also vLLM's own names: ``vllm:e2e_request_latency_seconds``,
  ``vllm:request_success_total`` and ``vllm:num_requests_running`` (label ``model_name``).

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

from e2e.simulator import behaviour
from kubeinfer.planning import runtimes

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
    """What the simulated server serves: runtime (vllm, triton, generic) and model name."""

    runtime: str
    model: str
    load_seconds: float = 0.0
    """Readiness answers 503 for this long after start, as a model load would."""

    def __post_init__(self) -> None:
        if self.runtime not in runtimes.RUNTIMES:
            raise ValueError(
                f"unknown runtime {self.runtime!r}; known: {sorted(runtimes.RUNTIMES)}"
            )


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

    def observe(self, model: str, seconds: float, code: int) -> None:
        self.duration.labels(model=model).observe(seconds)
        self.requests.labels(model=model, code=str(code)).inc()
        if self.vllm:
            self.vllm_latency.labels(model_name=model).observe(seconds)
            if code == 200:
                self.vllm_success.labels(model_name=model, finished_reason="length").inc()


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
        self._rng = random.Random(seed)  # simulated latency, not cryptography
        self._started = time.monotonic()
        self.in_flight = 0
        self._gate: tuple[int, asyncio.Semaphore] | None = None

    @property
    def ready(self) -> bool:
        """Whether the simulated model has finished loading."""
        return time.monotonic() - self._started >= self.identity.load_seconds

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
        return app

    # -- probes and model list ------------------------------------------------------------------

    async def _health(self, _: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(text="ok")

    def _not_ready(self) -> aiohttp.web.Response:
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
        try:
            status, body = await self._complete(request)
        finally:
            self.in_flight -= 1
            self._running_gauge()
        self.metrics.observe(self.identity.model, time.monotonic() - started, status)
        return aiohttp.web.json_response(body, status=status)

    def _running_gauge(self) -> None:
        if self.metrics.vllm:
            self.metrics.vllm_running.labels(model_name=self.identity.model).set(self.in_flight)

    async def _complete(self, request: aiohttp.web.Request) -> tuple[int, dict[str, Any]]:
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
        current = self.behaviour  # one consistent draw even if the admin changes it meanwhile
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
        body = prometheus_client.generate_latest(self.metrics.registry)
        return aiohttp.web.Response(
            body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST}
        )

    async def _get_behaviour(self, _: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response(self.behaviour.to_json())

    async def _put_behaviour(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        try:
            document = await request.json()
            if not isinstance(document, dict):
                raise behaviour.BehaviourError("the body must be a JSON object")
            self.behaviour = self.behaviour.updated(document)
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
