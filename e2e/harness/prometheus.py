"""A real Prometheus (Debian's package) on loopback, scraping file-discovered targets.

Owns: finding or installing the ``prometheus`` binary (``apt-get install -y prometheus`` when it
is missing and we are root; otherwise an error saying so), its generated configuration (one job
whose targets come from ``<run dir>/targets/*.json``, picked up by Prometheus' file discovery
without a restart), starting it under a ``processes.Supervisor``, waiting for ``/-/ready``, and
instant queries through its HTTP API. Must not: decide what to scrape (``scrape_targets`` turns
ServiceMonitors into target files) or listen anywhere but 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

import yaml

from e2e.harness import debian, logfmt, processes

log = logging.getLogger(__name__)

DEBIAN_PACKAGE = "prometheus"
READY_TIMEOUT_SECONDS = 60.0
JOB_NAME = "kubeinfer-e2e-servicemonitors"
DISCOVERY_REFRESH = "5s"  # fallback re-read; inotify normally sees new target files at once


class PrometheusError(RuntimeError):
    """The binary is missing and cannot be installed, or a query failed."""


def binary() -> pathlib.Path:
    """Path of ``prometheus``; installs Debian's package first when missing and root."""
    try:
        return debian.command(
            "prometheus", package=DEBIAN_PACKAGE, hint=" (Debian bookworm ships 2.42)"
        )
    except debian.DebianError as err:
        raise PrometheusError(str(err)) from err


def render_config(targets_dir: pathlib.Path) -> dict[str, Any]:
    """The configuration: one job over every target file; targets set path and interval."""
    return {
        "global": {"scrape_interval": "15s", "scrape_timeout": "10s"},
        "scrape_configs": [
            {
                "job_name": JOB_NAME,
                "honor_labels": False,
                "file_sd_configs": [
                    {
                        "files": [str(targets_dir / "*.json")],
                        "refresh_interval": DISCOVERY_REFRESH,
                    }
                ],
            }
        ],
    }


@dataclasses.dataclass(frozen=True)
class Prometheus:
    """A running Prometheus: its URL, target directory and process."""

    url: str
    targets_dir: pathlib.Path
    process: processes.Process

    def write_targets(self, name: str, groups: Sequence[dict[str, Any]]) -> None:
        """Replace target file ``<name>.json`` atomically (discovery must never see half a file)."""
        path = self.targets_dir / f"{name}.json"
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(list(groups), indent=1, sort_keys=True), encoding="utf-8")
        scratch.replace(path)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the ``result`` vector (``metric`` labels and ``value``)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                document = json.loads(response.read())
        except (urllib.error.URLError, TimeoutError) as err:
            raise PrometheusError(f"query {expr!r} failed: {err}") from err
        if document.get("status") != "success":
            raise PrometheusError(f"query {expr!r} failed: {document}")
        result: list[dict[str, Any]] = document["data"]["result"]
        return result

    def active_targets(self) -> list[dict[str, Any]]:
        """Targets Prometheus currently scrapes, with ``health`` and ``labels``."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets?state=active", timeout=10) as r:
            active: list[dict[str, Any]] = json.loads(r.read())["data"]["activeTargets"]
        return active


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start(supervisor: processes.Supervisor, run_dir: pathlib.Path) -> Prometheus:
    """Start Prometheus with data, config, targets and log under ``run_dir``; wait until ready."""
    executable = binary()
    targets_dir = run_dir / "targets"
    for sub in (targets_dir, run_dir / "data", run_dir / "logs"):
        sub.mkdir(parents=True, exist_ok=True)
    config = run_dir / "prometheus.yml"
    config.write_text(yaml.safe_dump(render_config(targets_dir), sort_keys=False), "utf-8")
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    process = supervisor.start(
        "prometheus",
        [
            str(executable),
            f"--config.file={config}",
            f"--storage.tsdb.path={run_dir / 'data'}",
            "--storage.tsdb.retention.time=2h",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        log_path=run_dir / "logs" / "prometheus.log",
    )
    supervisor.wait_until(
        lambda: _ready(url), what="prometheus /-/ready", timeout=READY_TIMEOUT_SECONDS
    )
    log.info("Prometheus ready", extra={"url": url, "targets": str(targets_dir)})
    return Prometheus(url=url, targets_dir=targets_dir, process=process)


def main() -> int:
    """``python -m e2e.harness.prometheus``: install Debian's package if missing; print the path."""
    logfmt.setup()
    try:
        print(binary())
    except PrometheusError as err:
        log.error("Prometheus is not available", extra={"error": str(err)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
