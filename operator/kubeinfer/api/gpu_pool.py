"""The GPUPool kind: a set of GPU nodes, their inventory, sharing policy and health.

Owns the spec and status models only. Inventory arrives from the node agents; aggregation and
placement decisions live in ``planning``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubeinfer.api.base import ApiModel, Duration, LabelSelector, with_rules
from kubeinfer.api.conditions import Condition

KIND = "GPUPool"
PLURAL = "gpupools"

SharingMode = Literal["exclusive", "timeSlicing", "mps", "mig"]
Health = Literal["Healthy", "Degraded", "Unhealthy", "Lost"]
RiskLevel = Literal["None", "Low", "Medium", "High", "Critical"]


class Sharing(ApiModel):
    """How many pods may share one GPU, and by which mechanism."""

    model_config = with_rules(
        [
            {
                "rule": "self.mode in ['timeSlicing', 'mps'] || self.replicasPerGpu == 1",
                "message": "replicasPerGpu above 1 needs sharing.mode timeSlicing or mps",
                "fieldPath": ".replicasPerGpu",
            },
            {
                "rule": "self.mode != 'mig' || has(self.migProfile)",
                "message": "sharing.migProfile is required when sharing.mode is mig",
                "fieldPath": ".migProfile",
            },
        ]
    )

    mode: SharingMode = "exclusive"
    """exclusive: one pod per GPU; timeSlicing / mps: replicasPerGpu pods per GPU; mig: MIG slices."""
    replicas_per_gpu: int = Field(default=1, ge=1, le=48)
    """Pods that may share one GPU (timeSlicing and mps)."""
    mig_profile: str | None = Field(default=None, pattern=r"^[0-9]+g\.[0-9]+gb$")
    """MIG profile each slice gets (e.g. 1g.10gb) when mode is mig."""


class HealthPolicy(ApiModel):
    """When a GPU counts as unhealthy and is taken out of placement."""

    xid_critical: list[int] = Field(
        default_factory=lambda: [48, 62, 64, 74, 79, 92, 94, 95, 119, 120], max_length=64
    )
    """XID codes that mark a GPU unhealthy (double-bit ECC, fell off the bus, NVLink, GSP)."""
    max_temperature_c: int = Field(default=90, ge=40, le=120)
    """Temperature at or above which a GPU counts as degraded."""
    max_retired_pages: int = Field(default=60, ge=0)
    """Retired pages (or remapped rows) beyond which a GPU is unhealthy."""
    inventory_max_age: Duration = "2m"
    """A node whose inventory is older than this is reported stale."""


class OomPrediction(ApiModel):
    """GPU-memory out-of-memory risk prediction from sampled memory use."""

    enabled: bool = True
    """Whether the node agents sample memory and the operator predicts exhaustion."""
    threshold: float = Field(default=0.9, gt=0, le=1)
    """Fraction of the workload's memory budget at which it counts as exhausted."""
    window: Duration = "10m"
    """Length of the sample window the trend is fitted over."""
    sample_interval: Duration = "10s"
    """How often the node agents sample GPU memory."""


class GPUPoolSpec(ApiModel):
    """Desired state of a GPUPool."""

    node_selector: LabelSelector = Field(default_factory=LabelSelector)
    """Selects the nodes of the pool; empty selects every node with GPUs."""
    sharing: Sharing = Field(default_factory=Sharing)
    """GPU sharing policy."""
    health_policy: HealthPolicy = Field(default_factory=HealthPolicy)
    """Health rules."""
    oom_prediction: OomPrediction = Field(default_factory=OomPrediction)
    """Out-of-memory prediction."""


class GpuStatus(ApiModel):
    """One GPU as the pool sees it."""

    index: int
    """NVML device index on its node."""
    uuid: str = ""
    """GPU UUID."""
    model: str = ""
    """Product name."""
    memory_mib: int = 0
    """Total memory in MiB."""
    memory_used_mib: float | None = None
    """Memory in use at the node agent's latest sample, in MiB."""
    mig: bool | None = None
    """MIG mode (empty when the GPU cannot do MIG)."""
    numa_node: int | None = None
    """NUMA node the GPU hangs off."""
    pci_bus_id: str = ""
    """PCI bus id."""
    nvlink_peers: list[int] = Field(default_factory=list)
    """Indices of GPUs reachable over NVLink."""
    health: Health = "Healthy"
    """Health verdict."""
    health_reason: str = ""
    """Why it is not healthy."""
    allocated_to: list[str] = Field(default_factory=list)
    """namespace/name of the InferenceServices holding (ResourceClaim) or placed on the GPU."""
    schedulable: bool = True
    """Whether placement may choose it (healthy, present, not in MIG mode)."""
    oom_risk: RiskLevel = "None"
    """Predicted out-of-memory risk."""
    seconds_to_exhaustion: float | None = None
    """Predicted seconds until the memory budget is exhausted."""


class NodeStatus(ApiModel):
    """One node of the pool."""

    name: str
    """Node name."""
    gpus: list[GpuStatus] = Field(default_factory=list)
    """GPUs of the node."""
    inventory_time: str = ""
    """When the node agent last published (RFC 3339)."""
    inventory_problem: str = ""
    """Why the node's inventory is not used (missing, stale, malformed); empty when it is."""
    allocated_unattributed: int = 0
    """GPUs bound pods hold through the device plugin (count only: the plugin picks them)."""


class GPUPoolStatus(ApiModel):
    """Observed state of a GPUPool."""

    observed_generation: int = 0
    """The metadata.generation the status describes."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready and the aspect conditions."""
    nodes: list[NodeStatus] = Field(default_factory=list)
    """Per-node inventory."""
    node_count: int = 0
    """Nodes in the pool."""
    capacity: int = 0
    """Schedulable GPU slots (GPUs times replicasPerGpu, healthy only)."""
    allocated: int = 0
    """Slots allocated to InferenceService replicas."""
    free: int = 0
    """Slots free."""
    fragmentation: float = 0
    """1 - (free GPUs that can still join a full-speed set) / (free GPUs); see docs/gpu.md."""
    oom_at_risk: int = 0
    """GPUs whose predicted memory exhaustion is High or Critical."""
