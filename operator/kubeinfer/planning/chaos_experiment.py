"""Plan a ChaosExperiment: choose targets, check the safety rails, decide what to inject.

Targets are chosen deterministically (sorted by name, then the mode's count), so a re-run of
the planner picks the same pods. Safety rails are a chain of small named checks, each returning
``(reason, message, failed)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeinfer.api import base
from kubeinfer.api import chaos_experiment as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning import children, plans
from kubeinfer.planning.conditions import Observation, with_ready
from kubeinfer.planning.labels import INFERENCE_SERVICE_LABEL

GATES = (ConditionType.SAFE, ConditionType.INJECTED)
JOB_ACTIONS = frozenset({"cpuStress", "memoryStress", "logFlood"})
"""Actions injected by a Job co-scheduled with a target; its activeDeadlineSeconds reverts it."""
IMPLEMENTED_ACTIONS = JOB_ACTIONS
"""Actions this operator version can inject; the rest report NotImplemented truthfully."""
STRESS_IMAGE = "ghcr.io/colinianking/stress-ng:0.19.04"
FLOOD_IMAGE = "busybox:1.37"


@dataclass(frozen=True)
class PodView:
    """A candidate target pod."""

    name: str
    ready: bool
    node: str = ""


@dataclass(frozen=True)
class JobView:
    """Observed state of the fault Job."""

    active: int = 0
    succeeded: int = 0
    failed: int = 0
    start_time: str | None = None
    completion_time: str | None = None


@dataclass(frozen=True)
class Observed:
    """The pods the experiment's target selects and the fault Job, if any."""

    pods: tuple[PodView, ...] = field(default_factory=tuple)
    job: JobView | None = None


def target_selector(spec: api.ChaosExperimentSpec) -> dict[str, Any]:
    """Return the label selector (Kubernetes form) of the experiment's target pods."""
    if spec.target.inference_service is not None:
        return {"matchLabels": {INFERENCE_SERVICE_LABEL: spec.target.inference_service}}
    assert spec.target.selector is not None  # the CRD's CEL rule requires one of the two
    return spec.target.selector.model_dump(by_alias=True, exclude_defaults=True)


def _fault_command(spec: api.ChaosExperimentSpec, seconds: int) -> tuple[str, list[str]]:
    if spec.action == "cpuStress":
        return STRESS_IMAGE, [
            "stress-ng",
            "--cpu",
            str(spec.stress.workers),
            "--cpu-load",
            str(spec.stress.load_percent),
            "--timeout",
            f"{seconds}s",
        ]
    if spec.action == "memoryStress":
        return STRESS_IMAGE, [
            "stress-ng",
            "--vm",
            str(spec.stress.workers),
            "--vm-bytes",
            spec.stress.size.replace("i", ""),
            "--timeout",
            f"{seconds}s",
        ]
    flood = spec.log_flood
    pad = "x" * max(flood.line_bytes - 40, 1)
    # One shell loop per second writes lines_per_second lines, each prefixed with its level.
    script = (
        f'end=$(( $(date +%s) + {seconds} )); while [ "$(date +%s)" -lt "$end" ]; do '
        f"i=0; while [ $i -lt {flood.lines_per_second} ]; do "
        f'echo "{flood.level} chaos log flood $i {pad}"; i=$((i+1)); done; sleep 1; done'
    )
    return FLOOD_IMAGE, ["sh", "-c", script]


def build_fault_job(owner: children.Owner, spec: api.ChaosExperimentSpec) -> children.Manifest:
    """Return the Job that injects a Job-borne fault beside a target pod for ``duration``."""
    seconds = int(base.duration_seconds(spec.duration))
    image, command = _fault_command(spec, seconds)
    namespace = spec.target.namespace or owner.namespace
    return children.stamp_hash(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": children.metadata(
                owner, children.dns_name(owner.name, spec.action.lower())
            ),
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": seconds + 30,
                "ttlSecondsAfterFinished": 3600,
                "template": {
                    "metadata": {"labels": children.child_labels(owner)},
                    "spec": {
                        "restartPolicy": "Never",
                        "affinity": {
                            "podAffinity": {
                                "requiredDuringSchedulingIgnoredDuringExecution": [
                                    {
                                        "labelSelector": target_selector(spec),
                                        "namespaces": [namespace],
                                        "topologyKey": "kubernetes.io/hostname",
                                    }
                                ]
                            }
                        },
                        "containers": [
                            {
                                "name": "fault",
                                "image": image,
                                "command": command,
                                "resources": {
                                    "limits": {"cpu": str(spec.stress.workers), "memory": "1Gi"}
                                },
                            }
                        ],
                    },
                },
            },
        }
    )


Plan = plans.Plan[api.ChaosExperimentStatus]
"""Desired children (the fault Job) and status."""


def choose_targets(spec: api.ChaosExperimentSpec, pods: tuple[PodView, ...]) -> list[PodView]:
    """Return the pods the mode selects, in a stable order."""
    ordered = sorted(pods, key=lambda p: p.name)
    if spec.mode == "one":
        count = 1
    elif spec.mode == "all":
        count = len(ordered)
    elif spec.mode == "fixed":
        count = spec.value or 1
    else:
        count = math.ceil(len(ordered) * (spec.value or 0) / 100)
    return ordered[: min(count, len(ordered))]


Check = Callable[
    [api.ChaosExperimentSpec, tuple[PodView, ...], list[PodView]], tuple[Reason, str, bool]
]


def _has_targets(
    spec: api.ChaosExperimentSpec, pods: tuple[PodView, ...], targets: list[PodView]
) -> tuple[Reason, str, bool]:
    del spec, pods
    return Reason.TARGET_NOT_FOUND, "No pod matches the target.", not targets


def _within_unavailable_budget(
    spec: api.ChaosExperimentSpec, pods: tuple[PodView, ...], targets: list[PodView]
) -> tuple[Reason, str, bool]:
    if spec.action not in ("podKill", "networkPartition", "gpuNodeFailure"):
        return Reason.AS_EXPECTED, "", False
    ready = sum(p.ready for p in pods)
    hit = sum(p.ready for p in targets)
    budget = math.floor(ready * spec.max_unavailable_percent / 100)
    return (
        Reason.SAFETY_VIOLATED,
        f"The fault would take {hit} of {ready} ready pods down; maxUnavailablePercent "
        f"{spec.max_unavailable_percent:g} allows {budget}.",
        hit > budget,
    )


SAFETY_CHECKS: tuple[Check, ...] = (_has_targets, _within_unavailable_budget)


def plan(owner: children.Owner, spec: api.ChaosExperimentSpec, observed: Observed) -> Plan:
    """Return the fault children and status of a ChaosExperiment."""
    targets = choose_targets(spec, observed.pods)
    safe = Observation.true(ConditionType.SAFE, Reason.AS_EXPECTED, "Every safety rail holds.")
    for check in SAFETY_CHECKS:
        reason, message, failed = check(spec, observed.pods, targets)
        if failed:
            safe = Observation.false(ConditionType.SAFE, reason, message)
            break
    if spec.dry_run:
        injected = Observation.false(
            ConditionType.INJECTED,
            Reason.DRY_RUN,
            f"Dry run: would {spec.action} {len(targets)} pods.",
        )
    elif spec.action not in IMPLEMENTED_ACTIONS:
        injected = Observation.false(
            ConditionType.INJECTED,
            Reason.NOT_IMPLEMENTED,
            f"Injecting {spec.action} is not built yet; targets are chosen and reported only.",
        )
    elif safe.status != "True":
        injected = Observation.false(
            ConditionType.INJECTED, safe.reason, "Not injected: " + safe.message
        )
    else:
        injected = _job_injected(observed.job, spec)
    job = observed.job
    phase = "Pending"
    if job is not None and job.active:
        phase = "Running"
    elif job is not None and (job.succeeded or job.failed):
        phase = "Completed" if job.succeeded else "Failed"
    status = api.ChaosExperimentStatus(
        phase=phase,
        targets=[t.name for t in targets],
        verdict="Pending",
        start_time=job.start_time if job is not None and job.start_time else None,
        end_time=job.completion_time if job is not None and job.completion_time else None,
    )
    wanted = (
        (build_fault_job(owner, spec),)
        if spec.action in JOB_ACTIONS and not spec.dry_run and safe.status == "True"
        else ()
    )
    return Plan(wanted, with_ready((safe, injected), GATES), status)


def _job_injected(job: JobView | None, spec: api.ChaosExperimentSpec) -> Observation:
    kind = ConditionType.INJECTED
    if job is None or not (job.active or job.succeeded or job.failed):
        return Observation.unknown(kind, Reason.RECONCILING, f"The {spec.action} Job is starting.")
    if job.failed:
        return Observation.false(kind, Reason.APPLY_FAILED, f"The {spec.action} Job failed.")
    return Observation.true(kind, Reason.AS_EXPECTED, f"{spec.action} injected beside the targets.")
