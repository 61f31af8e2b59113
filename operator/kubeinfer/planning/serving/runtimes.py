"""Model runtimes: how vLLM, Triton and a generic server are started, probed and configured.

Each runtime maps the API's model, batching and GPU settings to a container: image, args,
environment, ports, probe paths and lifecycle hooks. Model weights are reached the way each
runtime does natively:

- ``pvc://claim/path`` mounts the PersistentVolumeClaim read-only at ``/models``;
- ``oci://image`` mounts the image as a volume (Kubernetes image volumes);
- ``hf://``, ``s3://``, ``gs://`` are handed to the runtime, which fetches them itself
  (vLLM from the Hub or through its object-storage loader, Triton from its S3/GCS repository);
- ``http(s)://`` and ``file://`` go to the generic runtime's environment contract.

Which runtime accepts which scheme is a CEL rule on the API, so a mismatch is refused at apply
time. Logging: every runtime logs to stdout; with ``logging.mode: file`` the server also gets
``KUBEINFER_LOG_DIR`` (the generic runtime's contract; a vLLM image points its logging
configuration there) and Triton logs to ``--log-file``. Batching: vLLM batches continuously and takes ``--max-num-seqs``; Triton takes dynamic
batching through its model-control API (a ``load`` with a configuration override, run by the
container's postStart hook); the generic runtime reads ``KUBEINFER_MAX_BATCH_*``.

In-place reload (:mod:`kubeinfer.planning.rollout.in_place`): a runtime with :class:`ModelControl` can be
told to serve another version while running. Triton's is the same ``load`` with the version named
in the override's ``version_policy``, then its per-version readiness path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeinfer.api import inference_service as api

MODELS_DIR = "/models"

SCHEMES = api.RUNTIME_SCHEMES
"""URI schemes each runtime can load from (the API's CEL rule is generated from the same table)."""


@dataclass(frozen=True)
class ModelSource:
    """Where the runtime finds the weights, and the volumes that put them there."""

    location: str
    """What to hand the runtime: a Hub id, an object-store URI or a path in the container."""
    volumes: tuple[dict[str, Any], ...] = ()
    mounts: tuple[dict[str, Any], ...] = ()


def model_source(uri: str) -> ModelSource:
    """Resolve a model URI into what the container sees."""
    scheme, _, rest = uri.partition("://")
    if scheme == "hf":
        return ModelSource(location=rest)
    if scheme == "pvc":
        claim, _, path = rest.partition("/")
        return ModelSource(
            location=f"{MODELS_DIR}/{path}".rstrip("/"),
            volumes=(
                {"name": "model", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},
            ),
            mounts=({"name": "model", "mountPath": MODELS_DIR, "readOnly": True},),
        )
    if scheme == "oci":
        return ModelSource(
            location=MODELS_DIR,
            volumes=(
                {"name": "model", "image": {"reference": rest, "pullPolicy": "IfNotPresent"}},
            ),
            mounts=({"name": "model", "mountPath": MODELS_DIR, "readOnly": True},),
        )
    if scheme == "file":
        return ModelSource(location=rest if rest.startswith("/") else f"/{rest}")
    return ModelSource(location=uri)


@dataclass(frozen=True)
class Launch:
    """What a runtime needs to start one replica."""

    model: api.Model
    gpus: int
    max_batch_size: int
    max_batch_latency_ms: int
    source: ModelSource = field(default_factory=lambda: ModelSource(location=""))
    log_dir: str | None = None
    """Directory the server writes its log files into (logging.mode file), else stdout only."""


@dataclass(frozen=True)
class ModelControl:
    """How a running server is told to serve another version of its model (in-place reload).

    ``load`` gives the path and JSON body of the request that loads a version (the server
    answers once it serves it, keeping the old one until then); ``ready`` the path that answers
    200 only while exactly that version is ready.
    """

    load: Callable[[Launch, str], tuple[str, dict[str, Any]]]
    ready: Callable[[str, str], str]


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
    post_start: Callable[[Launch], list[str] | None] = lambda launch: None
    model_control: ModelControl | None = None
    """Set for a runtime that reloads a model version without restarting (Triton)."""


def _common_env(launch: Launch) -> dict[str, str]:
    env = {
        "KUBEINFER_MODEL_NAME": launch.model.name,
        "KUBEINFER_MODEL_VERSION": launch.model.version,
        "KUBEINFER_MODEL_URI": launch.model.uri,
        "KUBEINFER_MODEL_LOCATION": launch.source.location,
        "KUBEINFER_MAX_BATCH_SIZE": str(launch.max_batch_size),
        "KUBEINFER_MAX_BATCH_LATENCY_MS": str(launch.max_batch_latency_ms),
    }
    if launch.log_dir is not None:
        env["KUBEINFER_LOG_DIR"] = launch.log_dir
    return env


def _vllm_args(launch: Launch) -> list[str]:
    args = [
        "--model",
        launch.source.location,
        "--served-model-name",
        launch.model.name,
        "--port",
        "8000",
        "--tensor-parallel-size",
        str(max(launch.gpus, 1)),
        "--max-num-seqs",
        str(launch.max_batch_size),
    ]
    if launch.model.uri.startswith(("s3://", "gs://")):
        args += ["--load-format", "runai_streamer"]
    return args


def _triton_args(launch: Launch) -> list[str]:
    args = [
        "tritonserver",
        f"--model-repository={launch.source.location}",
        "--model-control-mode=explicit",
        "--http-port=8000",
        "--metrics-port=8002",
        "--strict-readiness=true",
    ]
    if launch.log_dir is not None:  # Triton then logs to the file instead of the console
        args.append(f"--log-file={launch.log_dir}/triton.log")
    return args


def _triton_config(launch: Launch, version: str | None = None) -> dict[str, Any]:
    """The model configuration a load overrides: batching, and the one version to serve."""
    config: dict[str, Any] = {
        "max_batch_size": launch.max_batch_size,
        "dynamic_batching": {"max_queue_delay_microseconds": launch.max_batch_latency_ms * 1000},
    }
    if version is not None:
        config["version_policy"] = {"specific": {"versions": [int(version)]}}
    return config


def _triton_load_body(launch: Launch, version: str | None = None) -> dict[str, Any]:
    config = json.dumps(_triton_config(launch, version), sort_keys=True)
    return {"parameters": {"config": config}}


def _triton_load_path(model: str) -> str:
    return f"/v2/repository/models/{model}/load"


def _triton_load(launch: Launch) -> list[str]:
    """postStart: load the model with the batching configuration once the server listens.

    A numeric ``model.version`` names the repository's version directory Triton serves; any
    other version string leaves Triton's default policy (the latest directory)."""
    version = launch.model.version if launch.model.version.isdigit() else None
    body = json.dumps(_triton_load_body(launch, version), sort_keys=True)
    url = f"http://127.0.0.1:8000{_triton_load_path(launch.model.name)}"
    script = (
        "for i in $(seq 1 600); do "
        f"curl -sf -X POST -H 'Content-Type: application/json' -d '{body}' {url} && exit 0; "
        "sleep 1; done; exit 1"
    )
    return ["sh", "-c", script]


def _no_args(launch: Launch) -> list[str]:
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
        env=_common_env,
        post_start=_triton_load,
        model_control=ModelControl(
            load=lambda launch, version: (
                _triton_load_path(launch.model.name),
                _triton_load_body(launch, version),
            ),
            ready=lambda model, version: f"/v2/models/{model}/versions/{version}/ready",
        ),
    ),
    "generic": Runtime(
        name="generic",
        image="ghcr.io/kubeinfer/model-server:0.1.0",
        port=8000,
        metrics_port=8000,
        metrics_path="/metrics",
        health_path="/healthz",
        ready_path="/readyz",
        args=_no_args,
        env=_common_env,
    ),
}
