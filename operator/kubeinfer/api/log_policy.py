"""The LogPolicy kind: sampling, rate limits, redaction, routing and retention of inference logs.

Owns the spec and status models only. Rendering into the log agent's configuration lives in
``planning``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubeinfer.api.base import (
    ApiModel,
    Duration,
    Fraction,
    LabelSelector,
    Percent,
    Quantity,
    with_rules,
)
from kubeinfer.api.conditions import Condition

KIND = "LogPolicy"
PLURAL = "logpolicies"

Level = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
DEFAULT_RATES: dict[Level, float] = {"ERROR": 1.0, "WARN": 1.0, "INFO": 0.1, "DEBUG": 0.0}
RedactionPreset = Literal[
    "email", "phone", "creditCard", "ipAddress", "jwt", "bearerToken", "apiKey"
]
DEFAULT_PRESETS: tuple[RedactionPreset, ...] = (
    "email",
    "creditCard",
    "jwt",
    "bearerToken",
    "apiKey",
)


class Sampling(ApiModel):
    """Per-level sampling, consistent by trace id."""

    rates: dict[Level, Fraction] = Field(default_factory=lambda: dict(DEFAULT_RATES))
    """Fraction of records kept per level; levels not listed keep everything."""
    consistent_key: str = Field(default="trace_id", max_length=253)
    """Attribute whose hash decides sampling, so a trace is kept or dropped whole."""
    always_keep: list[str] = Field(
        default_factory=lambda: [
            "CUDA out of memory",
            "NCCL.*(timeout|Timeout|WARN)",
            "Xid",
            "ECC error",
        ],
        max_length=64,
    )
    """Regular expressions; a matching record is always kept."""


class RateLimit(ApiModel):
    """A token bucket per key and level."""

    level: Level | None = None
    """Level the limit applies to; empty applies to all."""
    per_second: float = Field(gt=0)
    """Sustained records per second."""
    burst: int = Field(default=100, ge=1)
    """Bucket size."""
    key: Literal["pod", "container", "namespace"] = "pod"
    """What each bucket is kept per."""


class RedactionRule(ApiModel):
    """A custom redaction rule."""

    name: str = Field(min_length=1, max_length=63)
    """Rule name, recorded in counts."""
    pattern: str = Field(min_length=1, max_length=1024)
    """Regular expression (RE2 syntax) of what to redact."""
    action: Literal["mask", "hash"] = "mask"
    """mask replaces with ****; hash replaces with a keyed hash so equal values stay joinable."""


class Redaction(ApiModel):
    """What is scrubbed from records before they leave the node."""

    model_config = with_rules(
        [
            {
                "rule": "!self.rules.exists(r, r.action == 'hash') || has(self.hashKeySecret)",
                "message": "hash rules need hashKeySecret (a Secret with the hashing key in 'key')",
            },
        ]
    )

    presets: list[RedactionPreset] = Field(
        default_factory=lambda: list(DEFAULT_PRESETS), max_length=16
    )
    """Built-in detectors."""
    rules: list[RedactionRule] = Field(default_factory=list, max_length=64)
    """Custom rules."""
    hash_key_secret: str | None = Field(default=None, max_length=253)
    """Secret (same namespace, data key 'key', letters and digits) keying hash actions."""


class Output(ApiModel):
    """A destination; outputs are tried in list order (failover)."""

    model_config = with_rules(
        [
            {
                "rule": "self.type == 'stdout' || has(self.endpoint) || has(self.path)",
                "message": "otlp and http outputs need endpoint; file outputs need path",
            },
        ]
    )

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """Output name."""
    type: Literal["stdout", "file", "otlp", "http"]
    """Kind of destination."""
    endpoint: str | None = Field(default=None, max_length=2048)
    """URL for otlp and http."""
    path: str | None = Field(default=None, max_length=1024)
    """Host directory for file: JSON lines, rotated per retention into zstd files."""
    compression: Literal["none", "gzip", "zstd"] = "zstd"
    """Compression of otlp and http outputs; file outputs always zstd-compress rotated files."""
    max_retry_time: Duration = "5m"
    """How long a batch is retried (backing off up to 10 s) before the next output takes over."""
    queue_size: Quantity = "512Mi"
    """Cap of the on-disk queue, which only the last output has (counted in ~1 MiB batches)."""


class Retention(ApiModel):
    """File rotation and retention."""

    max_age: Duration = "168h"
    """Delete files older than this."""
    max_size: Quantity = "100Mi"
    """Rotate a file at this size."""
    max_files: int = Field(default=10, ge=1, le=1000)
    """Rotated files kept."""


class DiskPressure(ApiModel):
    """Thresholds that start the disk-pressure ladder, before kubelet's eviction thresholds."""

    used_percent: Percent = 85
    """Bytes used on the log volume."""
    inode_percent: Percent = 90
    """Inodes used on the log volume."""


class Audit(ApiModel):
    """A tamper-evident audit stream."""

    enabled: bool = False
    """Keep an append-only, hash-chained audit stream of records matching match."""
    match: list[str] = Field(default_factory=list, max_length=32)
    """Regular expressions selecting audit records."""


class LogPolicySpec(ApiModel):
    """Desired state of a LogPolicy."""

    model_config = with_rules(
        [
            {
                "rule": "has(self.inferenceService) != has(self.selector)",
                "message": "set exactly one of inferenceService and selector",
            },
            {
                "rule": "self.outputs.map(o, o.name).all(n, self.outputs.filter(o, o.name == n)"
                ".size() == 1)",
                "message": "output names must be unique",
                "fieldPath": ".outputs",
            },
        ]
    )

    inference_service: str | None = Field(default=None, max_length=253)
    """InferenceService whose pods the policy covers."""
    selector: LabelSelector | None = None
    """Label selector of the pods the policy covers."""
    sampling: Sampling = Field(default_factory=Sampling)
    """Per-level sampling."""
    rate_limits: list[RateLimit] = Field(default_factory=list, max_length=16)
    """Token-bucket rate limits."""
    redaction: Redaction = Field(default_factory=Redaction)
    """Redaction."""
    outputs: list[Output] = Field(min_length=1, max_length=8)
    """Destinations in failover order."""
    retention: Retention = Field(default_factory=Retention)
    """File rotation and retention."""
    disk_pressure: DiskPressure = Field(default_factory=DiskPressure)
    """Disk-pressure thresholds."""
    audit: Audit = Field(default_factory=Audit)
    """Audit stream."""


class RecordCounts(ApiModel):
    """Records the policy's agents handled since they started, summed over the agents."""

    seen: int = 0
    """Records read from log files."""
    kept: int = 0
    """Records an output accepted."""
    dropped: dict[str, int] = Field(default_factory=dict)
    """Records dropped, by reason: levelOff, sampling, rateLimit, undelivered."""


class LogPolicyStatus(ApiModel):
    """Observed state of a LogPolicy."""

    observed_generation: int = 0
    """The metadata.generation the status describes."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready and the aspect conditions."""
    matched_targets: int = 0
    """Pods the policy covers."""
    outputs: int = 0
    """Outputs configured."""
    config_hash: str = ""
    """Hash of the rendered agent configuration."""
    sidecar_config_hash: str = ""
    """Hash of the collector sidecar's configuration, run in the pods of selected
    InferenceServices that log to files (their pod template's kubeinfer.io/log-config-hash)."""
    records: RecordCounts = Field(default_factory=RecordCounts)
    """Counts the agents reported."""
