"""LogPolicy planning: the checks behind ConfigValid (patterns RE2 accepts, supported outputs,
the collector's validate verdict for this exact hash), Applied from the agents' rollout, the
config hash on status and pod template, and the rendered pipeline's sampling statements (nested
priorities, weights, levels sampled to zero dropped unless always kept).

What the rendered configuration does is proven against the real collector in
``e2e/tests/test_log_policy_replay.py``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from kubeinfer.api import log_policy as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning import children
from kubeinfer.planning import log_policy as planner
from kubeinfer.planning.labels import LOG_CONFIG_HASH_ANNOTATION
from kubeinfer.planning.logs import collector
from kubeinfer.planning.logs import pipeline as log_agent

OWNER = children.Owner("kubeinfer.io/v1alpha1", "LogPolicy", "llama-logs", "ml", "uid-1")


def _spec(**extra: Any) -> api.LogPolicySpec:
    body: dict[str, Any] = {
        "inferenceService": "llama",
        "outputs": [{"name": "out", "type": "http", "endpoint": "http://127.0.0.1:4318"}],
    }
    body.update(extra)
    return api.LogPolicySpec.model_validate(body)


def _digest(spec: api.LogPolicySpec) -> str:
    return children.content_hash(collector.config_text(OWNER, spec))


def _sidecar_digest(spec: api.LogPolicySpec) -> str:
    return children.content_hash(collector.sidecar_config_text(OWNER, spec))


def _conditions(plan: planner.Plan) -> dict[ConditionType, tuple[str, Reason]]:
    return {o.type: (o.status, o.reason) for o in plan.observations}


def _ok(spec: api.LogPolicySpec, **observed: Any) -> planner.Observed:
    return planner.Observed(
        validation=planner.Validation(_digest(spec), None),
        sidecar_validation=planner.Validation(_sidecar_digest(spec), None),
        **observed,
    )


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("token(?=[0-9])", "lookaround"),
        ("(a)\\1", "backreferences"),
        ("user_id=([0-9]+", "missing ), unterminated subpattern"),
    ],
    ids=["lookahead is not RE2", "a backreference is not RE2", "an unbalanced group"],
)
def test_a_pattern_that_does_not_compile_is_reported_as_invalid_regex_naming_the_rule(
    pattern: str, why: str
) -> None:
    spec = _spec(redaction={"rules": [{"name": "user-id", "pattern": pattern}]})
    plan = planner.plan(OWNER, spec, _ok(spec))
    assert _conditions(plan)[ConditionType.CONFIG_VALID] == ("False", Reason.INVALID_REGEX)
    message = next(o.message for o in plan.observations if o.type == ConditionType.CONFIG_VALID)
    assert "redaction rule 'user-id'" in message and why in message
    assert plan.children == (), "no agent runs without its redaction rules"
    assert _conditions(plan)[ConditionType.READY][0] == "False"


def test_an_invalid_always_keep_pattern_names_its_index() -> None:
    spec = _spec(sampling={"alwaysKeep": ["Xid", "NCCL(("]})
    plan = planner.plan(OWNER, spec, _ok(spec))
    message = next(o.message for o in plan.observations if o.type == ConditionType.CONFIG_VALID)
    assert "sampling.alwaysKeep[1]" in message


def test_a_file_output_is_rotated_per_retention_and_its_directory_mounted() -> None:
    spec = _spec(
        outputs=[{"name": "disk", "type": "file", "path": "/var/log/kubeinfer"}],
        retention={"maxSize": "10Mi", "maxAge": "24h", "maxFiles": 3},
    )
    config = log_agent.render_config(spec, include=["/x/*.log"], state_dir="/s")
    assert config["exporters"]["kubeinfer_file/disk"] == {
        "directory": "/var/log/kubeinfer",
        "max_size_bytes": 10 << 20,
        "max_age": "24h",
        "max_files": 3,
    }
    plan = planner.plan(OWNER, spec, _ok(spec))
    daemon_set = next(c for c in plan.children if c["kind"] == "DaemonSet")
    pod = daemon_set["spec"]["template"]["spec"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "out-disk", "mountPath": "/var/log/kubeinfer"} in mounts
    assert any(v["name"] == "out-disk" for v in pod["volumes"])


@pytest.mark.parametrize(
    ("agent", "sidecar", "expected"),
    [
        (None, None, ("Unknown", Reason.VALIDATOR_UNAVAILABLE)),
        ("stale", "ok", ("Unknown", Reason.RECONCILING)),
        ("ok", "stale", ("Unknown", Reason.RECONCILING)),
        ("error", "ok", ("False", Reason.CONFIG_REJECTED)),
        ("ok", "error", ("False", Reason.CONFIG_REJECTED)),
        ("ok", "ok", ("True", Reason.AS_EXPECTED)),
    ],
    ids=[
        "no collector binary leaves ConfigValid unknown",
        "a verdict on another agent hash does not count",
        "a verdict on another sidecar hash does not count",
        "a refusal of the agent configuration is ConfigRejected",
        "a refusal of the sidecar configuration is ConfigRejected",
        "validate passing both hashes is ConfigValid",
    ],
)
def test_config_valid_follows_the_collectors_verdicts_on_these_hashes(
    agent: str | None, sidecar: str | None, expected: tuple[str, Reason]
) -> None:
    spec = _spec()

    def verdict(kind: str | None, digest: str) -> planner.Validation | None:
        if kind is None:
            return None
        if kind == "stale":
            return planner.Validation("stale", None)
        return planner.Validation(digest, "processors::transform: bad" if kind == "error" else None)

    observed = planner.Observed(
        validation=verdict(agent, _digest(spec)),
        sidecar_validation=verdict(sidecar, _sidecar_digest(spec)),
    )
    plan = planner.plan(OWNER, spec, observed)
    assert _conditions(plan)[ConditionType.CONFIG_VALID] == expected
    if expected[1] == Reason.CONFIG_REJECTED:
        which = "agent" if agent == "error" else "sidecar"
        assert f"refused {which} configuration" in plan.observations[0].message


@pytest.mark.parametrize(
    ("desired", "updated", "expected"),
    [
        (None, 0, ("Unknown", Reason.AGENTS_ROLLING)),
        (3, 1, ("False", Reason.AGENTS_ROLLING)),
        (3, 3, ("True", Reason.AS_EXPECTED)),
    ],
    ids=["no DaemonSet yet", "agents still rolling", "every agent updated"],
)
def test_applied_follows_the_agents_rollout(
    desired: int | None, updated: int, expected: tuple[str, Reason]
) -> None:
    spec = _spec()
    plan = planner.plan(OWNER, spec, _ok(spec, agents_desired=desired, agents_updated=updated))
    assert _conditions(plan)[ConditionType.APPLIED] == expected
    assert _conditions(plan)[ConditionType.READY][0] == expected[0]


def test_config_hash_is_on_status_and_pod_template_and_changes_with_the_spec() -> None:
    spec = _spec()
    plan = planner.plan(OWNER, spec, _ok(spec))
    daemon_set = next(c for c in plan.children if c["kind"] == "DaemonSet")
    annotations = daemon_set["spec"]["template"]["metadata"]["annotations"]
    assert annotations[LOG_CONFIG_HASH_ANNOTATION] == plan.status.config_hash
    other = _spec(sampling={"rates": {"INFO": 0.5}})
    assert planner.plan(OWNER, other, _ok(other)).status.config_hash != plan.status.config_hash


def test_rendering_twice_gives_identical_bytes() -> None:
    spec = _spec(rateLimits=[{"level": "INFO", "perSecond": 10}])
    assert collector.config_text(OWNER, spec) == collector.config_text(OWNER, spec)


def test_an_inference_service_policy_reads_only_that_services_pods() -> None:
    assert collector.include_globs("ml", _spec()) == ["/var/log/pods/ml_llama-*/*/*.log"]


def test_sampling_priorities_follow_the_rates_and_zero_rates_are_filtered() -> None:
    spec = _spec(sampling={"rates": {"ERROR": 1.0, "WARN": 0.1, "INFO": 0.001, "DEBUG": 0.0}})
    config = log_agent.render_config(spec, include=["/x/*.log"], state_dir="/s")
    statements = config["processors"]["transform/classify"]["log_statements"][0]["statements"]
    priority = [s for s in statements if log_agent.PRIORITY_ATTRIBUTE in s]
    assert any("0.1)" in s and "severity_number >= 9" in s for s in priority)  # INFO: 0.1 %
    assert any("10.0)" in s and "severity_number >= 13" in s for s in priority)  # WARN: 10 %
    weights = [s for s in statements if log_agent.WEIGHT_ATTRIBUTE in s]
    assert any("1000.0)" in s for s in weights) and any("10.0)" in s for s in weights)
    (dropped,) = config["processors"]["filter/levels-off"]["logs"]["log_record"]
    assert "severity_number >= 5" in dropped and log_agent.KEEP_ATTRIBUTE in dropped
    sampler = config["processors"]["probabilistic_sampler"]
    assert sampler["mode"] == "hash_seed" and sampler["hash_seed"] == log_agent.HASH_SEED


def test_only_the_last_output_queues_so_earlier_ones_fail_over() -> None:
    spec = _spec(
        outputs=[
            {"name": "a", "type": "otlp", "endpoint": "127.0.0.1:4317"},
            {"name": "b", "type": "http", "endpoint": "http://127.0.0.1:4318"},
        ]
    )
    config = log_agent.render_config(spec, include=["/x/*.log"], state_dir="/s")
    assert config["exporters"]["otlp/a"]["sending_queue"] == {"enabled": False}
    assert config["exporters"]["otlphttp/b"]["sending_queue"]["storage"] == "file_storage/queue"
    assert config["connectors"]["kubeinfer_failover"]["priority"] == ["logs/out-a", "logs/out-b"]


def test_each_rate_limit_keeps_its_own_bucket_key_and_severity_band() -> None:
    spec = _spec(
        rateLimits=[
            {"level": "INFO", "perSecond": 100, "burst": 50, "key": "container"},
            {"level": "DEBUG", "perSecond": 10, "key": "namespace"},
        ]
    )
    config = log_agent.render_config(spec, include=["/x/*.log"], state_dir="/s")
    info, debug = config["processors"]["kubeinfer_ratelimit"]["limits"]
    assert info["key_attributes"][-1] == "k8s.container.name"
    assert (info["min_severity"], info["max_severity"]) == (0, 12)  # unspecified counts as INFO
    assert debug["key_attributes"] == ["k8s.namespace.name"]
    assert (debug["min_severity"], debug["max_severity"]) == (5, 8)


def _report(node: str, level: int, seen: int = 10) -> planner.AgentReport:
    return planner.AgentReport(node, seen, seen - 4, (("rateLimit", 1), ("sampling", 3)), level)


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        ((), ("Unknown", Reason.NO_AGENT_REPORTS)),
        ((_report("a", 0), _report("b", 0)), ("False", Reason.AS_EXPECTED)),
        ((_report("a", 0), _report("b", 2)), ("True", Reason.LOG_VOLUME_FILLING)),
    ],
    ids=["no agent reported yet", "every volume below the thresholds", "one node at step 2"],
)
def test_disk_pressure_and_record_counts_come_from_the_agents_reports(
    reports: tuple[planner.AgentReport, ...], expected: tuple[str, Reason]
) -> None:
    spec = _spec()
    plan = planner.plan(OWNER, spec, _ok(spec, reports=reports))
    assert _conditions(plan)[ConditionType.DISK_PRESSURE] == expected
    assert plan.status.records.seen == 10 * len(reports)
    if reports:
        assert plan.status.records.dropped == {"rateLimit": 2, "sampling": 6}
    if expected[0] == "True":
        message = next(o.message for o in plan.observations if o.type == "DiskPressure")
        assert "b at step 2" in message and "a at" not in message


@pytest.mark.parametrize(
    ("key", "dropped"),
    [
        ("api_key", True),
        ("db.password", True),
        ("Authorization", True),
        ("user.auth-token", True),
        ("token_count", False),
        ("max_tokens", False),
        ("kubeinfer.sampling.weight", False),
    ],
)
def test_attributes_named_like_credentials_are_dropped_and_others_kept(
    key: str, dropped: bool
) -> None:
    assert bool(re.match(log_agent.CREDENTIAL_KEYS, key)) is dropped


def test_redaction_covers_attribute_values_for_presets_and_rules() -> None:
    spec = _spec(redaction={"rules": [{"name": "uid", "pattern": "uid=[0-9]+"}]})
    config = log_agent.render_config(spec, include=["/x/*.log"], state_dir="/s")
    statements = config["processors"]["transform/redact"]["log_statements"][0]["statements"]
    assert "flatten(attributes)" in statements
    assert any(s.startswith("delete_matching_keys(attributes") for s in statements)
    assert any('replace_all_patterns(attributes, "value", "uid=[0-9]+"' in s for s in statements)
    assert any('"<redacted>")' in s for s in statements), "plain presets share one pass"
