"""Plan a LogPolicy: the log agent's ConfigMap and DaemonSet, and the policy's status.

Owns: which log files the agents read (the node's container logs for the DaemonSet; a server's
own log files for the collector sidecar of an InferenceService that logs to files), the agent
objects and the collector container both run, the checks that decide ``ConfigValid`` (patterns
RE2 accepts, the collector's own ``validate`` verdict that the controller observed for these
exact configurations) and ``Applied``.
Must not: run the collector (the controller does, through ``controllers.log_validation``), render
collector configuration itself (``planning.logs.pipeline`` does) or assemble InferenceService pods
(``planning.logs.sidecar`` does).
Rendering is deterministic; the configuration hashes go into status and the agent pods'
annotation, so a changed policy rolls the agents (and, through the InferenceService, the pods
with sidecars).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import yaml

from kubeinfer.api import log_policy as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning import children
from kubeinfer.planning.conditions import Observation, with_ready
from kubeinfer.planning.logs import pipeline as log_agent

GATES = (ConditionType.CONFIG_VALID, ConditionType.APPLIED)
COLLECTOR_IMAGE = "ghcr.io/kubeinfer/otelcol-kubeinfer:0.149.0"
CONFIG_HASH_ANNOTATION = "kubeinfer.io/log-config-hash"
CONFIG_KEY = "collector.yaml"
CONFIG_DIR = "/etc/kubeinfer"
POD_LOGS = "/var/log/pods"
STATE_ROOT = "/var/lib/kubeinfer/log-agent"
#: The operator's Service; agents post their reports there (see controllers.log_reports).
REPORT_ENDPOINT = "http://kubeinfer-operator.kubeinfer-system.svc:8080/v1/log-agent-reports"
#: Agents prove who they are with a projected ServiceAccount token for this audience (the
#: operator reviews it), mounted from this volume; the kubelet rotates it before it expires.
REPORT_AUDIENCE = "kubeinfer-operator"
REPORT_TOKEN_VOLUME = "report-token"  # noqa: S105 - a volume name, not a secret
REPORT_TOKEN_DIR = "/var/run/secrets/kubeinfer"  # noqa: S105 - a mount path, not a secret
REPORT_TOKEN_SECONDS = 3600
NODE_NAME_ENV = "NODE_NAME"
POD_NAME_ENV = "POD_NAME"
#: Collector sidecars' container names start so. The node agents skip those containers' logs:
#: a sidecar's stdout output would otherwise be read and shipped a second time.
SIDECAR_CONTAINER_PREFIX = "kubeinfer-log-"
#: Where a sidecar sees the server's log directory, its own state, and the container it reads.
SIDECAR_LOGS = "/var/log/kubeinfer-server"
SIDECAR_STATE = "/var/lib/kubeinfer/log-sidecar"
SERVER_CONTAINER = "server"
HASHING_DATA_ITEM = "key"  # which data item of the hashing Secret holds the key
#: Python-only regular-expression syntax RE2 (the collector's engine) rejects.
_NOT_RE2 = re.compile(r"\(\?[=!]|\(\?<[=!]|\(\?>|\\[1-9]|[*+?}][+]|\(\?P=")


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


@dataclasses.dataclass(frozen=True)
class Plan:
    """Desired children and status."""

    children: tuple[children.Manifest, ...]
    observations: tuple[Observation, ...]
    status: dict[str, Any]


def include_globs(namespace: str, spec: api.LogPolicySpec) -> list[str]:
    """Container log files the agent reads (kubelet names pod directories ns_pod_uid)."""
    pods = f"{spec.inference_service}-*" if spec.inference_service else "*"
    return [f"{POD_LOGS}/{namespace}_{pods}/*/*.log"]


def _text(
    owner: children.Owner,
    spec: api.LogPolicySpec,
    *,
    include: list[str],
    state_dir: str,
    volume: str,
    node: str,
    source: log_agent.Source,
) -> str:
    config = log_agent.render_config(
        spec,
        include=include,
        state_dir=state_dir,
        volume=volume,
        reporting=log_agent.Reporting(
            endpoint=REPORT_ENDPOINT,
            namespace=owner.namespace,
            policy=owner.name,
            node=node,
            token_file=f"{REPORT_TOKEN_DIR}/token",
        ),
        source=source,
    )
    return yaml.safe_dump(config, sort_keys=True, width=120)


def config_text(owner: children.Owner, spec: api.LogPolicySpec) -> str:
    """The node agent's configuration file, byte for byte as the ConfigMap holds it."""
    sidecars = f"{POD_LOGS}/{owner.namespace}_*/{SIDECAR_CONTAINER_PREFIX}*/*.log"
    return _text(
        owner,
        spec,
        include=include_globs(owner.namespace, spec),
        state_dir=f"{STATE_ROOT}/{owner.namespace}-{owner.name}",
        volume=POD_LOGS,
        node="${env:" + NODE_NAME_ENV + "}",
        source=log_agent.Source(exclude=(sidecars,)),
    )


def sidecar_config_text(owner: children.Owner, spec: api.LogPolicySpec) -> str:
    """The configuration of the collector sidecar in a pod whose server logs to files.

    The same pipeline as the node agent's, reading the plain ``*.log`` files of the directory
    the pod shares between server and sidecar; the records name their namespace, pod and
    container as container logs do (rate limits key by them). The sidecar reports as
    ``pod/<name>``; each pod's file outputs go to a subdirectory named after the pod, since
    several pods on one node share the host directory.
    """
    pod = "${env:" + POD_NAME_ENV + "}"
    per_pod = [
        o.model_copy(update={"path": f"{o.path}/{pod}"}) if o.type == "file" and o.path else o
        for o in spec.outputs
    ]
    return _text(
        owner,
        spec.model_copy(update={"outputs": per_pod}),
        include=[f"{SIDECAR_LOGS}/*.log"],
        state_dir=SIDECAR_STATE,
        volume=SIDECAR_LOGS,
        node=f"pod/{pod}",
        source=log_agent.Source(
            container_logs=False,
            resource={
                "k8s.namespace.name": owner.namespace,
                "k8s.pod.name": pod,
                "k8s.container.name": SERVER_CONTAINER,
            },
        ),
    )


def passes_checks(spec: api.LogPolicySpec) -> bool:
    """Whether ``spec`` passes every named check (a failing policy runs no agent anywhere)."""
    return not any(check(spec)[2] for check in CHECKS)


# --- named checks: (reason, message, failed) ---------------------------------------------------

Check = Callable[[api.LogPolicySpec], tuple[Reason, str, bool]]


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not an RE2 expression the collector can compile, or None."""
    if _NOT_RE2.search(pattern):
        return "uses lookaround, backreferences or possessive syntax, which RE2 does not support"
    try:
        re.compile(pattern)
    except re.error as err:
        return str(err)
    return None


def check_patterns(spec: api.LogPolicySpec) -> tuple[Reason, str, bool]:
    """Every redaction rule, always-keep and audit pattern compiles."""
    named = [(f"redaction rule {r.name!r}", r.pattern) for r in spec.redaction.rules]
    named += [(f"sampling.alwaysKeep[{i}]", p) for i, p in enumerate(spec.sampling.always_keep)]
    named += [(f"audit.match[{i}]", p) for i, p in enumerate(spec.audit.match)]
    problems = [f"{what}: {why}" for what, p in named if (why := regex_problem(p))]
    if problems:
        return Reason.INVALID_REGEX, "Pattern rejected: " + "; ".join(problems) + ".", True
    return Reason.AS_EXPECTED, "Every pattern compiles.", False


CHECKS: tuple[Check, ...] = (check_patterns,)


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


def records(reports: tuple[AgentReport, ...]) -> dict[str, Any]:
    """Counts summed over the agents, as ``status.records``."""
    dropped: dict[str, int] = {}
    for report in reports:
        for reason, count in report.dropped:
            dropped[reason] = dropped.get(reason, 0) + count
    return {
        "seen": sum(r.seen for r in reports),
        "kept": sum(r.kept for r in reports),
        "dropped": dict(sorted(dropped.items())),
    }


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


def collector_container(
    spec: api.LogPolicySpec,
    *,
    name: str,
    config_path: str,
    mounts: list[dict[str, Any]],
    identity: dict[str, str],
) -> dict[str, Any]:
    """The collector container of a node agent or a sidecar: ``identity`` maps environment
    variables to the pod fields they carry (the agent's node, the sidecar's pod name); the
    redaction key comes from the policy's Secret; the report token (:func:`report_token_volume`)
    is mounted."""
    env: list[dict[str, Any]] = [
        {"name": var, "valueFrom": {"fieldRef": {"fieldPath": field}}}
        for var, field in sorted(identity.items())
    ]
    if spec.redaction.hash_key_secret:
        env.append(
            {
                "name": log_agent.HASH_KEY_ENV,
                "valueFrom": {
                    "secretKeyRef": {
                        "name": spec.redaction.hash_key_secret,
                        "key": HASHING_DATA_ITEM,
                    }
                },
            }
        )
    return {
        "name": name,
        "image": COLLECTOR_IMAGE,
        "args": [f"--config={config_path}"],
        "volumeMounts": [
            *mounts,
            {"name": REPORT_TOKEN_VOLUME, "mountPath": REPORT_TOKEN_DIR, "readOnly": True},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "env": env,
    }


def report_token_volume() -> dict[str, Any]:
    """The projected ServiceAccount token an agent sends with its reports."""
    token = {
        "audience": REPORT_AUDIENCE,
        "expirationSeconds": REPORT_TOKEN_SECONDS,
        "path": "token",
    }
    return {
        "name": REPORT_TOKEN_VOLUME,
        "projected": {"sources": [{"serviceAccountToken": token}]},
    }


def file_output_volumes(
    spec: api.LogPolicySpec, prefix: str = ""
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(volumes, mounts)`` of the host directories of the policy's file outputs; volume names
    start with ``prefix`` (a pod with several policies' sidecars keeps them apart)."""
    outputs = [
        (children.dns_name(prefix, "out", o.name), o.path)
        for o in spec.outputs
        if o.type == "file" and o.path
    ]
    volumes = [
        {"name": v, "hostPath": {"path": path, "type": "DirectoryOrCreate"}} for v, path in outputs
    ]
    return volumes, [{"name": v, "mountPath": path} for v, path in outputs]


def _agent_container(spec: api.LogPolicySpec) -> dict[str, Any]:
    return collector_container(
        spec,
        name="collector",
        config_path=f"{CONFIG_DIR}/{CONFIG_KEY}",
        mounts=[
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "pods", "mountPath": POD_LOGS, "readOnly": True},
            {"name": "state", "mountPath": STATE_ROOT},
            *file_output_volumes(spec)[1],
        ],
        identity={NODE_NAME_ENV: "spec.nodeName"},
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
                    "annotations": {CONFIG_HASH_ANNOTATION: digest},
                },
                "spec": {
                    "containers": [_agent_container(spec)],
                    "tolerations": [{"operator": "Exists"}],
                    "volumes": [
                        {"name": "config", "configMap": {"name": name}},
                        {"name": "pods", "hostPath": {"path": POD_LOGS}},
                        {
                            "name": "state",
                            "hostPath": {"path": STATE_ROOT, "type": "DirectoryOrCreate"},
                        },
                        report_token_volume(),
                        *file_output_volumes(spec)[0],
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
    text = config_text(owner, spec)
    digest = children.content_hash(text)
    sidecar_digest = children.content_hash(sidecar_config_text(owner, spec))
    status = {
        "matchedTargets": observed.matched_pods,
        "outputs": len(spec.outputs),
        "configHash": digest,
        "sidecarConfigHash": sidecar_digest,
        "records": records(observed.reports),
    }
    for check in CHECKS:
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
