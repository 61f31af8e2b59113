"""The inference-server simulator and its load generator, on loopback, without a cluster.

Covers: each runtime's health and readiness paths (503 while the model loads); the OpenAI-style
completion and its errors (unknown model, bad arguments); the admin endpoint changing latency and
error rate at run time, seen in the measured histogram and the status-coded counter; vLLM's metric
names only for vLLM; Triton's counters under Triton's names, labelled by the version that
answered; loopback-only addresses for servers and load; the load generator's bounds;
a fleet serving one simulator per pod on distinct 127.0.0.x and passing behaviour to all.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator

import aiohttp
import pytest

from e2e.harness import metrics_text
from e2e.simulator import behaviour, fleet, load, server
from kubeinfer.planning.serving import runtimes


@pytest.fixture
async def simulator() -> AsyncIterator[tuple[server.Simulator, str]]:
    sim = server.Simulator(server.Identity("vllm", "chat"), behaviour.Behaviour(latency_ms=5))
    runner, port = await server.start(sim, host="127.0.0.1", port=0)
    try:
        yield sim, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("runtime", sorted(runtimes.RUNTIMES), ids=lambda r: f"{r} probes")
async def test_each_runtime_answers_its_probe_paths_and_is_unready_while_loading(
    runtime: str,
) -> None:
    spec = runtimes.RUNTIMES[runtime]
    unready = 400 if runtime == "triton" else 503  # Triton answers 400 while not ready
    for load_seconds, ready_status in ((0.0, 200), (3600.0, unready)):
        sim = server.Simulator(server.Identity(runtime, "m", load_seconds=load_seconds))
        runner, port = await server.start(sim, host="127.0.0.1", port=0)
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
                async with http.get(spec.health_path) as response:
                    assert response.status == 200
                async with http.get(spec.ready_path) as response:
                    assert response.status == ready_status
        finally:
            await runner.cleanup()


async def test_a_completion_is_openai_shaped_and_errors_say_what_is_wrong(
    simulator: tuple[server.Simulator, str],
) -> None:
    _, url = simulator
    async with aiohttp.ClientSession(url) as http:
        body = {"model": "chat", "prompt": "a b", "max_tokens": 3}
        async with http.post("/v1/completions", json=body) as response:
            answer = await response.json()
        assert response.status == 200
        assert answer["object"] == "text_completion"
        assert answer["choices"][0]["text"] == "a b a"
        assert answer["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
        async with http.post("/v1/completions", json={**body, "model": "other"}) as response:
            assert response.status == 404
            assert "other" in (await response.json())["error"]["message"]
        async with http.post("/v1/completions", json={**body, "max_tokens": 0}) as response:
            assert response.status == 400
        async with http.get("/v1/models") as response:
            assert [m["id"] for m in (await response.json())["data"]] == ["chat"]


async def test_the_admin_endpoint_changes_latency_and_errors_at_run_time(
    simulator: tuple[server.Simulator, str],
) -> None:
    _, url = simulator
    body = {"model": "chat", "prompt": "x", "max_tokens": 1}
    async with aiohttp.ClientSession(url) as http:
        async with http.put("/admin/behaviour", json={"latencyMs": 120}) as response:
            assert (await response.json())["latencyMs"] == 120
        async with http.post("/v1/completions", json=body) as response:
            assert response.status == 200
        async with http.put("/admin/behaviour", json={"errorRate": 1, "latencyMs": 0}) as response:
            assert response.status == 200
        async with http.post("/v1/completions", json=body) as response:
            assert response.status == 500
        async with http.put("/admin/behaviour", json={"latency": 1}) as response:
            assert response.status == 400
        async with http.get("/metrics") as response:
            metrics = await response.text()
    # One request took >= 120 ms, so it is above the 100 ms bucket; the error is counted by code.
    name = "kubeinfer_request_duration_seconds_bucket"
    assert metrics_text.value(metrics, name, le="0.1", model="chat") == 1
    assert metrics_text.value(metrics, name, le="0.15", model="chat") == 2
    assert metrics_text.value(metrics, "kubeinfer_requests_total", code="500", model="chat") == 1
    assert metrics_text.value(metrics, "vllm:request_success_total", model_name="chat") == 1


async def test_vllm_metric_names_are_mirrored_only_for_vllm() -> None:
    sim = server.Simulator(server.Identity("generic", "m"))
    text = (await _metrics_text(sim)).decode()
    assert "kubeinfer_request_duration_seconds" in text
    assert "vllm:" not in text


async def test_triton_counts_requests_under_its_own_names_by_the_version_that_answered() -> None:
    sim = server.Simulator(
        server.Identity("triton", "m", versions=(1, 2), default_version=1),
        behaviour.Behaviour(latency_ms=0),
    )
    runner, port = await server.start(sim, host="127.0.0.1", port=0)
    body = {"model": "m", "prompt": "x", "max_tokens": 1}
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            async with http.post("/v1/completions", json=body) as response:
                assert response.status == 200
            load = {"parameters": {"config": '{"version_policy": {"specific": {"versions": [2]}}}'}}
            async with http.post("/v2/repository/models/m/load", json=load) as response:
                assert response.status == 200
            async with http.put("/admin/behaviour", json={"errorRate": 1}) as response:
                assert response.status == 200
            for _ in range(2):
                async with http.post("/v1/completions", json=body) as response:
                    assert response.status == 500
            async with http.get("/metrics") as response:
                text = await response.text()
    finally:
        await runner.cleanup()
    assert "# TYPE nv_inference_request_success counter" in text
    assert metrics_text.value(text, "nv_inference_request_success", model="m", version="1") == 1
    assert metrics_text.value(text, "nv_inference_count", model="m", version="1") == 1
    assert metrics_text.value(text, "nv_inference_request_success", model="m", version="2") == 0
    failures = metrics_text.value(text, "nv_inference_request_failure", model="m", version="2")
    assert failures == 2
    assert "nv_inference_request_success_total" not in text  # Triton's names have no _total
    assert metrics_text.value(text, "kubeinfer_requests_total", code="500", model="m") == 2
    assert "vllm:" not in text


async def _metrics_text(sim: server.Simulator) -> bytes:
    runner, port = await server.start(sim, host="127.0.0.1", port=0)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            return await response.read()
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("host", ["10.0.0.1", "0.0.0.0", "example.com"])
async def test_servers_and_load_refuse_addresses_that_are_not_loopback(host: str) -> None:
    with pytest.raises(server.AddressError):
        await server.start(server.Simulator(server.Identity("vllm", "m")), host=host, port=0)
    with pytest.raises(server.AddressError):
        load.check_target(f"http://{host}:8000")


@pytest.mark.parametrize(
    "limits",
    [
        {"rate": 0, "duration_s": 1, "max_requests": 1},
        {"rate": 10_000, "duration_s": 1, "max_requests": 1},
        {"rate": 1, "duration_s": 100_000, "max_requests": 1},
        {"rate": 1, "duration_s": 1, "max_requests": 10_000_000},
    ],
    ids=["no rate", "rate over the ceiling", "endless", "too many requests"],
)
def test_load_limits_have_hard_ceilings(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be in"):
        load.Limits(**limits)  # type: ignore[arg-type]


async def test_load_stops_at_its_request_bound_and_counts_answers(
    simulator: tuple[server.Simulator, str],
) -> None:
    _, url = simulator
    report = await load.run(
        lambda: [url], load.Limits(rate=100, duration_s=10, max_requests=30), model="chat"
    )
    assert report.sent == 30
    assert report.by_status == {200: 30}
    assert report.elapsed_s < 5


def test_a_fleet_serves_one_simulator_per_pod_and_passes_behaviour_to_all() -> None:
    with fleet.Fleet(server.Identity("triton", "m")) as simulators:
        simulators.sync(["pod-a", "pod-b"])
        first = simulators.addresses()
        assert len({a.split(":")[0] for a in first.values()}) == 2
        simulators.sync(["pod-b", "pod-c"])
        second = simulators.addresses()
        assert set(second) == {"pod-b", "pod-c"}
        assert second["pod-b"] == first["pod-b"]
        simulators.set_behaviour({"latencyMs": 42})
        simulators.sync(["pod-b", "pod-c", "pod-d"])
        for address in simulators.addresses().values():
            with urllib.request.urlopen(f"http://{address}/admin/behaviour", timeout=5) as r:
                assert json.loads(r.read())["latencyMs"] == 42
        future, stop = simulators.start_load(load.Limits(rate=50, duration_s=5, max_requests=15))
        report = future.result(timeout=10)
        stop()
        assert report.by_status == {200: 15}


async def test_a_concurrency_limit_makes_latency_grow_with_load(
    simulator: tuple[server.Simulator, str],
) -> None:
    _, url = simulator
    body = {"model": "chat", "prompt": "x", "max_tokens": 1}
    async with aiohttp.ClientSession(url) as http:
        async with http.put("/admin/behaviour", json={"latencyMs": 100, "concurrency": 1}) as r:
            assert (await r.json())["concurrency"] == 1
        async with http.put("/admin/behaviour", json={"concurrency": 1.5}) as r:
            assert r.status == 400

        async def one() -> int:
            async with http.post("/v1/completions", json=body) as response:
                return response.status

        assert await asyncio.gather(*(one() for _ in range(4))) == [200] * 4
        async with http.get("/metrics") as response:
            metrics = await response.text()
    # One slot, 100 ms each: the k-th answer cannot come before k x 100 ms, so at most k answers
    # are in the bucket just above it, and the durations add up to at least 0.1 + ... + 0.4 s.
    # A busy machine only makes answers later, so these bounds hold under load too; without the
    # limit all four would answer after about 100 ms.
    name = "kubeinfer_request_duration_seconds_bucket"
    assert metrics_text.value(metrics, name, le="0.15", model="chat") <= 1
    assert metrics_text.value(metrics, name, le="0.25", model="chat") <= 2
    assert metrics_text.value(metrics, name, le="0.3", model="chat") <= 3
    assert metrics_text.value(metrics, name, le="+Inf", model="chat") == 4
    assert (
        metrics_text.value(metrics, "kubeinfer_request_duration_seconds_sum", model="chat") >= 1.0
    )
