"""Run the real log agent on loopback and replay generated container logs through it.

Owns: an OTLP/HTTP sink (a local HTTP server, gzip or zstd, that stores every log record it is sent, or answers
503 while "down"), starting the collector with a rendered LogPolicy configuration, writing
container log files in the CRI format kubelet writes, reading the collector's own metrics, and a
small tmpfs to fill for disk-pressure tests.
Must not: decide what a test expects; the tests do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import http.server
import json
import pathlib
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any

import yaml
import zstandard

from e2e.harness import metrics_text, processes

FIRST_POLL_SECONDS = 1.0
POD_DIR = "replay_llama-v1-7d9f_0b1c2d3e-0000-4000-8000-000000000001"


@dataclasses.dataclass(frozen=True)
class Record:
    """One log record as the sink received it."""

    body: str
    severity_number: int
    trace_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any] = dataclasses.field(default_factory=dict)


def _value(v: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    return v


def parse_otlp_json(payload: dict[str, Any]) -> list[Record]:
    """Records of an OTLP/JSON ``ExportLogsServiceRequest``."""
    return [
        Record(
            body=str(_value(r.get("body", {}))),
            severity_number=int(r.get("severityNumber", 0)),
            trace_id=r.get("traceId", ""),
            attributes={a["key"]: _value(a["value"]) for a in r.get("attributes", [])},
            resource={
                a["key"]: _value(a["value"]) for a in rl.get("resource", {}).get("attributes", [])
            },
        )
        for rl in payload.get("resourceLogs", [])
        for sl in rl.get("scopeLogs", [])
        for r in sl.get("logRecords", [])
    ]


class Sink:
    """An OTLP/HTTP logs endpoint on 127.0.0.1; ``down`` makes it answer 503."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.down = False
        self.refused = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if sink.down:
                    with sink._lock:
                        sink.refused += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                encoding = self.headers.get("Content-Encoding")
                if encoding == "gzip":
                    data = gzip.decompress(data)
                elif encoding == "zstd":
                    data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
                received = parse_otlp_json(json.loads(data))
                with sink._lock:
                    sink.records.extend(received)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def count(self) -> int:
        """Records received so far."""
        with self._lock:
            return len(self.records)

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


@dataclasses.dataclass(frozen=True)
class Agent:
    """A running collector: its process, the log directory it tails and its metrics URL."""

    process: processes.Process
    log_dir: pathlib.Path
    metrics_url: str

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus metric's samples whose labels include ``labels``."""
        return metrics_text.total(metrics_text.scrape(self.metrics_url), name, **labels)


def start_agent(
    supervisor: processes.Supervisor,
    *,
    binary: pathlib.Path,
    config: dict[str, Any],
    workdir: pathlib.Path,
    metrics_port: int,
    env: dict[str, str] | None = None,
) -> Agent:
    """Write ``config``, start the collector and wait until it serves its metrics."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "collector.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=True), encoding="utf-8")
    process = supervisor.start(
        f"otelcol-{workdir.name}",
        [str(binary), f"--config={config_path}"],
        log_path=workdir / "collector.log",
        env=env,
    )
    agent = Agent(process, workdir, f"http://127.0.0.1:{metrics_port}/metrics")
    supervisor.wait_until(
        lambda: _serves(agent.metrics_url), what="the collector's metrics endpoint", timeout=30
    )
    # filelog's first poll (200 ms after start) marks files already present as read to their end
    # (start_at: end); files appearing after it are read whole. Write only after that poll.
    time.sleep(FIRST_POLL_SECONDS)
    return agent


def _serves(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def cri_line(line: str, *, stream: str = "stdout") -> str:
    """``line`` framed as kubelet writes container logs (CRI format, full line)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
    return f"{stamp} {stream} F {line}\n"


def container_log(
    root: pathlib.Path, container: str = "server", *, pod_dir: str = POD_DIR
) -> pathlib.Path:
    """Path of a container log file under ``root`` laid out like ``/var/log/pods``
    (``<namespace>_<pod>_<uid>/<container>/0.log``)."""
    path = root / pod_dir / container / "0.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_lines(path: pathlib.Path, lines: Iterable[str]) -> int:
    """Append ``lines`` in CRI framing; return how many were written."""
    count = 0
    with path.open("a", encoding="utf-8") as handle:
        for line in lines:
            handle.write(cri_line(line))
            count += 1
    return count


def json_line(level: str, trace_id: str, message: str) -> str:
    """A structured log line as inference servers write them."""
    return json.dumps({"level": level, "trace_id": trace_id, "msg": message})


def wait_settled(
    supervisor: processes.Supervisor,
    agent: Agent,
    sinks: Iterator[Sink] | list[Sink],
    *,
    lines: int,
    timeout: float = 120.0,
) -> None:
    """Wait until the agent read ``lines`` records and the sinks stopped growing for 3 s."""
    supervisor.wait_until(
        lambda: agent.metric("otelcol_receiver_accepted_log_records_total") >= lines,
        what=f"the collector to read {lines} lines",
        timeout=timeout,
        interval=0.5,
    )
    targets = list(sinks)
    last = [-1]
    stable_since = [time.monotonic()]

    def settled() -> bool:
        total = sum(s.count() for s in targets)
        if total != last[0]:
            last[0] = total
            stable_since[0] = time.monotonic()
        return time.monotonic() - stable_since[0] >= 3.0

    supervisor.wait_until(settled, what="the sinks to settle", timeout=timeout, interval=0.5)


@contextlib.contextmanager
def tmpfs(path: pathlib.Path, *, size: str) -> Iterator[pathlib.Path | None]:
    """A tmpfs of ``size`` mounted at ``path`` (None when mounting is not permitted)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill_to(volume: pathlib.Path, percent: float) -> None:
    """Grow (or shrink) ``volume/ballast`` until the filesystem is ``percent`` full."""
    ballast = volume / "ballast"
    usage = shutil.disk_usage(volume)
    current = ballast.stat().st_size if ballast.exists() else 0
    target = max(0, current + int(usage.total * percent / 100) - usage.used)
    with ballast.open("wb") as handle:
        handle.write(b"\0" * target)
