"""Triton is told which version directory to serve, whether at start or in place."""

from __future__ import annotations

import json
from typing import Any

from kubeinfer.api import inference_service as api
from kubeinfer.planning.serving import model_server, runtimes


def _spec(version: str) -> api.InferenceServiceSpec:
    return api.InferenceServiceSpec.model_validate(
        {
            "model": {
                "name": "chat",
                "version": version,
                "uri": "s3://models/repository",
                "runtime": "triton",
            },
            "resources": {"gpus": 0},
            "traffic": {"provider": "none"},
        }
    )


def _config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(body["parameters"]["config"])
    return config


def test_a_numeric_version_is_the_directory_triton_loads_at_start() -> None:
    launch = model_server.launch_of(_spec("3"))
    (script,) = [a for a in runtimes.RUNTIMES["triton"].post_start(launch) or [] if "curl" in a]
    body = json.loads(script.split("-d '")[1].split("'")[0])
    assert _config(body)["version_policy"] == {"specific": {"versions": [3]}}
    named = model_server.launch_of(_spec("v3"))
    (script,) = [a for a in runtimes.RUNTIMES["triton"].post_start(named) or [] if "curl" in a]
    assert "version_policy" not in script, "a name Triton cannot map keeps its default policy"


def test_an_in_place_load_keeps_the_batching_settings_and_names_the_version() -> None:
    control = runtimes.RUNTIMES["triton"].model_control
    assert control is not None
    launch = model_server.launch_of(_spec("3"))
    path, body = control.load(launch, "4")
    assert path == "/v2/repository/models/chat/load"
    config = _config(body)
    assert config["version_policy"] == {"specific": {"versions": [4]}}
    assert config["max_batch_size"] == launch.max_batch_size
    assert control.ready("chat", "4") == "/v2/models/chat/versions/4/ready"
    assert runtimes.RUNTIMES["vllm"].model_control is None
