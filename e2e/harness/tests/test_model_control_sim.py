"""Triton's model-control API on the simulator, on loopback, without a cluster.

Covers: a load whose configuration's version policy names a version swaps to it (200, empty
body), readiness per version and for any version, the repository index with states and reasons;
a load that takes time keeps the previous version answering until it is done; a version set to
fail loading answers 400 with Triton's message and leaves the previous version serving; loads
of models the simulator does not serve and malformed policies are refused; unload; an explicit
start with nothing loaded (completions 400, not ready) until the first load; per-version
behaviour switching the error rate when the loaded version changes, and bad admin documents
refused; the load log; a fleet passing per-version settings to simulators added later, serving
simulators on given pod IPs and a fixed port, and refusing a pod IP that is not loopback.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from e2e.simulator import behaviour, fleet, server

MODEL = "chat"
COMPLETION = {"model": MODEL, "prompt": "x", "max_tokens": 1}


def _load_body(versions: list[Any] | None = None, **config: Any) -> dict[str, Any]:
    """A load request as an operator sends it: the model configuration as a JSON string."""
    if versions is not None:
        config["version_policy"] = {"specific": {"versions": versions}}
    return {"parameters": {"config": json.dumps(config)}}


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    """Start Triton simulators of ``MODEL``; yields ``start(**identity) -> ClientSession``."""
    runners: list[aiohttp.web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(**identity: Any) -> aiohttp.ClientSession:
        sim = server.Simulator(
            server.Identity("triton", MODEL, **identity), behaviour.Behaviour(latency_ms=0)
        )
        runner, port = await server.start(sim, host="127.0.0.1", port=0)
        runners.append(runner)
        sessions.append(aiohttp.ClientSession(f"http://127.0.0.1:{port}"))
        return sessions[-1]

    try:
        yield start
    finally:
        for session in sessions:
            await session.close()
        for runner in runners:
            await runner.cleanup()


async def _status(http: aiohttp.ClientSession, method: str, path: str, **kw: Any) -> int:
    async with http.request(method, path, **kw) as response:
        return response.status


async def _json(http: aiohttp.ClientSession, method: str, path: str, **kw: Any) -> Any:
    async with http.request(method, path, **kw) as response:
        return await response.json()


async def test_a_load_with_a_version_policy_swaps_versions_as_triton_reports_them(
    serve: Callable[..., Any],
) -> None:
    http = await serve(versions=(1, 2, 3), default_version=1)
    assert await _json(http, "POST", "/v2/repository/index") == [
        {"name": MODEL, "version": "1", "state": "READY"}
    ]
    body = _load_body(["2"], max_batch_size=8)  # int64 versions may come as JSON strings
    async with http.post(f"/v2/repository/models/{MODEL}/load", json=body) as r:
        assert r.status == 200
        assert await r.read() == b""  # Triton answers a successful load with no body
    assert await _status(http, "GET", f"/v2/models/{MODEL}/versions/2/ready") == 200
    assert await _status(http, "GET", f"/v2/models/{MODEL}/ready") == 200
    async with http.get(f"/v2/models/{MODEL}/versions/1/ready") as response:
        assert response.status == 400
        assert await response.json() == {"error": "Model version not ready"}
    assert await _status(http, "GET", "/v2/models/other/ready") == 400
    assert await _status(http, "GET", f"/v2/models/{MODEL}/versions/x/ready") == 400
    assert await _json(http, "POST", "/v2/repository/index") == [
        {"name": MODEL, "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"},
        {"name": MODEL, "version": "2", "state": "READY"},
    ]
    assert await _json(http, "POST", "/v2/repository/index", json={"ready": True}) == [
        {"name": MODEL, "version": "2", "state": "READY"}
    ]
    # Without a version policy, the default version; the latest policy, the highest.
    assert await _status(http, "POST", f"/v2/repository/models/{MODEL}/load") == 200
    assert await _status(http, "GET", f"/v2/models/{MODEL}/versions/1/ready") == 200
    latest = {"parameters": {"config": json.dumps({"version_policy": {"latest": {}}})}}
    assert await _status(http, "POST", f"/v2/repository/models/{MODEL}/load", json=latest) == 200
    assert await _status(http, "GET", f"/v2/models/{MODEL}/versions/3/ready") == 200
    loads = await _json(http, "GET", "/admin/loads")
    assert [(e["version"], e["outcome"], e["via"]) for e in loads] == [
        (1, "Loaded", "startup"),
        (2, "Loaded", "api"),
        (1, "Loaded", "api"),
        (3, "Loaded", "api"),
    ]
    assert loads[1]["config"] == json.loads(body["parameters"]["config"])
    assert loads[2]["config"] is None


async def test_the_previous_version_serves_while_a_slow_load_runs_and_after_a_failed_one(
    serve: Callable[..., Any],
) -> None:
    http = await serve(versions=(1, 2, 3), default_version=1)
    slow = {"loadSeconds": 1.0}
    assert await _status(http, "PUT", "/admin/versions/2", json=slow) == 200
    broken = {"loadError": "Internal: unable to create TensorRT engine"}
    assert await _status(http, "PUT", "/admin/versions/3", json=broken) == 200

    loading = asyncio.create_task(
        _status(http, "POST", f"/v2/repository/models/{MODEL}/load", json=_load_body([2]))
    )
    await asyncio.sleep(0.3)
    assert not loading.done(), "a load answers once the version is loaded"
    assert await _status(http, "POST", "/v1/completions", json=COMPLETION) == 200
    assert await _status(http, "GET", f"/v2/models/{MODEL}/versions/1/ready") == 200
    index = await _json(http, "POST", "/v2/repository/index")
    assert {e["version"]: e["state"] for e in index} == {"1": "READY", "2": "LOADING"}
    assert await loading == 200
    assert await _status(http, "GET", f"/v2/models/{MODEL}/versions/2/ready") == 200

    async with http.post(f"/v2/repository/models/{MODEL}/load", json=_load_body([3])) as r:
        assert r.status == 400
        error = (await r.json())["error"]
    assert error == (
        f"load failed for model '{MODEL}': version 3 is at UNAVAILABLE state: "
        "Internal: unable to create TensorRT engine;"
    )
    assert await _status(http, "GET", f"/v2/models/{MODEL}/versions/2/ready") == 200
    assert await _status(http, "POST", "/v1/completions", json=COMPLETION) == 200
    index = await _json(http, "POST", "/v2/repository/index")
    assert index[-1] == {
        "name": MODEL,
        "version": "3",
        "state": "UNAVAILABLE",
        "reason": "Internal: unable to create TensorRT engine",
    }
    loads = await _json(http, "GET", "/admin/loads")
    assert [(e["version"], e["outcome"]) for e in loads] == [
        (1, "Loaded"),
        (2, "Loaded"),
        (3, "Failed"),
    ]
    assert loads[-1]["error"] == "Internal: unable to create TensorRT engine"


@pytest.mark.parametrize(
    ("path", "body", "saying"),
    [
        ("/v2/repository/models/other/load", None, "failed to load 'other'"),
        (f"/v2/repository/models/{MODEL}/load", _load_body([9]), "version 9 is at UNAVAILABLE"),
        (f"/v2/repository/models/{MODEL}/load", _load_body([1, 2]), "one version at a time"),
        (f"/v2/repository/models/{MODEL}/load", _load_body(["x"]), "must be an integer"),
        (
            f"/v2/repository/models/{MODEL}/load",
            {"parameters": {"config": "{not json"}},
            "failed to parse the model configuration",
        ),
        (
            f"/v2/repository/models/{MODEL}/load",
            {"parameters": {"config": json.dumps({"version_policy": {"all": {}}})}},
            "would load several",
        ),
    ],
    ids=[
        "a model the server does not have",
        "a version not in the repository",
        "several specific versions",
        "a version that is no number",
        "a configuration that is no JSON",
        "the all policy over several versions",
    ],
)
async def test_loads_the_simulator_cannot_do_are_refused_and_change_nothing(
    serve: Callable[..., Any], path: str, body: dict[str, Any] | None, saying: str
) -> None:
    http = await serve(versions=(1, 2), default_version=1)
    async with http.post(path, json=body) as response:
        assert response.status == 400
        assert saying in (await response.json())["error"]
    assert await _status(http, "GET", f"/v2/models/{MODEL}/versions/1/ready") == 200


async def test_an_explicit_start_serves_nothing_until_loaded_and_unload_stops_serving(
    serve: Callable[..., Any],
) -> None:
    http = await serve(versions=(1, 2), start_loaded=False)
    assert await _json(http, "POST", "/v2/repository/index") == [{"name": MODEL}]
    assert await _status(http, "GET", "/v2/health/ready") == 400
    assert await _status(http, "GET", f"/v2/models/{MODEL}/ready") == 400
    async with http.post("/v1/completions", json=COMPLETION) as response:
        assert response.status == 400
        assert "has no available versions" in (await response.json())["error"]["message"]
    assert await _json(http, "GET", "/admin/loads") == []

    assert await _status(http, "POST", f"/v2/repository/models/{MODEL}/load") == 200
    assert await _status(http, "GET", f"/v2/models/{MODEL}/versions/2/ready") == 200  # latest
    assert await _status(http, "GET", "/v2/health/ready") == 200
    assert await _status(http, "POST", "/v1/completions", json=COMPLETION) == 200

    assert await _status(http, "POST", f"/v2/repository/models/{MODEL}/unload") == 200
    assert await _status(http, "GET", f"/v2/models/{MODEL}/ready") == 400
    assert await _status(http, "POST", "/v1/completions", json=COMPLETION) == 400
    assert await _json(http, "POST", "/v2/repository/index") == [
        {"name": MODEL, "version": "2", "state": "UNAVAILABLE", "reason": "unloaded"}
    ]
    outcomes = [e["outcome"] for e in await _json(http, "GET", "/admin/loads")]
    assert outcomes == ["Loaded", "Unloaded"]


async def test_the_loaded_versions_behaviour_decides_the_error_rate(
    serve: Callable[..., Any],
) -> None:
    http = await serve(versions=(1, 2), default_version=1)
    document = {"behaviour": {"errorRate": 1}, "loadError": None, "loadSeconds": 0}
    assert await _json(http, "PUT", "/admin/versions/2", json=document) == {
        "behaviour": {"errorRate": 1},
        "loadError": None,
        "loadSeconds": 0.0,
    }
    assert await _status(http, "POST", "/v1/completions", json=COMPLETION) == 200
    assert (
        await _status(http, "POST", f"/v2/repository/models/{MODEL}/load", json=_load_body([2]))
        == 200
    )
    assert await _status(http, "POST", "/v1/completions", json=COMPLETION) == 500
    assert (
        await _status(http, "POST", f"/v2/repository/models/{MODEL}/load", json=_load_body([1]))
        == 200
    )
    assert await _status(http, "POST", "/v1/completions", json=COMPLETION) == 200
    assert (await _json(http, "GET", "/admin/versions"))["2"]["behaviour"] == {"errorRate": 1}
    for path, bad in [
        ("/admin/versions/2", {"behaviour": {"errorRate": 2}}),
        ("/admin/versions/2", {"loadSecond": 1}),
        ("/admin/versions/2", {"loadSeconds": -1}),
        ("/admin/versions/2", {"loadError": ""}),
        ("/admin/versions/7", {}),
    ]:
        assert await _status(http, "PUT", path, json=bad) == 400, bad
    # A general change that version 2's overlay would no longer hold on is refused.
    assert await _status(http, "PUT", "/admin/behaviour", json={"latencyMs": 20}) == 200
    jittery = {"behaviour": {"jitterMs": 10}}
    assert await _status(http, "PUT", "/admin/versions/1", json=jittery) == 200
    async with http.put("/admin/behaviour", json={"latencyMs": 5}) as response:
        assert response.status == 400
        assert "version 1" in (await response.json())["error"]


def _get(address: str, path: str) -> Any:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=5) as response:
        return json.loads(response.read())


def test_a_fleet_gives_per_version_settings_to_simulators_added_later_on_their_pod_ips() -> None:
    identity = server.Identity("triton", MODEL, versions=(1, 2), default_version=1)
    with fleet.Fleet(identity, port=18000) as simulators:
        simulators.sync(["a"], hosts={"a": "127.42.7.1"})
        simulators.set_version(2, {"behaviour": {"errorRate": 0.5}})
        simulators.sync(["a", "b"], hosts={"a": "127.42.7.1", "b": "127.42.7.2"})
        assert simulators.addresses() == {"a": "127.42.7.1:18000", "b": "127.42.7.2:18000"}
        for address in simulators.addresses().values():
            assert _get(address, "/admin/versions")["2"]["behaviour"] == {"errorRate": 0.5}
        assert simulators.loads() == {
            pod: [
                {"version": 1, "outcome": "Loaded", "via": "startup", "error": None, "config": None}
            ]
            for pod in ("a", "b")
        }
        with pytest.raises(server.AddressError):
            simulators.sync(["a", "b", "c"], hosts={"c": "10.244.0.5"})
        assert set(simulators.addresses()) == {"a", "b"}, "a refused sync changes nothing"
        with pytest.raises(fleet.FleetError):
            simulators.set_version(3, {})
