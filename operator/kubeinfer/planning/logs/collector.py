"""The log collector both a LogPolicy's node agents and its sidecars run, and its configuration.

Owns: which log files a collector reads (the node's container logs for the agent DaemonSet; a
server's own log files for the sidecar of an InferenceService that logs to files), the rendered
configuration text of each, the collector container and its report token, the host volumes of
file outputs, and the named checks a policy must pass before any collector runs it.
Must not: render the pipeline itself (``planning.logs.pipeline`` does), decide status
(``planning.log_policy`` does) or assemble InferenceService pods (``planning.logs.sidecar``
does).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from kubeinfer.api import log_policy as api
from kubeinfer.api.conditions import Reason
from kubeinfer.planning import children
from kubeinfer.planning.logs import pipeline as log_agent

COLLECTOR_IMAGE = "ghcr.io/kubeinfer/otelcol-kubeinfer:0.149.0"
#: The pod annotation naming the configuration hashes a pod runs (a changed policy rolls it).
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
