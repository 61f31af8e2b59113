"""Render a LogPolicy into the log agent's configuration: an OpenTelemetry Collector config.

Owns: the collector pipeline and every OTTL statement in it. Must not: do I/O, read a clock, or
decide status (``planning.log_policy`` does); the agent binary and its component list are
``collector/builder-config.yaml``.

One logs pipeline, stage by stage::

    filelog (container logs; JSON or plain-text lines -> severity, trace id)
    -> transform/classify   always-keep mark, per-level sampling priority and weight
    -> filter/levels-off    levels whose rate is 0 (never an always-keep record)
    -> kubeinfer_diskguard  disk-pressure ladder: past the thresholds, priority x0.1 below ERROR
                            (the file exporter also rotates earlier, then trims rotated files)
    -> probabilistic_sampler (hash_seed mode, one seed for the cluster: a trace id gets the same
                              decision on every agent; per-record priority = level rate, so a
                              trace kept at a low rate is kept at every higher rate)
    -> kubeinfer_ratelimit  token bucket per pod and level (kubeinfer's own processor)
    -> transform/redact     presets and custom rules on the body; helper attributes removed
    -> kubeinfer_luhn       card numbers whose Luhn checksum holds (kubeinfer's own processor)
    -> batch -> kubeinfer_failover (kubeinfer's own connector) -> one pipeline per output
                (file outputs: kubeinfer_file, rotated by size, kept by count and age, zstd)

With ``audit.enabled``, a second pipeline from the same receiver keeps only records matching
``audit.match`` (no sampling, no rate limit), redacts them and appends them to a hash-chained
file through ``kubeinfer_audit`` (kubeinfer's own exporter; ``kubeinfer audit verify`` checks it).

Every kept record carries ``kubeinfer.sampling.weight`` (1 / rate of its level, 1 when always
kept) next to the sampler's own ``sampling.threshold``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from kubeinfer.api import base
from kubeinfer.api import log_policy as api

#: One seed for every agent in the cluster, so decisions agree across nodes and policies.
HASH_SEED = 1_000_003
#: Severity-number bands of the OpenTelemetry log data model; 0 (unspecified) counts as INFO.
SEVERITY_BANDS: dict[api.Level, tuple[int, int]] = {
    "TRACE": (1, 4),
    "DEBUG": (5, 8),
    "INFO": (9, 12),
    "WARN": (13, 16),
    "ERROR": (17, 20),
    "FATAL": (21, 24),
}
LEVELS: tuple[api.Level, ...] = tuple(SEVERITY_BANDS)
WEIGHT_ATTRIBUTE = "kubeinfer.sampling.weight"
KEEP_ATTRIBUTE = "kubeinfer.always_keep"
PRIORITY_ATTRIBUTE = "kubeinfer.sampling.priority"
SAMPLE_KEY_ATTRIBUTE = "kubeinfer.sample_key"
HASH_KEY_ENV = "KUBEINFER_REDACTION_KEY"
QUEUE_STORAGE = "file_storage/queue"
METRICS_PORT = 8888
AUDIT_FILE = "audit.log"
DISK_GUARD = "kubeinfer_diskguard"
REPORT = "kubeinfer_report"
REPORT_INTERVAL = "10s"


@dataclasses.dataclass(frozen=True)
class Reporting:
    """Where the agent posts its counts and disk-pressure level, and who it is."""

    endpoint: str
    namespace: str
    policy: str
    node: str
    token_file: str | None = None
    """A projected ServiceAccount token the agent sends as its bearer token."""


@dataclasses.dataclass(frozen=True)
class Source:
    """What the agent reads: the node's container log files (CRI or docker framing, pod and
    container named by the path) or a server's own log files (plain lines; ``resource`` names
    where they come from, so rate limits still key by pod)."""

    container_logs: bool = True
    exclude: tuple[str, ...] = ()
    resource: Mapping[str, str] = dataclasses.field(default_factory=dict)


#: Under disk pressure, records below ERROR that are not always kept are sampled 10x harder.
PRESSURE_TIGHTEN_FACTOR = 0.1

#: RE2 patterns, applied in this order (broad ones last, after narrower ones masked their part).
#: ``${1}`` keeps a captured prefix (``Bearer ``, ``api_key=``) and masks the rest.
#: ``creditCard`` is not among them: ``kubeinfer_luhn`` masks a digit run only when its Luhn
#: checksum holds, which OTTL cannot compute.
PRESET_PATTERNS: dict[api.RedactionPreset, tuple[str, str]] = {
    "jwt": (r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", ""),
    "bearerToken": (r"(?i)(bearer\s+)[A-Za-z0-9._~+/-]+=*", "${1}"),
    "apiKey": (
        r"(?i)((?:api[_-]?key|access[_-]?token|auth[_-]?token|secret|password|token)"
        r"[\"']?\s*[=:]\s*[\"']?)[A-Za-z0-9._~+/-]{8,}"
        r"|\b(?:sk-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,})\b",
        "${1}",
    ),
    "email": (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", ""),
    "ipAddress": (
        r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
        r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b"
        r"|\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b",
        "",
    ),
    "phone": (r"\+[0-9]{1,3}[ .-]?\(?[0-9]{1,4}\)?(?:[ .-]?[0-9]{2,4}){2,4}", ""),
}
PRESET_ORDER: tuple[api.RedactionPreset, ...] = (*PRESET_PATTERNS, "creditCard")
#: Attribute keys that name a credential; with the apiKey preset such attributes are dropped.
CREDENTIAL_KEYS = (
    r"(?i)^(.*[._-])?(api[_-]?key|access[_-]?token|auth[_-]?token|token|secret|password"
    r"|passwd|authorization|cookie)$"
)
LUHN = "kubeinfer_luhn"


def ottl_string(text: str) -> str:
    """``text`` as an OTTL string literal inside collector YAML (``$`` escaped for confmap)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
    return f'"{escaped}"'


def level_condition(level: api.Level) -> str:
    """OTTL condition true for records of ``level`` (unspecified severity counts as INFO)."""
    low, high = SEVERITY_BANDS[level]
    band = f"severity_number >= {low} and severity_number <= {high}"
    return f"(({band}) or severity_number == 0)" if level == "INFO" else f"({band})"


def _not_kept() -> str:
    return f'attributes["{KEEP_ATTRIBUTE}"] == nil'


def _rates(spec: api.LogPolicySpec) -> dict[api.Level, float]:
    return {level: spec.sampling.rates.get(level, 1.0) for level in LEVELS}


def _classify(spec: api.LogPolicySpec) -> list[str]:
    statements = [
        # A JSON line whose message is an object or a number: redaction works on strings.
        "set(body, String(body)) where body != nil and not IsString(body)",
        f'set(attributes["{SAMPLE_KEY_ATTRIBUTE}"], body) where IsString(body)',
        f'set(attributes["{WEIGHT_ATTRIBUTE}"], 1.0)',
    ]
    if spec.sampling.always_keep:
        pattern = "|".join(f"(?:{p})" for p in spec.sampling.always_keep)
        statements.append(
            f'set(attributes["{KEEP_ATTRIBUTE}"], true) where IsString(body) and '
            f"IsMatch(body, {ottl_string(pattern)})"
        )
    for level, rate in _rates(spec).items():
        if 0 < rate < 1:
            where = f"{level_condition(level)} and {_not_kept()}"
            statements.append(
                f'set(attributes["{PRIORITY_ATTRIBUTE}"], {rate * 100!r}) where {where}'
            )
            statements.append(f'set(attributes["{WEIGHT_ATTRIBUTE}"], {1 / rate!r}) where {where}')
    return statements


def _rule_replacement(rule: api.RedactionRule) -> str:
    """The replacement arguments of a custom rule: a mask, or a keyed SHA-256 of the match."""
    if rule.action == "mask":
        return ottl_string(f"<redacted:{rule.name}>")
    key = "${env:" + HASH_KEY_ENV + "}"  # SHA-256(key || match): equal values stay joinable
    return f'"{key}$${{0}}", SHA256, {ottl_string(f"<{rule.name}:%s>")}'


def _redact(spec: api.LogPolicySpec) -> list[str]:
    """Redaction of the body and of every string attribute value (a JSON line's other fields
    are attributes): helper attributes removed, nested attributes flattened, attributes named
    like credentials dropped (with the ``apiKey`` preset), then each pattern on the body and,
    in fewer passes, on attribute values (presets without a kept prefix share one pass)."""
    presets = [p for p in PRESET_PATTERNS if p in spec.redaction.presets]
    statements = [
        f'delete_key(attributes, "{helper}")'
        for helper in (SAMPLE_KEY_ATTRIBUTE, KEEP_ATTRIBUTE, PRIORITY_ATTRIBUTE)
    ]
    statements.append("flatten(attributes)")
    if "apiKey" in presets:
        statements.append(f"delete_matching_keys(attributes, {ottl_string(CREDENTIAL_KEYS)})")
    for preset in presets:
        pattern, keep = PRESET_PATTERNS[preset]
        replacement = ottl_string(f"{keep}<redacted:{preset}>")
        statements.append(
            f"replace_pattern(body, {ottl_string(pattern)}, {replacement}) where IsString(body)"
        )
        if keep:
            statements.append(
                f'replace_all_patterns(attributes, "value", {ottl_string(pattern)}, {replacement})'
            )
    plain = [PRESET_PATTERNS[p][0] for p in presets if not PRESET_PATTERNS[p][1]]
    if plain:
        merged = ottl_string("|".join(f"(?:{p})" for p in plain))
        statements.append(f'replace_all_patterns(attributes, "value", {merged}, "<redacted>")')
    for rule in spec.redaction.rules:
        regex, tail = ottl_string(rule.pattern), _rule_replacement(rule)
        statements.append(f"replace_pattern(body, {regex}, {tail}) where IsString(body)")
        statements.append(f'replace_all_patterns(attributes, "value", {regex}, {tail})')
    return statements


#: Resource attributes (set by filelog from the log path) that key a token bucket.
RATE_LIMIT_KEYS: dict[str, list[str]] = {
    "pod": ["k8s.namespace.name", "k8s.pod.name"],
    "container": ["k8s.namespace.name", "k8s.pod.name", "k8s.container.name"],
    "namespace": ["k8s.namespace.name"],
}


def _rate_limits(spec: api.LogPolicySpec) -> dict[str, Any]:
    """One token bucket per key and limit; a record counts against the first limit holding it."""
    limits = []
    for index, limit in enumerate(spec.rate_limits):
        low, high = (1, 24) if limit.level is None else SEVERITY_BANDS[limit.level]
        limits.append(
            {
                "name": f"{index}-{limit.level or 'ALL'}",
                "key_attributes": RATE_LIMIT_KEYS[limit.key],
                "min_severity": 0 if limit.level in (None, "INFO") else low,
                "max_severity": high,
                "per_second": limit.per_second,
                "burst": limit.burst,
            }
        )
    return {"limits": limits}


def _exporter(
    output: api.Output, retention: api.Retention, *, last: bool
) -> tuple[str, dict[str, Any]]:
    """Exporter of one output. Only the last output queues (on disk): the others must fail fast
    back to the failover connector after their bounded retry."""
    if output.type == "stdout":
        return f"debug/{output.name}", {"verbosity": "detailed"}
    if output.type == "file":  # synchronous: a full disk fails over like a refusing server
        return f"kubeinfer_file/{output.name}", {
            "directory": output.path,
            "max_size_bytes": int(base.quantity_value(retention.max_size)),
            "max_age": retention.max_age,
            "max_files": retention.max_files,
        }
    budget = base.duration_seconds(output.max_retry_time)
    retry = {
        "enabled": True,
        "initial_interval": f"{min(1.0, budget):g}s",
        "max_interval": f"{min(10.0, budget):g}s",
        "max_elapsed_time": output.max_retry_time,
    }
    # The persistent queue counts batches: at most 4096 records, about 1 MiB of typical lines.
    queue_batches = max(1, int(base.quantity_value(output.queue_size) // (1 << 20)))
    queue: dict[str, Any] = (
        {"enabled": True, "storage": QUEUE_STORAGE, "queue_size": queue_batches}
        if last
        else {"enabled": False}
    )
    body: dict[str, Any] = {
        "endpoint": output.endpoint,
        "compression": output.compression,
        "retry_on_failure": retry,
        "sending_queue": queue,
    }
    if output.type == "otlp":
        return f"otlp/{output.name}", body
    return f"otlphttp/{output.name}", {**body, "encoding": "json"}


def render_config(
    spec: api.LogPolicySpec,
    *,
    include: list[str],
    state_dir: str,
    volume: str = "/var/log",
    metrics_port: int = METRICS_PORT,
    reporting: Reporting | None = None,
    source: Source | None = None,
) -> dict[str, Any]:
    """The collector configuration of ``spec`` reading ``include`` globs, keeping state in
    ``state_dir`` (file offsets and the output queue survive restarts) and serving its own
    metrics (records seen, sampled, rate-limited, sent per output) on loopback. ``volume`` is
    the filesystem the disk-pressure ladder watches; with ``reporting`` the agent posts its
    counts and disk-pressure level to the operator. ``source`` says what the files are
    (container logs by default)."""
    outputs = spec.outputs
    exporters = dict(
        _exporter(o, spec.retention, last=i == len(outputs) - 1) for i, o in enumerate(outputs)
    )
    processors, chain, redact = _processors(spec, volume)
    out_pipelines = [f"logs/out-{o.name}" for o in outputs]
    pipelines: dict[str, Any] = {
        "logs": {
            "receivers": ["filelog"],
            "processors": chain,
            "exporters": ["kubeinfer_failover"],
        },
    }
    for name, exporter in zip(out_pipelines, exporters, strict=True):
        pipelines[name] = {"receivers": ["kubeinfer_failover"], "exporters": [exporter]}
    if spec.audit.enabled and spec.audit.match:
        audit_processors, audit_exporters, audit_pipelines = _audit(spec, state_dir, redact)
        processors |= audit_processors
        exporters |= audit_exporters
        pipelines |= audit_pipelines
    extensions = _extensions(state_dir, reporting, metrics_port)
    return {
        "receivers": {"filelog": _filelog(include, source or Source())},
        "extensions": extensions,
        "processors": processors,
        "connectors": {"kubeinfer_failover": {"priority": out_pipelines}},
        "exporters": exporters,
        "service": {
            "extensions": sorted(extensions),
            "pipelines": pipelines,
            "telemetry": _telemetry(metrics_port),
        },
    }


def _processors(
    spec: api.LogPolicySpec, volume: str
) -> tuple[dict[str, Any], list[str], list[str]]:
    """The main pipeline's processors, their order, and the redaction steps (audit reuses them)."""
    off = [
        f"{level_condition(level)} and {_not_kept()}"
        for level, rate in _rates(spec).items()
        if rate == 0
    ]
    processors: dict[str, Any] = {
        "transform/classify": {
            "error_mode": "ignore",
            "log_statements": [{"context": "log", "statements": _classify(spec)}],
        },
        "probabilistic_sampler": {
            "mode": "hash_seed",
            "hash_seed": HASH_SEED,
            "sampling_percentage": 100,
            "attribute_source": "traceID",
            "from_attribute": SAMPLE_KEY_ATTRIBUTE,
            "sampling_priority": PRIORITY_ATTRIBUTE,
            "fail_closed": False,
        },
        "transform/redact": {
            "error_mode": "ignore",
            "log_statements": [{"context": "log", "statements": _redact(spec)}],
        },
        "batch": {"send_batch_size": 2048, "send_batch_max_size": 4096, "timeout": "1s"},
    }
    chain = ["transform/classify"]
    if off:
        processors["filter/levels-off"] = {
            "error_mode": "ignore",
            "logs": {"log_record": off},
        }
        chain.append("filter/levels-off")
    processors[DISK_GUARD] = {
        "path": volume,
        "bytes_percent": spec.disk_pressure.used_percent,
        "inodes_percent": spec.disk_pressure.inode_percent,
        "interval": "2s",
        "tighten_factor": PRESSURE_TIGHTEN_FACTOR,
        "protect_min_severity": SEVERITY_BANDS["ERROR"][0],
        "priority_attribute": PRIORITY_ATTRIBUTE,
        "weight_attribute": WEIGHT_ATTRIBUTE,
        "keep_attribute": KEEP_ATTRIBUTE,
    }
    chain += [DISK_GUARD, "probabilistic_sampler"]
    if spec.rate_limits:
        processors["kubeinfer_ratelimit"] = _rate_limits(spec)
        chain.append("kubeinfer_ratelimit")
    redact = ["transform/redact"]
    if "creditCard" in spec.redaction.presets:
        processors[LUHN] = {"replacement": "<redacted:creditCard>"}
        redact.append(LUHN)
    chain += [*redact, "batch"]
    return processors, chain, redact


def _audit(
    spec: api.LogPolicySpec, state_dir: str, redact: list[str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Processors, exporters and pipelines of the audit stream: records matching the audit
    patterns bypass sampling and rate limits; redacted, then hash-chained to a file."""
    pattern = ottl_string("|".join(f"(?:{p})" for p in spec.audit.match))
    processors = {
        "filter/audit": {
            "error_mode": "ignore",
            "logs": {"log_record": [f"not IsString(body) or not IsMatch(body, {pattern})"]},
        }
    }
    exporters = {"kubeinfer_audit": {"path": f"{state_dir}/{AUDIT_FILE}"}}
    pipelines = {
        "logs/audit": {
            "receivers": ["filelog"],
            "processors": ["filter/audit", *redact],
            "exporters": ["kubeinfer_audit"],
        }
    }
    return processors, exporters, pipelines


def _extensions(state_dir: str, reporting: Reporting | None, metrics_port: int) -> dict[str, Any]:
    """The persistent queue's storage and, when the agent reports, the reporter."""
    extensions: dict[str, Any] = {
        QUEUE_STORAGE: {"directory": state_dir, "create_directory": True},
    }
    if reporting is not None:
        extensions[REPORT] = {
            **{k: v for k, v in dataclasses.asdict(reporting).items() if v is not None},
            "metrics_url": f"http://127.0.0.1:{metrics_port}/metrics",
            "interval": REPORT_INTERVAL,
        }
    return extensions


def _telemetry(metrics_port: int) -> dict[str, Any]:
    """The collector's own metrics, pulled on loopback (the reporter reads them)."""
    return {
        "metrics": {
            "level": "normal",
            "readers": [
                {"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": metrics_port}}}}
            ],
        }
    }


def _filelog(include: list[str], source: Source) -> dict[str, Any]:
    """Log files: CRI/docker framing for container logs, then a JSON or ``LEVEL message`` line."""
    json_line = 'body matches "^\\\\s*\\\\{"'
    receiver: dict[str, Any] = {"include": include}
    if source.exclude:
        receiver["exclude"] = list(source.exclude)
    if source.resource:
        receiver["resource"] = dict(sorted(source.resource.items()))
    framing = [{"type": "container", "id": "container"}] if source.container_logs else []
    return {
        **receiver,
        "include_file_path": True,
        "start_at": "end",
        "storage": QUEUE_STORAGE,
        "operators": [
            *framing,
            {
                "type": "json_parser",
                "if": json_line,
                "parse_from": "body",
                "parse_to": "attributes",
                "severity": {"parse_from": "attributes.level", "preserve_to": "attributes.level"},
                "trace": {"trace_id": {"parse_from": "attributes.trace_id"}},
            },
            {
                "type": "move",
                "if": "attributes.msg != nil",
                "from": "attributes.msg",
                "to": "body",
            },
            {
                "type": "regex_parser",
                "if": f"not ({json_line})",
                "regex": "^(?P<level>TRACE|DEBUG|INFO|WARN(?:ING)?|ERROR|FATAL|CRITICAL)\\b",
                "parse_from": "body",
                "parse_to": "attributes",
                "on_error": "send_quiet",
                "severity": {"parse_from": "attributes.level"},
            },
        ],
    }
