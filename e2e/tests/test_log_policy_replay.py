"""LogPolicy semantics proven by the real log agent (the collector built from
``collector/builder-config.yaml``) replaying generated container logs on loopback.

Covers: the rendered configuration passes the collector's own ``validate`` and an RE2-invalid
rule fails it; over 100,000 replayed lines the kept fraction per level is within 99% binomial
bounds, decisions are consistent by trace id (same on two agents, same for every record of a
trace, nested across levels), always-keep lines survive a level sampled to 0, every kept record
carries its weight, every canary secret is redacted (card numbers only when Luhn-valid) and
keyed hashing is exact; a token-bucket
rate limit per pod and level overshoots by at most 1% over 10 s; with the primary output down every record reaches
the secondary; a file output rotates before max size, keeps max files, ages files out and
compresses them with zstd; on a filling volume the disk-pressure ladder samples 10x harder
(consistently, never ERROR or always-keep), then rotates at a quarter of the size, then keeps one
rotated file, never touches the audit file, and reverts when the volume empties; the audit stream is hash-chained and ``kubeinfer audit verify`` finds one flipped
byte, a removed record and a removed tail; the collector sidecar's configuration reads a
server's plain ``*.log`` files (no container framing) as records of its pod, parsed and redacted.
"""

from __future__ import annotations

import hashlib
import json
import math
import pathlib
import random
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
import zstandard

from e2e.harness import log_replay, otelcol, processes, versions
from kubeinfer import audit
from kubeinfer.api import log_policy as api
from kubeinfer.planning import children
from kubeinfer.planning.logs import collector as log_collector
from kubeinfer.planning.logs import pipeline as log_agent

RATES = {"ERROR": 1.0, "WARN": 0.1, "INFO": 0.01, "DEBUG": 0.0}
TRACES = 20_000
LEVELS_PER_TRACE = ("DEBUG", "INFO", "INFO", "WARN", "ERROR")
Z_99 = 2.5758  # two-sided 99% normal quantile
HASH_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
NOT_A_CARD = "4111111111111112"  # 16 digits whose Luhn checksum fails: an order id, kept
CANARIES = {
    "email": "alice.canary@example.com",
    "creditCard": "4111 1111 1111 1111",
    "creditCard-dashed": "5500-0000-0000-0004",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlY2FuYXJ5",
    "bearerToken": "Bearer abcDEF123canaryTOKEN456",
    "apiKey": "api_key=canaryKEY0123456789",
    "apiKey-openai": "sk-canary0123456789abcdefghijk",
    "password": "password: hunter2canarySECRET",
    "ipAddress": "10.1.2.3",
    "ipv6": "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "phone": "+1 415 555 0100",
}


@pytest.fixture(scope="module")
def collector() -> pathlib.Path:
    """The log agent binary (built on first use, then cached)."""
    return otelcol.ensure_collector()


@pytest.fixture
def supervisor() -> Iterator[processes.Supervisor]:
    """Processes of one test, stopped afterwards."""
    with processes.Supervisor() as running:
        yield running


def _spec(outputs: list[dict[str, Any]], **extra: Any) -> api.LogPolicySpec:
    return api.LogPolicySpec.model_validate(
        {
            "inferenceService": "llama",
            "sampling": {"rates": RATES},
            "redaction": {
                "presets": list(log_agent.PRESET_ORDER),
                "rules": [{"name": "user-id", "pattern": "user_id=[0-9]+", "action": "hash"}],
            },
            "outputs": outputs,
            **extra,
        }
    )


def _http(name: str, sink: log_replay.Sink, retry: str = "5m") -> dict[str, Any]:
    return {
        "name": name,
        "type": "http",
        "endpoint": sink.endpoint,
        "compression": "gzip",
        "maxRetryTime": retry,
    }


def _start(
    supervisor: processes.Supervisor,
    collector: pathlib.Path,
    spec: api.LogPolicySpec,
    workdir: pathlib.Path,
    logs: pathlib.Path,
    *,
    volume: pathlib.Path | None = None,
) -> log_replay.Agent:
    """Start an agent for ``spec``; its state (queue, audit file) lives on ``volume`` if given."""
    port = processes.free_port()
    config = log_agent.render_config(
        spec,
        include=[f"{logs}/*/*/*.log"],
        state_dir=str((volume or workdir) / "state"),
        volume=str(volume or workdir),
        metrics_port=port,
    )
    return log_replay.start_agent(
        supervisor,
        binary=collector,
        config=config,
        workdir=workdir,
        metrics_port=port,
        env={log_agent.HASH_KEY_ENV: HASH_KEY, "PATH": "/usr/bin:/bin"},
    )


def _validate(collector: pathlib.Path, spec: api.LogPolicySpec, tmp: pathlib.Path) -> str:
    config = log_agent.render_config(spec, include=["/var/log/pods/*/*/*.log"], state_dir=str(tmp))
    path = tmp / "collector.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        [str(collector), "validate", f"--config={path}"],
        capture_output=True,
        text=True,
        env={log_agent.HASH_KEY_ENV: HASH_KEY},
        check=False,
    )
    return "" if result.returncode == 0 else result.stderr


def test_rendered_configuration_passes_the_collectors_validate(
    collector: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    sink = log_replay.Sink()
    try:
        spec = _spec(
            [_http("primary", sink), _http("secondary", sink)],
            rateLimits=[{"level": "INFO", "perSecond": 100, "burst": 50}],
        )
        assert _validate(collector, spec, tmp_path) == ""
    finally:
        sink.close()


def test_a_pattern_re2_cannot_compile_fails_validate_naming_it(
    collector: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    spec = _spec([{"name": "out", "type": "stdout"}])
    spec.redaction.rules.append(api.RedactionRule(name="lookahead", pattern="token(?=[0-9])"))
    error = _validate(collector, spec, tmp_path)
    assert "token(?=[0-9])" in error and "invalid or unsupported Perl syntax" in error


def _binomial_bounds(n: int, p: float) -> tuple[float, float]:
    half = Z_99 * math.sqrt(p * (1 - p) / n) + 0.5 / n
    return p - half, p + half


def _replay_lines(rng: random.Random) -> tuple[list[str], set[str], list[str]]:
    """Lines in arrival order, the always-keep markers and the canary lines."""
    lines: list[str] = []
    for index in range(TRACES):
        trace = f"{rng.getrandbits(128):032x}"
        lines += [
            log_replay.json_line(lvl, trace, f"step {index} {lvl}") for lvl in LEVELS_PER_TRACE
        ]
    keep = {f"keep-{i}" for i in range(500)}
    for i, marker in enumerate(sorted(keep)):
        trace = f"{rng.getrandbits(128):032x}"
        text = "Xid 79: GPU has fallen off the bus" if i % 2 else "CUDA out of memory"
        lvl = "DEBUG" if i % 2 else "INFO"
        lines.insert(
            rng.randrange(len(lines)), log_replay.json_line(lvl, trace, f"{text} {marker}")
        )
    canaries = [
        f"ERROR request failed for {value} user_id=4242 ({name})"
        for name, value in CANARIES.items()
    ]
    canaries.append(f"ERROR request failed for order {NOT_A_CARD} user_id=4242 (fails Luhn)")
    lines += canaries
    return lines, keep, canaries


def test_replay_samples_per_level_consistently_keeps_always_keep_and_redacts(
    collector: pathlib.Path, supervisor: processes.Supervisor, tmp_path: pathlib.Path
) -> None:
    logs = tmp_path / "pods"
    sinks = [log_replay.Sink(), log_replay.Sink()]
    try:
        agents = [
            _start(supervisor, collector, _spec([_http("out", s)]), tmp_path / f"agent{i}", logs)
            for i, s in enumerate(sinks)
        ]
        lines, keep, canaries = _replay_lines(random.Random(7))
        assert len(lines) >= 100_000
        started = time.monotonic()
        written = log_replay.write_lines(log_replay.container_log(logs), lines)
        for agent in agents:
            log_replay.wait_settled(supervisor, agent, sinks, lines=written)
        elapsed = time.monotonic() - started
    finally:
        for sink in sinks:
            sink.close()
    print(f"replayed {written} lines through 2 agents in {elapsed:.1f} s")

    decisions = []
    for sink in sinks:
        kept: dict[str, set[str]] = defaultdict(set)  # level -> trace ids
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for record in sink.records:
            level = str(record.attributes.get("level", ""))
            body = record.body
            if "keep-" in body or "request failed" in body:
                continue
            kept[level].add(record.trace_id)
            counts[(level, record.trace_id)] += 1
            weight = record.attributes[log_agent.WEIGHT_ATTRIBUTE]
            assert weight == pytest.approx(1 / RATES[level]), (level, weight)
        decisions.append({lvl: frozenset(ids) for lvl, ids in kept.items()})

        assert len(kept["ERROR"]) == TRACES
        assert not kept["DEBUG"]
        for level in ("INFO", "WARN"):
            low, high = _binomial_bounds(TRACES, RATES[level])
            fraction = len(kept[level]) / TRACES
            print(f"{level}: kept {fraction:.5f} of traces, 99% bounds [{low:.5f}, {high:.5f}]")
            assert low <= fraction <= high, (level, fraction)
        assert kept["INFO"] <= kept["WARN"], "a trace kept at INFO must be kept at WARN"
        assert all(counts[("INFO", t)] == 2 for t in kept["INFO"]), "a trace is kept whole"

        bodies = [r.body for r in sink.records]
        assert {m for b in bodies for m in keep if b.endswith(m)} == keep
        for record in sink.records:
            if "keep-" in record.body:
                assert record.attributes[log_agent.WEIGHT_ATTRIBUTE] == 1.0
        redacted = [b for b in bodies if "user_id" in b or "request failed" in b]
        assert len(redacted) == len(canaries)
        for body in redacted:
            for name, value in CANARIES.items():
                assert value not in body, (name, body)
        assert sum(f"order {NOT_A_CARD} " in b for b in redacted) == 1
        digest = hashlib.sha256(f"{HASH_KEY}user_id=4242".encode()).hexdigest()
        assert all(f"<user-id:{digest}>" in b for b in redacted)

    assert decisions[0] == decisions[1], "two agents decide alike for every trace id"


def test_rate_limit_per_pod_and_level_overshoots_by_at_most_one_percent_over_ten_seconds(
    collector: pathlib.Path, supervisor: processes.Supervisor, tmp_path: pathlib.Path
) -> None:
    per_second, burst, seconds = 100, 50, 10.0
    pods = {
        name: log_replay.container_log(tmp_path / "pods", pod_dir=f"replay_{name}_{uuid.uuid4()}")
        for name in ("llama-a", "llama-b")
    }
    sink = log_replay.Sink()
    try:
        spec = _spec(
            [_http("out", sink)],
            sampling={"rates": {"INFO": 1.0}, "alwaysKeep": []},
            rateLimits=[{"level": "INFO", "perSecond": per_second, "burst": burst}],
        )
        agent = _start(supervisor, collector, spec, tmp_path / "agent", tmp_path / "pods")
        written, started = 0, time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:  # 5x the limit, in 50 ms ticks
            due = max(int(elapsed * per_second * 5) - written, 0)
            for name, path in pods.items():
                log_replay.write_lines(path, (f"INFO {name} {written + i}" for i in range(due)))
            log_replay.write_lines(pods["llama-a"], (f"WARN llama-a {i}" for i in range(due)))
            written += due
            time.sleep(0.05)
        window = time.monotonic() - started
        log_replay.wait_settled(supervisor, agent, [sink], lines=3 * written)
        limited = agent.metric("kubeinfer_log_records_rate_limited_total")
    finally:
        sink.close()
    allowed = burst + per_second * window
    kept = {
        f"{level} {pod}": sum(r.body.startswith(f"{level} {pod} ") for r in sink.records)
        for level in ("INFO", "WARN")
        for pod in pods
    }
    print(f"wrote {written} lines per pod and level in {window:.1f} s; kept {kept}")
    for pod in pods:  # each pod has its own INFO bucket
        assert 0.9 * per_second * seconds <= kept[f"INFO {pod}"] <= allowed * 1.01, kept
    assert kept["WARN llama-a"] == written, "a limit on INFO leaves WARN alone"
    assert limited == 3 * written - sink.count()


def test_primary_output_down_sends_every_record_to_the_secondary(
    collector: pathlib.Path, supervisor: processes.Supervisor, tmp_path: pathlib.Path
) -> None:
    primary, secondary = log_replay.Sink(), log_replay.Sink()
    primary.down = True
    try:
        spec = _spec(
            [_http("primary", primary, retry="2s"), _http("secondary", secondary)],
            sampling={"rates": {}, "alwaysKeep": []},
        )
        agent = _start(supervisor, collector, spec, tmp_path / "agent", tmp_path / "pods")
        lines = [f"INFO order {i}" for i in range(5_000)]
        written = log_replay.write_lines(log_replay.container_log(tmp_path / "pods"), lines)
        log_replay.wait_settled(supervisor, agent, [primary, secondary], lines=written)
        assert primary.refused > 0, "the primary was tried first"
        assert not primary.records
        assert sorted(r.body for r in secondary.records) == sorted(lines), "no record lost"
        primary.down = False
        more = log_replay.write_lines(
            log_replay.container_log(tmp_path / "pods"), [f"INFO after {i}" for i in range(100)]
        )
        log_replay.wait_settled(supervisor, agent, [primary, secondary], lines=written + more)
        assert len(primary.records) == more, "the primary takes over again once it is back"
    finally:
        primary.close()
        secondary.close()


def _verify_cli(path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubeinfer", "audit", "verify", str(path)],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(versions.REPO_ROOT / "operator")},
    )


def test_audit_stream_is_hash_chained_and_verify_finds_a_flipped_byte_or_missing_record(
    collector: pathlib.Path, supervisor: processes.Supervisor, tmp_path: pathlib.Path
) -> None:
    sink = log_replay.Sink()
    try:
        spec = _spec(
            [_http("out", sink)],
            sampling={"rates": {"INFO": 0.0}, "alwaysKeep": []},
            audit={"enabled": True, "match": ["^AUDIT "]},
        )
        agent = _start(supervisor, collector, spec, tmp_path / "agent", tmp_path / "pods")
        lines = [f"INFO noise {i}" for i in range(1_000)]
        lines += [
            f"AUDIT user alice{i}@example.com changed model llama to v{i}" for i in range(300)
        ]
        written = log_replay.write_lines(log_replay.container_log(tmp_path / "pods"), lines)
        audit_file = tmp_path / "agent" / "state" / log_agent.AUDIT_FILE
        supervisor.wait_until(
            lambda: audit.verify_file(audit_file).records == 300 if audit_file.exists() else False,
            what="300 audit records",
            timeout=60,
        )
        log_replay.wait_settled(supervisor, agent, [sink], lines=written)
    finally:
        sink.close()
    verdict = audit.verify_file(audit_file)
    assert verdict.intact and verdict.records == 300, verdict
    assert _verify_cli(audit_file).returncode == 0
    text = audit_file.read_bytes()
    assert b"@example.com" not in text, "audit records are redacted"
    assert not sink.records, "INFO sampled to zero; audit records bypass sampling"

    head = audit_file.with_name(audit_file.name + ".head").read_bytes()
    rng = random.Random(3)
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for case in ("flip", "remove", "truncate"):
        copy = tampered / f"{case}.log"
        data = bytearray(text)
        if case == "flip":
            position = rng.randrange(len(data))
            data[position] ^= 0x01
        elif case == "remove":
            kept = data.splitlines(keepends=True)
            del kept[150]
            data = bytearray(b"".join(kept))
        else:
            data = bytearray(b"".join(data.splitlines(keepends=True)[:-1]))
        copy.write_bytes(bytes(data))
        copy.with_name(copy.name + ".head").write_bytes(head)
        result = _verify_cli(copy)
        print(f"{case}: {result.stdout.strip()}")
        assert result.returncode == 1, (case, result.stdout)
        assert not audit.verify_file(copy).intact


def test_file_output_rotates_by_size_keeps_count_and_age_and_compresses_with_zstd(
    collector: pathlib.Path, supervisor: processes.Supervisor, tmp_path: pathlib.Path
) -> None:
    max_size, max_files, max_age = 16 * 1024, 3, 4.0
    out = tmp_path / "files"
    spec = _spec(
        [{"name": "disk", "type": "file", "path": str(out)}],
        sampling={"rates": {}, "alwaysKeep": []},
        retention={"maxSize": "16Ki", "maxFiles": max_files, "maxAge": f"{max_age:g}s"},
    )
    agent = _start(supervisor, collector, spec, tmp_path / "agent", tmp_path / "pods")
    path = log_replay.container_log(tmp_path / "pods")
    written = 0
    for tick in range(20):  # ~40 files' worth of records over ~2 s
        written += log_replay.write_lines(
            path, (f"INFO tick {tick} record {i} " + "x" * 120 for i in range(100))
        )
        time.sleep(0.1)
    log_replay.wait_settled(supervisor, agent, [], lines=written)
    rotated = sorted(out.glob("logs-*.jsonl.zst"))
    assert 1 <= len(rotated) <= max_files, [p.name for p in rotated]
    decompressor = zstandard.ZstdDecompressor()
    for file in rotated:
        data = file.read_bytes()
        assert data[:4] == b"\x28\xb5\x2f\xfd", "zstd frame magic"
        text = decompressor.decompressobj().decompress(data)
        assert 0 < len(text) <= max_size, (file.name, len(text))
        assert all(json.loads(line)["body"].startswith("INFO tick") for line in text.splitlines())
    active = out / "current.jsonl"
    assert active.stat().st_size <= max_size
    supervisor.wait_until(
        lambda: not list(out.glob("logs-*.jsonl.zst")),
        what=f"rotated files older than {max_age:g} s to be deleted",
        timeout=max_age + 10,
    )
    assert active.exists(), "the active file is never aged out"


def _level(agent: log_replay.Agent) -> float:
    return agent.metric("kubeinfer_disk_pressure_level")


def test_disk_pressure_tightens_sampling_tenfold_consistently_and_reverts(
    collector: pathlib.Path,
    supervisor: processes.Supervisor,
    tmp_path: pathlib.Path,
    small_volume: pathlib.Path,
) -> None:
    sink = log_replay.Sink()
    rng = random.Random(11)
    try:
        spec = _spec([_http("out", sink)], sampling={"rates": {"INFO": 1.0}, "alwaysKeep": ["Xid"]})
        logs = tmp_path / "pods"
        agent = _start(supervisor, collector, spec, tmp_path / "agent", logs, volume=small_volume)
        path = log_replay.container_log(logs)

        def phase(count: int, tag: str) -> list[log_replay.Record]:
            before = sink.count()
            lines = [
                log_replay.json_line("INFO", f"{rng.getrandbits(128):032x}", f"{tag} {i}")
                for i in range(count)
            ]
            lines += [log_replay.json_line("WARN", "", f"{tag} Xid 48 {i}") for i in range(20)]
            lines += [log_replay.json_line("ERROR", "", f"{tag} error {i}") for i in range(20)]
            total = agent.metric("otelcol_receiver_accepted_log_records_total") + len(lines)
            log_replay.write_lines(path, lines)
            log_replay.wait_settled(supervisor, agent, [sink], lines=int(total))
            return sink.records[before:]

        assert _level(agent) == 0
        assert len(phase(2_000, "calm")) == 2_040
        log_replay.fill_to(small_volume, 87)  # past 85 %: the first step of the ladder
        supervisor.wait_until(lambda: _level(agent) == 1, what="pressure level 1", timeout=15)
        pressed = phase(10_000, "pressed")
        info = [r for r in pressed if "Xid" not in r.body and "error" not in r.body]
        low, high = _binomial_bounds(10_000, 0.1)
        print(f"under pressure kept {len(info) / 10_000:.4f} of INFO, bounds [{low}, {high}]")
        assert low <= len(info) / 10_000 <= high
        assert all(r.attributes[log_agent.WEIGHT_ATTRIBUTE] == 10.0 for r in info)
        assert sum("Xid" in r.body for r in pressed) == 20, "always-keep is never tightened"
        assert sum("error" in r.body for r in pressed) == 20, "ERROR is never tightened"
        log_replay.fill_to(small_volume, 0)
        supervisor.wait_until(lambda: _level(agent) == 0, what="pressure to clear", timeout=15)
        assert len(phase(2_000, "relieved")) == 2_040, "sampling reverts once pressure clears"
    finally:
        sink.close()


def test_disk_pressure_rotates_earlier_then_trims_rotated_files_but_never_the_audit_file(
    collector: pathlib.Path,
    supervisor: processes.Supervisor,
    tmp_path: pathlib.Path,
    small_volume: pathlib.Path,
) -> None:
    max_size = 64 * 1024
    out = small_volume / "out"
    spec = _spec(
        [{"name": "disk", "type": "file", "path": str(out)}],
        sampling={"rates": {}, "alwaysKeep": []},
        retention={"maxSize": "64Ki", "maxFiles": 5, "maxAge": "1h"},
        audit={"enabled": True, "match": ["^AUDIT "]},
    )
    logs = tmp_path / "pods"
    agent = _start(supervisor, collector, spec, tmp_path / "agent", logs, volume=small_volume)
    path = log_replay.container_log(logs)
    decompressor = zstandard.ZstdDecompressor()

    def write(count: int, tag: str) -> None:
        lines = [f"INFO {tag} {i} " + "y" * 150 for i in range(count)]
        lines += [f"AUDIT {tag} change {i}" for i in range(10)]
        total = agent.metric("otelcol_receiver_accepted_log_records_total") + len(lines)
        log_replay.write_lines(path, lines)
        log_replay.wait_settled(supervisor, agent, [], lines=int(total))

    def rotated_sizes() -> list[int]:
        files = sorted(out.glob("logs-*.jsonl.zst"))
        return [len(decompressor.decompressobj().decompress(f.read_bytes())) for f in files]

    write(2_000, "calm")
    calm = rotated_sizes()
    assert len(calm) == 5 and min(calm) > max_size // 2, calm
    log_replay.fill_to(small_volume, 92)  # step 2: rotate at a quarter of maxSize
    supervisor.wait_until(lambda: _level(agent) == 2, what="pressure level 2", timeout=15)
    write(1_000, "level2")
    newest = rotated_sizes()[-3:]
    assert all(size <= max_size // 4 for size in newest), newest
    log_replay.fill_to(small_volume, 96)  # step 3: keep one rotated file
    supervisor.wait_until(lambda: _level(agent) == 3, what="pressure level 3", timeout=15)
    write(200, "level3")
    assert len(rotated_sizes()) == 1
    audit_file = small_volume / "state" / log_agent.AUDIT_FILE
    verdict = audit.verify_file(audit_file)
    assert verdict.intact and verdict.records == 30, verdict
    log_replay.fill_to(small_volume, 0)
    supervisor.wait_until(lambda: _level(agent) == 0, what="pressure to clear", timeout=15)
    write(1_000, "relieved")
    assert max(rotated_sizes()) > max_size // 2, "full-size rotation once pressure clears"


MALFORMED = (
    '{"level":"INFO","trace_id":"not-hex","msg":"a trace id that is not hex"}',
    '{"level":"warning","msg":{"nested":{"user":"bob@example.com"}}}',
    '{"msg": 5, "level": 17}',
    '{"level":"INFO","trace_id":"' + "a" * 32 + '"}',
    "not json { at all",
    "\x01\x02 control bytes \x7f",
    "ERROR",
    "",
    "INFO " + "long " * 20_000,
    '{"level":"FATAL","trace_id":"' + "0" * 32 + '","msg":"all-zero trace id"}',
    '{"level":"INFO","msg":"login","user":{"email":"carol@example.com","card":"4111111111111111"}}',
    '{"level":"INFO","msg":"call","api_key":"plainKEY0123","db":{"password":"hunter2x"}}',
)
LEAKS = ("bob@example.com", "carol@example.com", "4111111111111111", "plainKEY0123", "hunter2x")


def test_malformed_lines_never_crash_the_agent_every_one_is_delivered_and_nothing_leaks(
    collector: pathlib.Path, supervisor: processes.Supervisor, tmp_path: pathlib.Path
) -> None:
    sink = log_replay.Sink()
    try:
        spec = _spec(
            [_http("out", sink)],
            sampling={"rates": {}},
            rateLimits=[{"perSecond": 1000, "burst": 1000, "key": "container"}],
        )
        agent = _start(supervisor, collector, spec, tmp_path / "agent", tmp_path / "pods")
        lines = list(MALFORMED) * 20
        written = log_replay.write_lines(log_replay.container_log(tmp_path / "pods"), lines)
        log_replay.wait_settled(supervisor, agent, [sink], lines=written)
        agent.process.ensure_running()
    finally:
        sink.close()
    assert sink.count() == written
    for record in sink.records:  # nested JSON fields become (flattened) attributes: redacted too
        text = record.body + json.dumps(record.attributes)
        assert not any(leak in text for leak in LEAKS), text


def test_the_sidecar_configuration_reads_a_servers_plain_log_files_as_its_pods_records(
    collector: pathlib.Path, supervisor: processes.Supervisor, tmp_path: pathlib.Path
) -> None:
    sink = log_replay.Sink()
    try:
        spec = _spec([_http("gateway", sink)], sampling={"rates": {}, "alwaysKeep": []})
        owner = children.Owner("kubeinfer.io/v1alpha1", "LogPolicy", "chat-logs", "ml", "uid")
        logs, state, port = tmp_path / "server-logs", tmp_path / "state", processes.free_port()
        logs.mkdir()
        text = log_collector.sidecar_config_text(owner, spec)
        text = text.replace(log_collector.SIDECAR_LOGS, str(logs))
        config = yaml.safe_load(text.replace(log_collector.SIDECAR_STATE, str(state)))
        del config["extensions"][log_agent.REPORT]  # reports are the operator test's subject
        config["service"]["extensions"].remove(log_agent.REPORT)
        reader = config["service"]["telemetry"]["metrics"]["readers"][0]
        reader["pull"]["exporter"]["prometheus"]["port"] = port
        agent = log_replay.start_agent(
            supervisor,
            binary=collector,
            config=config,
            workdir=tmp_path / "agent",
            metrics_port=port,
            env={log_agent.HASH_KEY_ENV: HASH_KEY, "POD_NAME": "chat-v1-abc12"},
        )
        lines = [
            "INFO loaded model in 3.2 s",
            log_replay.json_line("WARN", "0af7651916cd43dd8448eb211c80319c", "slow batch"),
            f"ERROR request failed for {CANARIES['email']}",
        ]
        (logs / "server.log").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        (logs / "notes.txt").write_text("INFO not a log file\n", encoding="utf-8")
        log_replay.wait_settled(supervisor, agent, [sink], lines=len(lines))
        records = sorted(sink.records, key=lambda r: r.severity_number)
        assert [r.severity_number for r in records] == [9, 13, 17], "severity of plain lines"
        assert records[0].body == lines[0], "no container framing is expected or stripped"
        assert records[1].body == "slow batch"
        assert records[1].trace_id == "0af7651916cd43dd8448eb211c80319c"
        assert CANARIES["email"] not in records[2].body
        assert {r.resource["k8s.pod.name"] for r in records} == {"chat-v1-abc12"}
        assert {r.resource["k8s.namespace.name"] for r in records} == {"ml"}
    finally:
        sink.close()
