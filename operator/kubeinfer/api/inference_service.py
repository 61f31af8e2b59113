"""The InferenceService kind: model servers on GPUs, their traffic, rollout and autoscaling.

Owns the spec and status models only; decisions live in ``planning``. Cross-field rules that the
API server can check are attached as CEL rules so bad input is refused at apply time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubeinfer.api.base import (
    DNS_LABEL_PATTERN,
    ApiModel,
    Duration,
    Quantity,
    Toleration,
    with_rules,
)
from kubeinfer.api.conditions import Condition

KIND = "InferenceService"
PLURAL = "inferenceservices"

Runtime = Literal["vllm", "triton", "generic"]
ModelFormat = Literal["safetensors", "pytorch", "onnx", "tensorrt", "gguf", "custom"]
TopologyPolicy = Literal["nvlink-required", "nvlink-preferred", "same-numa", "any"]
Packing = Literal["binpack", "spread"]
Tier = Literal["gold", "silver", "bronze"]
Strategy = Literal["canary", "shadow", "blueGreen"]
GpuSurge = Literal["auto", "always", "never"]
Reload = Literal["restart", "inPlace"]
RolloutMode = Literal["", "Surge", "ZeroSpare", "InPlace"]
TrafficProvider = Literal["gateway-api", "istio", "none"]

RUNTIME_SCHEMES: dict[str, tuple[str, ...]] = {
    "vllm": ("hf", "s3", "gs", "pvc", "oci", "file"),
    "triton": ("s3", "gs", "pvc", "oci", "file"),
    "generic": ("hf", "s3", "gs", "pvc", "oci", "file", "http", "https"),
}
"""URI schemes each runtime loads from (see ``planning.serving.runtimes`` for how)."""


class Model(ApiModel):
    """The model to serve and the server that serves it."""

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
    """Model name, as the runtime and the OpenAI-style API know it."""
    version: str = Field(
        min_length=1, max_length=63, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
    )
    """Model version; changing it starts a rollout to the new version."""
    uri: str = Field(
        min_length=1, max_length=2048, pattern=r"^(s3|gs|hf|pvc|oci|https?|file)://.+$"
    )
    """Where the weights live: s3://, gs://, hf://, pvc://, oci://, http(s):// or file://."""
    format: ModelFormat = "safetensors"
    """Serialization format of the weights."""
    runtime: Runtime = "vllm"
    """Model server: vllm, triton, or generic (any HTTP server that honours the env contract)."""
    image: str | None = Field(default=None, max_length=512)
    """Server image; when empty the runtime's default image is used."""
    load_timeout: Duration = "10m"
    """How long a replica may take to load the model before its startup probe fails."""


class Resources(ApiModel):
    """Resources of one replica."""

    gpus: int = Field(default=1, ge=0, le=16)
    """GPUs per replica; 0 serves on CPU."""
    gpu_memory: Quantity | None = None
    """GPU memory one replica needs (e.g. 40Gi); used for sharing and OOM-risk budgets."""
    cpu: Quantity = "4"
    """CPU request (and limit) per replica."""
    memory: Quantity = "32Gi"
    """Memory request (and limit) per replica."""
    shared_memory: Quantity = "8Gi"
    """Size of the in-memory /dev/shm volume (NCCL and tensor-parallel workers need it)."""


class Placement(ApiModel):
    """Where replicas may run and how their GPUs are chosen."""

    gpu_pool: str | None = Field(default=None, max_length=253)
    """GPUPool to take GPUs from; required when resources.gpus > 0."""
    topology: TopologyPolicy = "nvlink-preferred"
    """GPU-set policy for multi-GPU replicas: nvlink-required, nvlink-preferred, same-numa or any."""
    packing: Packing = "binpack"
    """binpack fills nodes to keep whole nodes free; spread puts replicas on different nodes."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Extra node labels a replica's node must carry."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    """Tolerations for the model server pods (GPU nodes are usually tainted)."""


class Replicas(ApiModel):
    """Replica bounds; the autoscaler chooses the count inside them."""

    min: int = Field(default=1, ge=0, le=1000)
    """Lowest replica count the autoscaler may choose; the tier may raise it (gold keeps 2)."""
    max: int = Field(default=1, ge=1, le=1000)
    """Highest replica count the autoscaler may choose."""
    desired: int | None = Field(default=None, ge=0, le=1000)
    """Set by `kubectl scale` (scale subresource): a floor inside [min, max] to pre-warm capacity."""


class Sla(ApiModel):
    """Service level: the tier picks the scaling signal, priority and defaults."""

    tier: Tier = "silver"
    """gold scales on p95 latency, silver on requests/s per replica, bronze on CPU."""
    latency_p95_ms: int | None = Field(default=None, ge=1, le=600000)
    """p95 latency target in milliseconds; required for gold."""
    requests_per_second: float | None = Field(default=None, gt=0)
    """Requests per second per replica that silver scales at; defaults per tier."""


class AutoscalingOverrides(ApiModel):
    """Refinements of what the SLA tier chose."""

    target_value: float | None = Field(default=None, gt=0)
    """Replaces the tier's target for its metric (ms for gold, req/s for silver, % CPU for bronze)."""
    scale_up_stabilization: Duration | None = None
    """Replaces the tier's scale-up stabilisation window."""
    scale_down_stabilization: Duration | None = None
    """Replaces the tier's scale-down stabilisation window."""
    scale_up_percent: int | None = Field(default=None, ge=1, le=1000)
    """Largest scale-up step per minute, in percent of current replicas."""


class Autoscaling(ApiModel):
    """Which autoscaler runs the tier's policy."""

    engine: Literal["hpa", "keda"] = "hpa"
    """hpa renders an autoscaling/v2 HorizontalPodAutoscaler; keda renders a ScaledObject."""
    prometheus_address: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090", max_length=512
    )
    """Prometheus that KEDA's trigger queries (engine keda only)."""
    overrides: AutoscalingOverrides = Field(default_factory=AutoscalingOverrides)
    """Refinements of the tier's choices."""


class Batching(ApiModel):
    """Dynamic batching settings passed to the runtime."""

    max_batch_size: int | None = Field(default=None, ge=1, le=4096)
    """Largest batch the server forms; defaults per tier."""
    max_latency_ms: int | None = Field(default=None, ge=0, le=60000)
    """Longest a request waits for a batch to fill, in milliseconds; defaults per tier."""


class RolloutStep(ApiModel):
    """One step of a canary: a traffic weight held for a pause."""

    weight: int = Field(ge=0, le=100)
    """Percent of traffic the candidate receives during this step."""
    pause: Duration = "1m"
    """How long the step is held (and analysed) before the next."""


class ThresholdRange(ApiModel):
    """Bounds a metric value must stay within."""

    min: float | None = None
    """Lowest acceptable value."""
    max: float | None = None
    """Highest acceptable value."""


class AnalysisMetric(ApiModel):
    """One metric checked at every analysis interval."""

    model_config = with_rules(
        [
            {
                "rule": "has(self.template) != has(self.query)",
                "message": "set exactly one of template and query",
            },
        ]
    )

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
    """Name shown in status and Events."""
    template: Literal["success-rate", "latency-p95", "latency-p99"] | None = None
    """A built-in query comparing candidate with stable."""
    query: str | None = Field(default=None, max_length=4096)
    """A PromQL query; {{ version }}, {{ namespace }} and {{ service }} are substituted."""
    threshold_range: ThresholdRange = Field(default_factory=ThresholdRange)
    """Bounds the value must stay within."""


class Analysis(ApiModel):
    """Metric analysis that gates every rollout step."""

    interval: Duration = "30s"
    """How often metrics are evaluated."""
    failure_limit: int = Field(default=0, ge=0, le=100)
    """Failed evaluations tolerated before rollback (0, as in Argo Rollouts: the first fails)."""
    min_samples: int = Field(default=20, ge=0)
    """Requests a step must see before its metrics count."""
    insufficient_data_deadline: Duration = "10m"
    """How long a step may wait for min_samples before the rollout stops as inconclusive."""
    metrics: list[AnalysisMetric] = Field(default_factory=list, max_length=32)
    """Metrics checked at each interval."""


class Rollout(ApiModel):
    """How a new model version replaces the stable one."""

    strategy: Strategy = "canary"
    """canary moves weights step by step; shadow mirrors traffic; blueGreen switches at once."""
    steps: list[RolloutStep] = Field(
        default_factory=lambda: [
            RolloutStep(weight=10, pause="1m"),
            RolloutStep(weight=50, pause="1m"),
        ],
        max_length=32,
    )
    """Canary steps; the candidate gets 100% after the last step passes."""
    mirror_percent: int = Field(default=10, ge=1, le=100)
    """Percent of requests mirrored to the candidate (shadow)."""
    analysis: Analysis = Field(default_factory=Analysis)
    """Metric analysis gating every step."""
    scale_down_delay: Duration = "30s"
    """blueGreen: how long the previous version keeps running after the switch, so in-flight
    requests finish and setting the version back switches back at once; then it is deleted."""
    gpu_surge: GpuSurge = "auto"
    """Whether the candidate runs on free GPUs beside a full stable (surge) or takes stable's: auto
    surges when the pool's free GPUs hold the candidate's largest step beside stable and otherwise
    moves replicas one at a time from stable to the candidate (zero spare, canary only); always
    surges (candidate pods wait for free GPUs); never always moves replicas (canary only)."""
    reload: Reload = "restart"
    """How a new model.version reaches the pods. restart runs it in new pods (a Deployment per
    version). inPlace (Triton, canary) loads it into the running servers through the runtime's
    model-control API, pod by pod as the steps ask, and rolls back by loading stable again: no
    pod restarts, no extra GPU, the same analysis. In place, model.uri and model.image belong to
    the server: changing them restarts the pods through the Deployment's rolling update."""


class ParentReference(ApiModel):
    """A Gateway API parent (usually a Gateway) the HTTPRoute attaches to."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the Gateway."""
    namespace: str | None = Field(default=None, max_length=63)
    """Namespace of the Gateway; defaults to the InferenceService's."""
    section_name: str | None = Field(default=None, max_length=253)
    """Listener name on the Gateway."""


class Traffic(ApiModel):
    """How requests reach the model servers."""

    provider: TrafficProvider = "gateway-api"
    """gateway-api renders an HTTPRoute, istio a VirtualService, none only a Service."""
    parent_refs: list[ParentReference] = Field(default_factory=list, max_length=16)
    """Gateways the HTTPRoute attaches to (gateway-api)."""
    hostnames: list[str] = Field(default_factory=list, max_length=16)
    """Hostnames the route answers for."""
    assume_mirror_support: bool = False
    """Shadow mirrors through Gateways whose GatewayClass publishes no supportedFeatures (or is not found); a class listing features without the mirror one still holds it."""


class Logging(ApiModel):
    """Where the model server writes its logs, so a LogPolicy selecting the service reads them."""

    model_config = with_rules(
        [
            {
                "rule": "!(self.directory in ['/', '/dev/shm', '/models'])",
                "message": "logging.directory must not be /, /dev/shm or /models (mounted for "
                "other purposes)",
                "fieldPath": ".directory",
            },
        ]
    )

    mode: Literal["stdout", "file"] = "stdout"
    """stdout: container logs, read on each node by a LogPolicy's agent DaemonSet. file: the
    server also writes *.log files into directory, a volume shared with one collector sidecar
    per LogPolicy that selects the service."""
    directory: str = Field(
        default="/var/log/model-server", min_length=2, max_length=1024, pattern=r"^/[^:]*$"
    )
    """Absolute directory the server writes its *.log files into (file mode). The server finds it
    in KUBEINFER_LOG_DIR; Triton is started with --log-file=<directory>/triton.log."""
    size_limit: Quantity = "1Gi"
    """Size limit of the shared log volume (file mode); the kubelet evicts a pod that passes it."""


class InferenceServiceSpec(ApiModel):
    """Desired state of an InferenceService."""

    model_config = with_rules(
        [
            {
                "rule": "self.replicas.min <= self.replicas.max",
                "message": "replicas.min must not exceed replicas.max",
                "fieldPath": ".replicas.min",
            },
            {
                "rule": "self.sla.tier != 'gold' || has(self.sla.latencyP95Ms)",
                "message": "sla.latencyP95Ms is required for the gold tier (it scales on p95 latency)",
                "fieldPath": ".sla.latencyP95Ms",
            },
            {
                "rule": "self.resources.gpus == 0 || has(self.placement.gpuPool)",
                "message": "placement.gpuPool is required when resources.gpus > 0",
                "fieldPath": ".placement.gpuPool",
            },
            {
                "rule": "self.rollout.steps.all(s, s.weight < 100)",
                "message": "rollout.steps weights must be below 100 (promotion to 100 follows the last step)",
                "fieldPath": ".rollout.steps",
            },
            *[
                {
                    "rule": f"self.model.runtime != '{runtime}' || "
                    + " || ".join(f"self.model.uri.startsWith('{s}://')" for s in schemes),
                    "message": f"model.uri for runtime {runtime} must use one of: "
                    + ", ".join(f"{s}://" for s in schemes),
                    "fieldPath": ".model.uri",
                }
                for runtime, schemes in RUNTIME_SCHEMES.items()
            ],
            {
                "rule": "self.rollout.gpuSurge != 'never' || self.rollout.strategy == 'canary'",
                "message": "rollout.gpuSurge never (moving replicas one at a time) needs the canary "
                "strategy: shadow and blueGreen run the candidate beside a full stable",
                "fieldPath": ".rollout.gpuSurge",
            },
            {
                "rule": "self.rollout.reload != 'inPlace' || self.model.runtime == 'triton'",
                "message": "rollout.reload inPlace needs runtime triton (its model-control API "
                "loads a version into a running server); vllm and generic restart pods",
                "fieldPath": ".rollout.reload",
            },
            {
                "rule": "self.rollout.reload != 'inPlace' || self.rollout.strategy == 'canary'",
                "message": "rollout.reload inPlace needs the canary strategy: shadow and "
                "blueGreen run the candidate beside a full stable",
                "fieldPath": ".rollout.reload",
            },
            {
                "rule": "self.rollout.reload != 'inPlace' || self.model.version.matches('^[0-9]+$')",
                "message": "model.version must be a Triton version number (a directory of the "
                "model repository, e.g. 3) when rollout.reload is inPlace",
                "fieldPath": ".model.version",
            },
            {
                "rule": "self.traffic.provider != 'gateway-api' || size(self.traffic.parentRefs) > 0",
                "message": "traffic.parentRefs needs at least one Gateway when traffic.provider is gateway-api",
                "fieldPath": ".traffic.parentRefs",
            },
        ]
    )

    model: Model
    """The model and its server."""
    resources: Resources = Field(default_factory=Resources)
    """Resources of one replica."""
    placement: Placement = Field(default_factory=Placement)
    """GPU pool and topology policy."""
    replicas: Replicas = Field(default_factory=Replicas)
    """Replica bounds."""
    sla: Sla = Field(default_factory=Sla)
    """Service level tier."""
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    """Autoscaler engine and overrides."""
    batching: Batching = Field(default_factory=Batching)
    """Dynamic batching."""
    rollout: Rollout = Field(default_factory=Rollout)
    """Version rollout strategy."""
    traffic: Traffic = Field(default_factory=Traffic)
    """Traffic routing."""
    logging: Logging = Field(default_factory=Logging)
    """Where the model server logs (stdout, or files a LogPolicy's sidecar reads)."""


class VersionStatus(ApiModel):
    """One running model version."""

    version: str = ""
    """Model version."""
    uri: str = ""
    """Where this version's weights live (kept so stable can be rendered while a candidate rolls)."""
    image: str | None = None
    """Server image of this version, when the spec named one."""
    replicas: int = 0
    """Pods of this version."""
    ready_replicas: int = 0
    """Ready pods of this version."""


class TrafficStatus(ApiModel):
    """Current split of traffic."""

    stable_weight: int = 100
    """Percent to the stable version."""
    candidate_weight: int = 0
    """Percent to the candidate version."""
    mirror_percent: int = 0
    """Percent mirrored to the candidate."""


class Measurement(ApiModel):
    """One analysis measurement."""

    metric: str
    """Metric name."""
    value: float | None = None
    """Measured value; empty when there was no data."""
    verdict: Literal["Passed", "Failed", "Inconclusive", "Error"]
    """Outcome of the check."""
    message: str = ""
    """Why."""
    time: str = ""
    """When measured (RFC 3339)."""


class RolloutPlanStep(ApiModel):
    """What one rollout step will take."""

    weight: int = 0
    """Percent of traffic the candidate receives."""
    candidate_replicas: int = 0
    """Pods the candidate runs."""
    stable_replicas: int = 0
    """Pods stable runs beside them (fewer at each move of a zero-spare rollout)."""
    gpus: int = 0
    """GPUs those pods need in addition to stable's (0 when replicas move)."""


class RetiredVersion(ApiModel):
    """The version a blue-green switch replaced, kept running for rollout.scaleDownDelay."""

    version: str
    """Model version."""
    uri: str = ""
    """Where its weights live (kept so it can be rendered unchanged)."""
    image: str | None = None
    """Its server image, when the spec named one."""
    scale_down_at: str
    """When its Deployment is deleted (RFC 3339)."""
    placement: list[ReplicaPlacement] = Field(default_factory=list)
    """The GPU sets its pods are pinned to (status.placement follows the new stable): its
    replicas' sets, then the growth sets its claim template named."""


class RolloutStatus(ApiModel):
    """Progress of the current rollout."""

    phase: Literal["Idle", "Progressing", "Paused", "Promoted", "RolledBack", "Waiting"] = "Idle"
    """Where the rollout stands."""
    step: int = 0
    """Index of the current step."""
    measurements: list[Measurement] = Field(default_factory=list)
    """Latest measurement of each metric."""
    rolled_back_from: str | None = None
    """Version rolled back from, kept so the same version is not rolled again."""
    denied_versions: list[str] = Field(default_factory=list)
    """Versions rolled back and never rolled out again (oldest dropped past 16)."""
    evidence: str = ""
    """Which check failed with which values, for the last rollback."""
    reason: str = ""
    """Reason of the last analysis's verdict (repeated in Progressing until the next one)."""
    message: str = ""
    """Message of the last analysis's verdict."""
    note_status: Literal["True", "False", "Unknown", ""] = ""
    """Progressing status the last analysis decided."""
    step_started_at: str | None = None
    """When the current step began (RFC 3339)."""
    last_analysis_at: str | None = None
    """When metrics were last analysed (RFC 3339)."""
    waiting_since: str | None = None
    """Since when the step has waited for enough data (RFC 3339)."""
    failures: int = 0
    """Failed analyses in the current step."""
    mode: RolloutMode = ""
    """Surge (the candidate runs beside a full stable), ZeroSpare (replicas move one at a time) or
    InPlace (stable's servers load the candidate); chosen when the rollout starts, kept until
    stable is whole again after it."""
    total_replicas: int = 0
    """Pods of both versions together while replicas move (zero spare)."""
    retired: RetiredVersion | None = None
    """blueGreen: the previous version, still running until its scale-down time."""
    estimated_seconds: float | None = None
    """Time to promotion if every analysis passes (sum of the steps' pauses)."""
    plan: list[RolloutPlanStep] = Field(default_factory=list)
    """Traffic, candidate pods and GPUs of every step, shown before anything changes."""


class ReplicaPlacement(ApiModel):
    """Where one replica was placed and why."""

    replica: int
    """Replica ordinal."""
    node: str
    """Node chosen."""
    gpus: list[int] = Field(default_factory=list)
    """GPU indices on that node."""
    numa_nodes: list[int] = Field(default_factory=list)
    """NUMA nodes the GPUs hang off."""
    bottleneck_gbps: float = 0
    """Slowest link within the GPU set (GB/s)."""
    explanation: str = ""
    """Why this set: scores and the alternatives passed over."""


class GrowthPlacement(ApiModel):
    """GPU sets planned for the replicas an autoscaler may add, up to ``replicas.max``.

    The claim template names them after the current replicas' sets, so scaling within the
    bounds does not change the pod template. They are not held: another service may take them.
    """

    replicas_max: int = 0
    """The ``replicas.max`` they were planned for (a new bound plans them anew)."""
    placement: list[ReplicaPlacement] = Field(default_factory=list)
    """One set per replica beyond the current ones, in the order new pods take them."""


class InferenceServiceStatus(ApiModel):
    """Observed state of an InferenceService."""

    observed_generation: int = 0
    """The metadata.generation the status describes."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready and the aspect conditions."""
    url: str | None = None
    """In-cluster URL of the service."""
    replicas: int = 0
    """Pods across versions (the scale subresource reads this)."""
    ready_replicas: int = 0
    """Ready pods across versions."""
    selector: str = ""
    """Label selector of the pods, for the scale subresource."""
    stable: VersionStatus = Field(default_factory=VersionStatus)
    """The stable version."""
    candidate: VersionStatus | None = None
    """The version being rolled out."""
    traffic: TrafficStatus = Field(default_factory=TrafficStatus)
    """Current traffic split."""
    rollout: RolloutStatus = Field(default_factory=RolloutStatus)
    """Rollout progress and analysis."""
    placement: list[ReplicaPlacement] = Field(default_factory=list)
    """Per-replica placement."""
    growth: GrowthPlacement | None = None
    """GPU sets planned for replicas beyond the current ones (not held)."""
