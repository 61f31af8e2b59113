"""Plan a LogPolicy: the log agent's ConfigMap and DaemonSet, and the policy's status.

Owns: the agent objects (ConfigMap and DaemonSet), the conditions ``ConfigValid`` (the named
checks, then the collector's own ``validate`` verdict that the controller observed for these
exact configurations), ``Applied`` and ``DiskPressure``, and the record counts in status.
Must not: run the collector (the controller does, through ``controllers.log_validation``), render
collector configuration or containers itself (``planning.logs.collector`` does) or assemble
InferenceService pods (``planning.logs.sidecar`` does).
Rendering is deterministic; the configuration hashes go into status and the agent pods'
annotation, so a changed policy rolls the agents (and, through the InferenceService, the pods
with sidecars).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kubeinfer.api import log_policy as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning import children, plans
from kubeinfer.planning.conditions import Observation, with_ready
from kubeinfer.planning.labels import LOG_CONFIG_HASH_ANNOTATION
from kubeinfer.planning.logs import collector

GATES = (ConditionType.CONFIG_VALID, ConditionType.APPLIED)
CONFIG_KEY = "collector.yaml"
CONFIG_DIR = "/etc/kubeinfer"


@dataclasses.dataclass(frozen=True)
class Validation:
    """The collector's ``validate`` verdict on one rendered configuration."""

    config_hash: str
    error: str | None


@dataclasses.dataclass(frozen=True)
class AgentReport:
    """What one agent last reported: cumulative counts and its volume's disk-pressure step."""

    node: str
    seen: int
    kept: int
    dropped: tuple[tuple[str, int], ...]
    disk_pressure_level: int


@dataclasses.dataclass(frozen=True)
class Observed:
    """What the controller read: matched pods, the agents' rollout and the validate verdict."""

    matched_pods: int = 0
    agents_desired: int | None = None
    agents_updated: int = 0
    validation: Validation | None = None
    """Verdict on the agents' configuration; None when the operator has no collector binary."""
    sidecar_validation: Validation | None = None
    """Verdict on the sidecars' configuration; None when the operator has no collector binary."""
    reports: tuple[AgentReport, ...] = ()
    """Recent reports of the policy's agents, one per node."""
    sidecar_pods: int = 0
    """Pods of the Deployments whose template runs this policy's sidecar (any configuration)."""
    sidecar_pods_updated: int = 0
    """Of those, pods of a template that runs the current sidecar configuration."""


Plan = plans.Plan[api.LogPolicyStatus]
"""Desired children (the agents' ConfigMap and DaemonSet) and status."""


def _config_valid(verdicts: tuple[tuple[str, str, Validation | None], ...]) -> Observation:
    """ConfigValid from the collector's verdicts on ``(what, hash, verdict)`` of each config."""
    checked = [(what, digest, v) for what, digest, v in verdicts if v is not None]
    if len(checked) < len(verdicts):
        return Observation.unknown(
            ConditionType.CONFIG_VALID,
            Reason.VALIDATOR_UNAVAILABLE,
            "No collector binary is configured for the operator (KUBEINFER_COLLECTOR), so "
            "the rendered configuration was not run through the collector's validate.",
        )
    for what, digest, validation in checked:
        if validation.config_hash != digest:
            return Observation.unknown(
                ConditionType.CONFIG_VALID,
                Reason.RECONCILING,
                f"Validating {what} configuration {digest}.",
            )
        if validation.error is not None:
            return Observation.false(
                ConditionType.CONFIG_VALID,
                Reason.CONFIG_REJECTED,
                f"The collector's validate refused {what} configuration {digest}: "
                f"{validation.error}",
            )
    passed = " and ".join(f"{what} configuration {digest}" for what, digest, _ in verdicts)
    return Observation.true(
        ConditionType.CONFIG_VALID,
        Reason.AS_EXPECTED,
        f"The collector's validate passed the {passed}.",
    )


def _applied(digest: str, sidecar_digest: str, observed: Observed) -> Observation:
    if observed.agents_desired is None:
        return Observation.unknown(
            ConditionType.APPLIED, Reason.AGENTS_ROLLING, "The agent DaemonSet is being created."
        )
    rollouts = (
        (observed.agents_updated, observed.agents_desired, "agents", f"configuration {digest}"),
        (
            observed.sidecar_pods_updated,
            observed.sidecar_pods,
            "pods with a sidecar",
            f"sidecar configuration {sidecar_digest}",
        ),
    )
    for done, wanted, who, what in rollouts:
        if done < wanted:
            return Observation.false(
                ConditionType.APPLIED,
                Reason.AGENTS_ROLLING,
                f"{done} of {wanted} {who} run {what}.",
            )
    sidecars = (
        f" and {observed.sidecar_pods} pods with a sidecar run sidecar configuration "
        f"{sidecar_digest}"
        if observed.sidecar_pods
        else ""
    )
    return Observation.true(
        ConditionType.APPLIED,
        Reason.AS_EXPECTED,
        f"Every agent runs configuration {digest}{sidecars}.",
    )


def records(reports: tuple[AgentReport, ...]) -> api.RecordCounts:
    """Counts summed over the agents, as ``status.records``."""
    dropped: dict[str, int] = {}
    for report in reports:
        for reason, count in report.dropped:
            dropped[reason] = dropped.get(reason, 0) + count
    return api.RecordCounts(
        seen=sum(r.seen for r in reports),
        kept=sum(r.kept for r in reports),
        dropped=dict(sorted(dropped.items())),
    )


def disk_pressure(reports: tuple[AgentReport, ...]) -> Observation:
    """DiskPressure from the agents' ladder steps (True is the bad state)."""
    if not reports:
        return Observation.unknown(
            ConditionType.DISK_PRESSURE, Reason.NO_AGENT_REPORTS, "No agent has reported yet."
        )
    pressed = sorted((r.node, r.disk_pressure_level) for r in reports if r.disk_pressure_level)
    if not pressed:
        return Observation.false(
            ConditionType.DISK_PRESSURE,
            Reason.AS_EXPECTED,
            f"All {len(reports)} reporting agents' log volumes are below the thresholds.",
        )
    steps = ", ".join(f"{node} at step {level}" for node, level in pressed)
    return Observation.true(
        ConditionType.DISK_PRESSURE,
        Reason.LOG_VOLUME_FILLING,
        f"Log volumes past the thresholds: {steps} (1: sampling tightened tenfold, 2: also "
        "rotating at a quarter size, 3: also keeping one rotated file).",
    )


def _agent_container(spec: api.LogPolicySpec) -> dict[str, Any]:
    return collector.collector_container(
        spec,
        name="collector",
        config_path=f"{CONFIG_DIR}/{CONFIG_KEY}",
        mounts=[
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "pods", "mountPath": collector.POD_LOGS, "readOnly": True},
            {"name": "state", "mountPath": collector.STATE_ROOT},
            *collector.file_output_volumes(spec)[1],
        ],
        identity={collector.NODE_NAME_ENV: "spec.nodeName"},
    )


def _agent_objects(
    owner: children.Owner, spec: api.LogPolicySpec, text: str, digest: str
) -> tuple[children.Manifest, ...]:
    name = children.dns_name(owner.name, "log-agent")
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": children.metadata(owner, name),
        "data": {CONFIG_KEY: text},
    }
    daemon_set = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": children.metadata(owner, name),
        "spec": {
            "selector": {"matchLabels": {owner.label_key: owner.name}},
            "template": {
                "metadata": {
                    "labels": children.child_labels(owner),
                    "annotations": {LOG_CONFIG_HASH_ANNOTATION: digest},
                },
                "spec": {
                    "containers": [_agent_container(spec)],
                    "tolerations": [{"operator": "Exists"}],
                    "volumes": [
                        {"name": "config", "configMap": {"name": name}},
                        {"name": "pods", "hostPath": {"path": collector.POD_LOGS}},
                        {
                            "name": "state",
                            "hostPath": {"path": collector.STATE_ROOT, "type": "DirectoryOrCreate"},
                        },
                        collector.report_token_volume(),
                        *collector.file_output_volumes(spec)[0],
                    ],
                },
            },
        },
    }
    return (children.stamp_hash(config_map), children.stamp_hash(daemon_set))


def plan(owner: children.Owner, spec: api.LogPolicySpec, observed: Observed) -> Plan:
    """Return the agent ConfigMap, DaemonSet and status of a LogPolicy.

    A policy failing a check gets no agents: an agent without its redaction rules would ship
    the secrets the rules exist to remove.
    """
    text = collector.config_text(owner, spec)
    digest = children.content_hash(text)
    sidecar_digest = children.content_hash(collector.sidecar_config_text(owner, spec))
    status = api.LogPolicyStatus(
        matched_targets=observed.matched_pods,
        outputs=len(spec.outputs),
        config_hash=digest,
        sidecar_config_hash=sidecar_digest,
        records=records(observed.reports),
    )
    for check in collector.CHECKS:
        reason, message, failed = check(spec)
        if failed:
            invalid = Observation.false(ConditionType.CONFIG_VALID, reason, message)
            applied = Observation.false(
                ConditionType.APPLIED, reason, "No agent runs this policy until it is fixed."
            )
            return Plan((), with_ready((invalid, applied), GATES), status)
    observations = (
        _config_valid(
            (
                ("agent", digest, observed.validation),
                ("sidecar", sidecar_digest, observed.sidecar_validation),
            )
        ),
        _applied(digest, sidecar_digest, observed),
        disk_pressure(observed.reports),
    )
    return Plan(_agent_objects(owner, spec, text, digest), with_ready(observations, GATES), status)
