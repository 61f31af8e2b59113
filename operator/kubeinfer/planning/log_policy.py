"""Plan a LogPolicy: render it into OpenTelemetry Collector configuration and agent objects.

The collector pipeline, stage by stage:
``filelog`` (the selected pods' container logs) → ``routing`` connector by severity →
one ``probabilistic_sampler`` per level (hash of the consistent key, so a trace is kept or dropped
whole) → ``transform`` redaction → ``failover`` connector over the outputs in order → exporters.
Rendering is deterministic; the configuration hash goes into status and into the agent pods'
annotations so a change rolls the agents. Validation by the collector's own ``validate`` and
rate limiting arrive with the log-agent work; until then ConfigValid says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from kubeinfer.api import log_policy as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning import children
from kubeinfer.planning.conditions import Observation, with_ready

GATES = (ConditionType.CONFIG_VALID, ConditionType.APPLIED)
COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib:0.139.0"
CONFIG_HASH_ANNOTATION = "kubeinfer.io/log-config-hash"
LEVELS: tuple[api.Level, ...] = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")

PRESET_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "phone": r"\+?[0-9][0-9 ().-]{7,}[0-9]",
    "creditCard": r"\b(?:[0-9][ -]?){13,19}\b",
    "ipAddress": r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b",
    "jwt": r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+",
    "bearerToken": r"(?i)bearer\s+[A-Za-z0-9._~+/-]+=*",
    "apiKey": r"(?i)(api[_-]?key|token|secret)[=:]\s*[A-Za-z0-9._-]{8,}",
}


@dataclass(frozen=True)
class Observed:
    """What the controller read: matched pods and the agent DaemonSet's rollout."""

    matched_pods: int = 0
    agents_desired: int | None = None
    agents_updated: int = 0


@dataclass(frozen=True)
class Plan:
    """Desired children and status."""

    children: tuple[children.Manifest, ...]
    observations: tuple[Observation, ...]
    status: dict[str, Any]


def _exporter(output: api.Output) -> tuple[str, dict[str, Any]]:
    name = f"{'debug' if output.type == 'stdout' else output.type.replace('http', 'otlphttp')}/{output.name}"
    retry = {"enabled": True, "max_elapsed_time": output.max_retry_time}
    if output.type == "stdout":
        return name, {"verbosity": "basic"}
    if output.type == "file":
        return name, {
            "path": f"{output.path}/logs.jsonl",
            "compression": "zstd" if output.compression == "zstd" else "",
        }
    compression = "none" if output.compression == "none" else output.compression
    body = {"endpoint": output.endpoint, "compression": compression, "retry_on_failure": retry}
    return name, {**body, "sending_queue": {"enabled": True, "storage": "file_storage/queue"}}


def render_config(namespace: str, spec: api.LogPolicySpec) -> dict[str, Any]:
    """Return the collector configuration of a LogPolicy."""
    rates = {lvl: spec.sampling.rates.get(lvl, 1.0) for lvl in LEVELS}
    redact: list[str] = [
        f'replace_pattern(log.body, "{PRESET_PATTERNS[p]}", "****")'.replace("\\", "\\\\")
        for p in spec.redaction.presets
    ]
    for rule in spec.redaction.rules:
        # hash: the whole match ($0, written $$0 to escape config expansion) becomes its SHA-256.
        replacement = '"****"' if rule.action == "mask" else '"$$0", SHA256, "sha256:%s"'
        pattern = rule.pattern.replace("\\", "\\\\").replace('"', '\\"')
        redact.append(f'replace_pattern(log.body, "{pattern}", {replacement})')
    exporters = dict(_exporter(o) for o in spec.outputs)
    processors: dict[str, Any] = {
        "batch": {},
        "transform/redact": {"log_statements": [{"context": "log", "statements": redact}]},
    }
    connectors: dict[str, Any] = {
        "routing/level": {
            "default_pipelines": ["logs/INFO"],
            "table": [
                {
                    "context": "log",
                    "condition": f'severity_text == "{lvl}"',
                    "pipelines": [f"logs/{lvl}"],
                }
                for lvl in LEVELS
            ],
        },
        "failover/outputs": {
            "priority_levels": [[f"logs/out-{o.name}"] for o in spec.outputs],
            "retry_interval": "30s",
        },
    }
    pipelines: dict[str, Any] = {
        "logs/in": {"receivers": ["filelog"], "processors": [], "exporters": ["routing/level"]},
    }
    for lvl in LEVELS:
        sampler = f"probabilistic_sampler/{lvl}"
        processors[sampler] = {
            "sampling_percentage": round(rates[lvl] * 100, 6),
            "attribute_source": "record",
            "from_attribute": spec.sampling.consistent_key,
            "mode": "hash_seed",
        }
        pipelines[f"logs/{lvl}"] = {
            "receivers": ["routing/level"],
            "processors": [sampler, "transform/redact", "batch"],
            "exporters": ["failover/outputs"],
        }
    for out, (exporter, _) in zip(spec.outputs, exporters.items(), strict=True):
        pipelines[f"logs/out-{out.name}"] = {
            "receivers": ["failover/outputs"],
            "processors": [],
            "exporters": [exporter],
        }
    return {
        "receivers": {
            "filelog": {
                "include": [f"/var/log/pods/{namespace}_*/*/*.log"],
                "include_file_path": True,
                "start_at": "end",
                "operators": [{"type": "container", "id": "container-parser"}],
            }
        },
        "extensions": {"file_storage/queue": {"directory": "/var/lib/kubeinfer/queue"}},
        "processors": processors,
        "connectors": connectors,
        "exporters": exporters,
        "service": {"extensions": ["file_storage/queue"], "pipelines": pipelines},
    }


def plan(owner: children.Owner, spec: api.LogPolicySpec, observed: Observed) -> Plan:
    """Return the agent ConfigMap, DaemonSet and status of a LogPolicy."""
    config_text = yaml.safe_dump(render_config(owner.namespace, spec), sort_keys=True, width=120)
    digest = children.content_hash(config_text)
    name = children.dns_name(owner.name, "log-agent")
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": children.metadata(owner, name),
        "data": {"collector.yaml": config_text},
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
                    "containers": [
                        {
                            "name": "collector",
                            "image": COLLECTOR_IMAGE,
                            "args": ["--config=/etc/kubeinfer/collector.yaml"],
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/etc/kubeinfer"},
                                {"name": "pods", "mountPath": "/var/log/pods", "readOnly": True},
                                {"name": "queue", "mountPath": "/var/lib/kubeinfer"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": name}},
                        {"name": "pods", "hostPath": {"path": "/var/log/pods"}},
                        {
                            "name": "queue",
                            "hostPath": {"path": "/var/lib/kubeinfer", "type": "DirectoryOrCreate"},
                        },
                    ],
                },
            },
        },
    }
    config_valid = Observation.unknown(
        ConditionType.CONFIG_VALID,
        Reason.NOT_IMPLEMENTED,
        "The rendered collector configuration is not yet checked by the collector's own validate.",
    )
    if observed.agents_desired is None:
        applied = Observation.unknown(
            ConditionType.APPLIED, Reason.AGENTS_ROLLING, "The agent DaemonSet is being created."
        )
    elif observed.agents_updated < observed.agents_desired:
        applied = Observation.false(
            ConditionType.APPLIED,
            Reason.AGENTS_ROLLING,
            f"{observed.agents_updated} of {observed.agents_desired} agents run configuration {digest}.",
        )
    else:
        applied = Observation.true(
            ConditionType.APPLIED, Reason.AS_EXPECTED, f"Every agent runs configuration {digest}."
        )
    status = {
        "matchedTargets": observed.matched_pods,
        "outputs": len(spec.outputs),
        "configHash": digest,
    }
    objs = (children.stamp_hash(config_map), children.stamp_hash(daemon_set))
    return Plan(objs, with_ready((config_valid, applied), GATES), status)
