"""Model runtimes: how vLLM, Triton and a generic server are started, probed and configured.

Each runtime maps the API's model, batching and GPU settings to a container: image, args,
environment, ports and probe paths. Adding a runtime is adding one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kubeinfer.api import inference_service as api


@dataclass(frozen=True)
class Launch:
    """What a runtime needs to start one replica."""

    model: api.Model
    gpus: int
    max_batch_size: int
    max_batch_latency_ms: int


@dataclass(frozen=True)
class Runtime:
    """How one model server runs."""

    name: str
    image: str
    port: int
    metrics_port: int
    metrics_path: str
    health_path: str
    ready_path: str
    args: Callable[[Launch], list[str]]
    env: Callable[[Launch], dict[str, str]]


def _common_env(launch: Launch) -> dict[str, str]:
    return {
        "KUBEINFER_MODEL_NAME": launch.model.name,
        "KUBEINFER_MODEL_VERSION": launch.model.version,
        "KUBEINFER_MODEL_URI": launch.model.uri,
        "KUBEINFER_MAX_BATCH_SIZE": str(launch.max_batch_size),
        "KUBEINFER_MAX_BATCH_LATENCY_MS": str(launch.max_batch_latency_ms),
    }


def _vllm_args(launch: Launch) -> list[str]:
    return [
        "--model",
        "/models/current",
        "--served-model-name",
        launch.model.name,
        "--port",
        "8000",
        "--tensor-parallel-size",
        str(max(launch.gpus, 1)),
        "--max-num-seqs",
        str(launch.max_batch_size),
    ]


def _triton_args(launch: Launch) -> list[str]:
    return [
        "tritonserver",
        "--model-repository=/models",
        "--model-control-mode=explicit",
        f"--load-model={launch.model.name}",
        "--http-port=8000",
        "--metrics-port=8002",
        "--strict-readiness=true",
    ]


def _triton_env(launch: Launch) -> dict[str, str]:
    # Triton reads dynamic batching from the model's config.pbtxt; the init container that
    # fetches the model writes these values into it.
    delay_us = launch.max_batch_latency_ms * 1000
    return {**_common_env(launch), "KUBEINFER_TRITON_MAX_QUEUE_DELAY_US": str(delay_us)}


def _generic_args(launch: Launch) -> list[str]:
    del launch
    return []


RUNTIMES: dict[str, Runtime] = {
    "vllm": Runtime(
        name="vllm",
        image="vllm/vllm-openai:v0.11.0",
        port=8000,
        metrics_port=8000,
        metrics_path="/metrics",
        health_path="/health",
        ready_path="/v1/models",
        args=_vllm_args,
        env=_common_env,
    ),
    "triton": Runtime(
        name="triton",
        image="nvcr.io/nvidia/tritonserver:25.09-py3",
        port=8000,
        metrics_port=8002,
        metrics_path="/metrics",
        health_path="/v2/health/live",
        ready_path="/v2/health/ready",
        args=_triton_args,
        env=_triton_env,
    ),
    "generic": Runtime(
        name="generic",
        image="ghcr.io/kubeinfer/model-server:0.1.0",
        port=8000,
        metrics_port=8000,
        metrics_path="/metrics",
        health_path="/healthz",
        ready_path="/readyz",
        args=_generic_args,
        env=_common_env,
    ),
}
