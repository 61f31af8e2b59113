"""The registry of kubeinfer's kinds: names, models, printer columns, short names, subresources.

One entry per kind; the CRD generator, the controllers and the CLI all read this table, so a
kind's names are written in exactly one place. Must not import any other layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from kubeinfer.api import (
    API_VERSION,
    GROUP,
    chaos_experiment,
    gpu_pool,
    inference_service,
    log_policy,
)

CATEGORY = "kubeinfer"


@dataclass(frozen=True)
class Column:
    """A ``kubectl get`` printer column."""

    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""


@dataclass(frozen=True)
class Scale:
    """The scale subresource's paths."""

    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str


@dataclass(frozen=True)
class Kind:
    """Everything the rest of the code needs to know about one kind."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[Column, ...] = ()
    scale: Scale | None = None
    aspect_conditions: tuple[str, ...] = field(default=())

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def api_version(self) -> str:
        return API_VERSION


def _ready_columns() -> tuple[Column, ...]:
    return (
        Column("Ready", '.status.conditions[?(@.type=="Ready")].status'),
        Column("Reason", '.status.conditions[?(@.type=="Ready")].reason'),
    )


_AGE = Column("Age", ".metadata.creationTimestamp", type="date")

INFERENCE_SERVICE = Kind(
    kind=inference_service.KIND,
    plural=inference_service.PLURAL,
    short_names=("infsvc", "kisvc"),
    spec=inference_service.InferenceServiceSpec,
    status=inference_service.InferenceServiceStatus,
    description="A model served on GPUs with placement, traffic, rollout and SLA autoscaling.",
    columns=(
        Column("URL", ".status.url", priority=1),
        *_ready_columns(),
        Column("Model", ".spec.model.name"),
        Column("Stable", ".status.stable.version"),
        Column("Strategy", ".spec.rollout.strategy", priority=1),
        Column("Canary%", ".status.traffic.candidateWeight", type="integer"),
        Column("Tier", ".spec.sla.tier"),
        Column("Replicas", ".status.readyReplicas", type="integer"),
        _AGE,
    ),
    scale=Scale(
        spec_replicas_path=".spec.replicas.desired",
        status_replicas_path=".status.replicas",
        label_selector_path=".status.selector",
    ),
)

GPU_POOL = Kind(
    kind=gpu_pool.KIND,
    plural=gpu_pool.PLURAL,
    short_names=("gpupool", "gpool"),
    spec=gpu_pool.GPUPoolSpec,
    status=gpu_pool.GPUPoolStatus,
    description="A set of GPU nodes: inventory, topology, sharing, health and OOM risk.",
    columns=(
        *_ready_columns(),
        Column("Nodes", ".status.nodeCount", type="integer"),
        Column("GPUs", ".status.capacity", type="integer"),
        Column("Allocated", ".status.allocated", type="integer"),
        Column("Free", ".status.free", type="integer"),
        Column("Sharing", ".spec.sharing.mode", priority=1),
        Column("Fragmentation", ".status.fragmentation", type="number", priority=1),
        Column("OOM-Risk", ".status.oomAtRisk", type="integer", priority=1),
        _AGE,
    ),
)

CHAOS_EXPERIMENT = Kind(
    kind=chaos_experiment.KIND,
    plural=chaos_experiment.PLURAL,
    short_names=("chaosexp", "kchaos"),
    spec=chaos_experiment.ChaosExperimentSpec,
    status=chaos_experiment.ChaosExperimentStatus,
    description="A fault injected into inference workloads with safety rails and a verdict.",
    columns=(
        *_ready_columns(),
        Column("Action", ".spec.action"),
        Column("Phase", ".status.phase"),
        Column("Verdict", ".status.verdict"),
        _AGE,
    ),
)

LOG_POLICY = Kind(
    kind=log_policy.KIND,
    plural=log_policy.PLURAL,
    short_names=("logpol", "klogpol"),
    spec=log_policy.LogPolicySpec,
    status=log_policy.LogPolicyStatus,
    description="Sampling, rate limits, redaction, routing and retention of inference logs.",
    columns=(
        *_ready_columns(),
        Column("Targets", ".status.matchedTargets", type="integer"),
        Column("Outputs", ".status.outputs", type="integer"),
        Column("Hash", ".status.configHash", priority=1),
        _AGE,
    ),
)

ALL: tuple[Kind, ...] = (INFERENCE_SERVICE, GPU_POOL, CHAOS_EXPERIMENT, LOG_POLICY)
BY_KIND: dict[str, Kind] = {k.kind: k for k in ALL}


def lookup(api_version: str, kind: str) -> Kind:
    """Return the registry entry for ``apiVersion``/``kind``, or raise ``KeyError``."""
    if api_version != API_VERSION or kind not in BY_KIND:
        raise KeyError(f"{api_version}/{kind} is not a kubeinfer kind")
    return BY_KIND[kind]
