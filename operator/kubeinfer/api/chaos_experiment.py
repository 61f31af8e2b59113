"""The ChaosExperiment kind: faults injected into inference workloads with safety rails.

Owns the spec and status models only. Target selection, safety checks and the steady-state
verdict live in ``planning``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubeinfer.api.base import ApiModel, Duration, LabelSelector, Percent, Quantity, with_rules
from kubeinfer.api.conditions import Condition

KIND = "ChaosExperiment"
PLURAL = "chaosexperiments"

Action = Literal[
    "podKill",
    "networkPartition",
    "networkDelay",
    "gpuNodeFailure",
    "cpuStress",
    "memoryStress",
    "logFlood",
]
Mode = Literal["one", "all", "fixed", "percent"]
Phase = Literal["Pending", "Running", "Completed", "Aborted", "Failed", "Scheduled"]
Verdict = Literal["Pending", "Passed", "Failed", "Inconclusive"]


class Target(ApiModel):
    """The pods a fault applies to."""

    model_config = with_rules(
        [
            {
                "rule": "has(self.inferenceService) != has(self.selector)",
                "message": "set exactly one of target.inferenceService and target.selector",
            },
        ]
    )

    inference_service: str | None = Field(default=None, max_length=253)
    """Name of the InferenceService whose pods are targets."""
    selector: LabelSelector | None = None
    """Label selector of the target pods."""
    namespace: str | None = Field(default=None, max_length=63)
    """Namespace of the targets; defaults to the experiment's."""


class PodKill(ApiModel):
    """Delete target pods."""

    grace_period_seconds: int = Field(default=0, ge=0, le=3600)
    """Grace period given to each pod."""


class NetworkPartition(ApiModel):
    """Cut targets off from traffic with a NetworkPolicy."""

    direction: Literal["ingress", "egress", "both"] = "both"
    """Which traffic is cut."""


class NetworkDelay(ApiModel):
    """Add latency to targets' traffic."""

    latency: Duration = "100ms"
    """Added one-way latency."""
    jitter: Duration = "0ms"
    """Random variation around latency."""


class GpuNodeFailure(ApiModel):
    """Take a GPU node out: cordon it and taint it NoExecute."""

    node: str | None = Field(default=None, max_length=253)
    """Node to fail; defaults to the node of a chosen target pod."""


class Stress(ApiModel):
    """Burn CPU or memory beside the targets."""

    workers: int = Field(default=1, ge=1, le=64)
    """Stress workers."""
    load_percent: int = Field(default=80, ge=1, le=100)
    """CPU load per worker (cpuStress)."""
    size: Quantity = "256Mi"
    """Memory to allocate (memoryStress)."""


class LogFlood(ApiModel):
    """Write log lines fast, to test log policies and disk pressure."""

    lines_per_second: int = Field(default=10000, ge=1, le=10_000_000)
    """Lines written per second."""
    line_bytes: int = Field(default=256, ge=16, le=65536)
    """Bytes per line."""
    level: Literal["DEBUG", "INFO", "WARN", "ERROR"] = "INFO"
    """Level the lines carry."""


class Probe(ApiModel):
    """A steady-state probe."""

    model_config = with_rules(
        [
            {
                "rule": "[has(self.prometheus), has(self.http), has(self.condition)]"
                ".filter(x, x).size() == 1",
                "message": "a probe sets exactly one of prometheus, http and condition",
            },
        ]
    )

    name: str = Field(min_length=1, max_length=63)
    """Probe name shown in status."""
    prometheus: str | None = Field(default=None, max_length=4096)
    """PromQL query whose value must stay in range."""
    http: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    """URL whose status code must be 2xx, probed during the experiment."""
    condition: str | None = Field(default=None, max_length=316)
    """Condition type on the target InferenceService that must stay True."""
    min: float | None = None
    """Lowest acceptable value (prometheus)."""
    max: float | None = None
    """Highest acceptable value (prometheus)."""
    interval: Duration = "10s"
    """How often the probe runs."""


class ChaosExperimentSpec(ApiModel):
    """Desired state of a ChaosExperiment."""

    model_config = with_rules(
        [
            {
                "rule": "self.mode in ['one', 'all'] || has(self.value)",
                "message": "value is required when mode is fixed or percent",
                "fieldPath": ".value",
            },
            {
                "rule": "self.mode != 'percent' || (self.value >= 1 && self.value <= 100)",
                "message": "value must be 1-100 when mode is percent",
                "fieldPath": ".value",
            },
            {
                "rule": "self.action != 'networkDelay' || has(self.networkDelay)",
                "message": "networkDelay parameters are required for action networkDelay",
                "fieldPath": ".networkDelay",
            },
        ]
    )

    target: Target
    """Pods the fault applies to."""
    action: Action
    """The fault."""
    mode: Mode = "one"
    """How many targets: one, all, a fixed count, or a percent."""
    value: int | None = Field(default=None, ge=1)
    """Count (fixed) or percent (percent)."""
    duration: Duration = "60s"
    """How long the fault is held before it is reverted."""
    schedule: str | None = Field(default=None, max_length=128)
    """Cron schedule for repeated runs; empty runs once."""
    dry_run: bool = False
    """Choose and report targets without injecting anything."""
    pod_kill: PodKill = Field(default_factory=PodKill)
    """Parameters of podKill."""
    network_partition: NetworkPartition = Field(default_factory=NetworkPartition)
    """Parameters of networkPartition."""
    network_delay: NetworkDelay | None = None
    """Parameters of networkDelay."""
    gpu_node_failure: GpuNodeFailure = Field(default_factory=GpuNodeFailure)
    """Parameters of gpuNodeFailure."""
    stress: Stress = Field(default_factory=Stress)
    """Parameters of cpuStress and memoryStress."""
    log_flood: LogFlood = Field(default_factory=LogFlood)
    """Parameters of logFlood."""
    steady_state: list[Probe] = Field(default_factory=list, max_length=16)
    """Probes that must hold before, during and after the fault."""
    abort_conditions: list[Probe] = Field(default_factory=list, max_length=16)
    """Probes that end the experiment at once when they fail."""
    max_unavailable_percent: Percent = 50
    """Safety rail: never take down more than this share of a workload's ready pods."""


class ProbeResult(ApiModel):
    """The latest result of one probe."""

    name: str
    """Probe name."""
    value: float | None = None
    """Measured value."""
    passed: bool
    """Whether it held."""
    message: str = ""
    """Details."""
    time: str = ""
    """When it ran (RFC 3339)."""


class ChaosExperimentStatus(ApiModel):
    """Observed state of a ChaosExperiment."""

    observed_generation: int = 0
    """The metadata.generation the status describes."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready and the aspect conditions."""
    phase: Phase = "Pending"
    """Where the experiment stands."""
    targets: list[str] = Field(default_factory=list)
    """Pods (namespace/name) chosen as targets."""
    start_time: str | None = None
    """When the fault was injected."""
    end_time: str | None = None
    """When the fault was reverted."""
    probe_results: list[ProbeResult] = Field(default_factory=list)
    """Latest probe results."""
    verdict: Verdict = "Pending"
    """Whether the steady state held."""
