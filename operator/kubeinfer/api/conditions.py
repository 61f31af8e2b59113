"""Status conditions: the condition model, condition types and reasons, each documented once.

Conditions follow the Kubernetes API conventions (``type``, ``status``, ``reason``,
``message``, ``observedGeneration``, ``lastTransitionTime``). ``Ready`` exists on every kind and
is derived from the aspect conditions by a fixed priority (see
:mod:`kubeinfer.planning.conditions`). Must not import any other layer.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from kubeinfer.api.base import ApiModel


class _Documented(StrEnum):
    """A string enum whose members carry a one-line description (``.doc``)."""

    doc: str

    def __new__(cls, value: str, doc: str = "") -> _Documented:
        member = str.__new__(cls, value)
        member._value_ = value
        member.doc = doc
        return member


class ConditionType(_Documented):
    """Condition types across the four kinds."""

    READY = "Ready", "The resource does what its spec asks; derived from the aspect conditions."
    PLACED = "Placed", "Every replica has a node and GPU set chosen by topology-aware placement."
    CAPACITY_AVAILABLE = "CapacityAvailable", "The GPU pool has enough free GPUs for the request."
    MODEL_LOADED = "ModelLoaded", "The model server pods loaded the model and report ready."
    TRAFFIC_READY = "TrafficReady", "The Service and route send traffic to ready model servers."
    METRICS_AVAILABLE = "MetricsAvailable", "The metrics the SLA tier scales on are being served."
    PROGRESSING = "Progressing", "A model version rollout is under way."
    ROLLED_BACK = (
        "RolledBack",
        "A candidate version failed analysis and traffic went back to stable.",
    )
    OOM_RISK = "OOMRisk", "GPU memory use is predicted to exhaust the workload's budget soon."
    DISCOVERED = "Discovered", "GPU nodes matching the pool reported their inventory."
    HEALTHY = "Healthy", "Every GPU in the pool is healthy."
    SAFE = "Safe", "The experiment's safety rails allow it to run."
    INJECTED = "Injected", "The fault was injected into the targets."
    STEADY_STATE = "SteadyState", "The steady-state probes held within their thresholds."
    CONFIG_VALID = "ConfigValid", "The rendered log agent configuration is valid."
    APPLIED = "Applied", "The log agents run the current configuration."
    DISK_PRESSURE = (
        "DiskPressure",
        "A log agent's node volume passed the policy's thresholds (True is the bad state).",
    )


class Reason(_Documented):
    """Reasons of condition states and Events: CamelCase, specific, stable (tools match on them).

    Every member is set by some code path, or listed in :data:`RESERVED_REASONS`
    (``tests/api/test_reasons.py`` fails otherwise).
    """

    # Generic
    AS_EXPECTED = "AsExpected", "Everything this condition covers is as the spec asks."
    RECONCILING = (
        "Reconciling",
        "The operator has not finished its first pass over this generation.",
    )
    INVALID_SPEC = "InvalidSpec", "The spec passed the schema but cannot be honoured as written."
    NOT_IMPLEMENTED = "NotImplemented", "This feature is not built yet in this operator version."
    APPLY_FAILED = "ApplyFailed", "The API server refused a child object; the message says why."
    # InferenceService
    POOL_NOT_FOUND = "PoolNotFound", "The referenced GPUPool does not exist."
    POOL_NOT_READY = "PoolNotReady", "The referenced GPUPool has no inventory yet."
    NO_NODE_FITS = "NoNodeFits", "No node in the pool can hold one replica's GPU request."
    INSUFFICIENT_GPUS = "InsufficientGPUs", "The pool lacks free GPUs for the minimum replicas."
    TOPOLOGY_UNSATISFIABLE = (
        "TopologyUnsatisfiable",
        "Free GPUs exist but none satisfy the topology policy (NVLink or NUMA).",
    )
    PLACEMENT_PENDING = (
        "PlacementPending",
        "Placement waits for GPU inventory from the node agents.",
    )
    UNKNOWN_RUNTIME = "UnknownRuntime", "The model runtime is not one kubeinfer can configure."
    DEPLOYMENT_PROGRESSING = "DeploymentProgressing", "Model server pods are starting or loading."
    DEPLOYMENT_FAILED = (
        "DeploymentFailed",
        "The model server Deployment exceeded its progress deadline.",
    )
    NO_READY_REPLICAS = "NoReadyReplicas", "No model server pod is ready to take traffic."
    ROUTE_NOT_ACCEPTED = "RouteNotAccepted", "The Gateway did not accept the HTTPRoute."
    TRAFFIC_DISABLED = (
        "TrafficDisabled",
        "traffic.provider is none: the Service alone serves traffic.",
    )
    METRICS_API_MISSING = (
        "MetricsAPIMissing",
        "No APIService serves the custom or external metrics API the autoscaler needs.",
    )
    METRICS_API_UNAVAILABLE = (
        "MetricsAPIUnavailable",
        "The APIService serving the metrics API reports itself unavailable.",
    )
    METRICS_NOT_NEEDED = "MetricsNotNeeded", "The tier scales on resource metrics only."
    MEMORY_EXHAUSTION_PREDICTED = (
        "MemoryExhaustionPredicted",
        "A replica's GPU memory use is predicted to reach its budget soon (risk High/Critical).",
    )
    MEMORY_WITHIN_BUDGET = (
        "MemoryWithinBudget",
        "No replica's GPU memory use is predicted to reach its budget soon.",
    )
    NO_MEMORY_SAMPLES = (
        "NoMemorySamples",
        "No node agent memory samples cover the replicas' GPUs (yet, or prediction is off).",
    )
    # Rollouts
    NO_ROLLOUT = "NoRollout", "The spec's model is the stable version; nothing is being rolled out."
    CANDIDATE_STARTING = (
        "CandidateStarting",
        "The candidate version's pods are starting or loading.",
    )
    ROLLOUT_PROGRESSING = (
        "RolloutProgressing",
        "The candidate passed analysis so far and moves step by step.",
    )
    INSUFFICIENT_DATA = (
        "InsufficientData",
        "Too few requests reached the candidate to judge it; the step waits.",
    )
    PROMETHEUS_UNAVAILABLE = (
        "PrometheusUnavailable",
        "Prometheus did not answer; the step waits, nothing rolls back.",
    )
    ANALYSIS_FAILED = (
        "AnalysisFailed",
        "A metric check failed beyond failureLimit; traffic went back to stable.",
    )
    CANDIDATE_FAILED = (
        "CandidateFailed",
        "The candidate's Deployment exceeded its progress deadline.",
    )
    SWITCHED_BACK = (
        "SwitchedBack",
        "The version was set back within the blue-green scale-down delay: traffic went back at once.",
    )
    REPLICA_MOVING = (
        "ReplicaMoving",
        "Zero spare: a stable pod is releasing its GPUs and a candidate pod takes them.",
    )
    SURGE_UNAVAILABLE = (
        "SurgeUnavailable",
        "The pool has no free GPUs for the candidate beside stable, and the strategy needs them.",
    )
    ROLLOUT_PAUSED = (
        "RolloutPaused",
        "The step waited past insufficientDataDeadline; a person must act.",
    )
    MIRROR_UNSUPPORTED = (
        "MirrorUnsupported",
        "A parent Gateway's class lists supportedFeatures without the mirror feature shadow needs; "
        "nothing is mirrored and the rollout waits on stable.",
    )
    MIRROR_SUPPORT_UNKNOWN = (
        "MirrorSupportUnknown",
        "No supportedFeatures say a parent Gateway can mirror (Gateway or class missing, or none "
        "published); the shadow waits unless traffic.assumeMirrorSupport.",
    )
    PROMOTED = "Promoted", "The candidate passed every step and is now the stable version."
    VERSION_DENIED = (
        "VersionDenied",
        "This version was rolled back before and is not rolled out again.",
    )
    # GPUPool
    NO_NODES = "NoNodes", "No node matches the pool's node selector."
    NO_INVENTORY = "NoInventory", "Matching nodes have not published a GPU inventory yet."
    INVENTORY_STALE = "InventoryStale", "A node's published inventory is older than allowed."
    UNHEALTHY_GPUS = "UnhealthyGPUs", "At least one GPU is unhealthy and excluded from placement."
    UNSUPPORTED_SHARING = "UnsupportedSharing", "The sharing mode does not fit the pool's GPUs."
    # ChaosExperiment
    TARGET_NOT_FOUND = "TargetNotFound", "No pod matches the experiment's target."
    SAFETY_VIOLATED = "SafetyViolated", "Running the experiment would break a safety rail."
    DRY_RUN = "DryRun", "dryRun is set: targets are chosen and reported, nothing is injected."
    SCHEDULED = "Scheduled", "The experiment waits for its next scheduled run."
    STEADY_STATE_HELD = "SteadyStateHeld", "Every steady-state probe stayed within its thresholds."
    STEADY_STATE_BROKEN = "SteadyStateBroken", "A steady-state probe crossed its threshold."
    ABORTED = "Aborted", "An abort condition fired and the fault was reverted."
    # LogPolicy
    NO_TARGETS = "NoTargets", "The policy selects no pod."
    INVALID_REGEX = "InvalidRegex", "A redaction rule's pattern does not compile."
    AGENTS_ROLLING = "AgentsRolling", "Log agents are restarting onto the current configuration."
    LOG_VOLUME_FILLING = (
        "LogVolumeFilling",
        "A node's log volume passed the thresholds; its agent climbed the disk-pressure ladder.",
    )
    NO_AGENT_REPORTS = "NoAgentReports", "No log agent of the policy has reported recently."
    CONFIG_REJECTED = (
        "ConfigRejected",
        "The log agent's own validate refused the rendered configuration; the message quotes it.",
    )
    VALIDATOR_UNAVAILABLE = (
        "ValidatorUnavailable",
        "The operator has no log agent binary to validate the rendered configuration with.",
    )
    # Events only: decisions and changes, not condition states
    CHILDREN_APPLIED = "ChildrenApplied", "Child objects were created or changed (Event)."
    CHILDREN_DELETED = "ChildrenDeleted", "Child objects no longer wanted were deleted (Event)."
    CHILD_API_NOT_SERVED = (
        "ChildAPINotServed",
        "A child's API (a CRD such as HTTPRoute or ScaledObject) is not served; it was not "
        "created (Event).",
    )
    REPLICA_PLACED = "ReplicaPlaced", "A replica got a node and GPU set anew (Event)."
    ZERO_SPARE_ROLLOUT = (
        "ZeroSpareRollout",
        "The rollout moves replicas one at a time instead of surging, and why (Event).",
    )
    ROLLOUT_STEP_ADVANCED = (
        "RolloutStepAdvanced",
        "The candidate passed a step's analysis and moved to the next step (Event).",
    )
    ROLLED_BACK = (
        "RolledBack",
        "The candidate was removed and stable took all traffic again, with the evidence (Event).",
    )
    SCALED_DOWN = (
        "ScaledDown",
        "blueGreen: the replaced version's Deployment was deleted after scaleDownDelay (Event).",
    )
    MODEL_LOAD_REFUSED = (
        "ModelLoadRefused",
        "In place: a server answered a version's load with an error; the candidate fails (Event).",
    )


RESERVED_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.UNKNOWN_RUNTIME,  # the API's runtime enum refuses an unknown runtime at apply
        Reason.METRICS_NOT_NEEDED,  # bronze reports its resource metrics API instead
        Reason.NO_TARGETS,  # LogPolicy reports matchedTargets: 0 and stays Ready
        Reason.SCHEDULED,  # ChaosExperiment schedules are not built
        Reason.STEADY_STATE_HELD,  # ChaosExperiment steady-state probes are not built
        Reason.STEADY_STATE_BROKEN,
        Reason.ABORTED,  # ChaosExperiment abort conditions are not built
    }
)
"""Reasons documented (and matched by the Argo CD health checks) that no code path sets yet;
kept so the documentation and the health checks stay stable when the features come."""

RESERVED_CONDITION_TYPES: frozenset[ConditionType] = frozenset(
    {ConditionType.STEADY_STATE}  # ChaosExperiment steady-state probes are not built
)
"""Condition types documented that no planner observes yet."""


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One observation of an aspect of the resource, as the Kubernetes API conventions describe."""

    type: str = Field(max_length=316)
    """The aspect observed, such as Ready or Placed."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """A CamelCase word that tools match on."""
    message: str = Field(default="", max_length=32768)
    """A sentence for people: what was observed and what to do."""
    observed_generation: int = Field(default=0, ge=0)
    """The metadata.generation this condition was computed for."""
    last_transition_time: str
    """When status last changed (RFC 3339)."""
