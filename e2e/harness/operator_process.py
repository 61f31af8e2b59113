"""The kubeinfer operator as a real subprocess against the harness's control plane.

Owns: the command line of ``kubeinfer run`` for tests and ``make dev`` (contract:
``python -m kubeinfer run --all-namespaces --liveness http://127.0.0.1:<port>/healthz`` with
``KUBECONFIG`` set, plus what the caller adds), its log file, and waiting for its liveness
endpoint.
Must not: configure the operator beyond that contract; kopf settings live in the operator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence

from e2e.harness import processes, versions

OPERATOR_SOURCE_ROOT = versions.REPO_ROOT / "operator"
LIVENESS_TIMEOUT_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class RunningOperator:
    """A started operator: its process, output file and liveness URL."""

    process: processes.Process
    log_path: pathlib.Path
    liveness_url: str


def command(liveness_url: str, extra_args: Sequence[str] = ()) -> list[str]:
    """argv of ``kubeinfer run`` in this interpreter (works without installing the package)."""
    return [
        sys.executable,
        "-m",
        "kubeinfer",
        "run",
        "--all-namespaces",
        "--liveness",
        liveness_url,
        *extra_args,
    ]


def _environment(kubeconfig: pathlib.Path, extra: Mapping[str, str]) -> dict[str, str]:
    path = os.pathsep.join(
        p for p in (str(OPERATOR_SOURCE_ROOT), os.environ.get("PYTHONPATH")) if p
    )
    return dict(
        os.environ, **extra, KUBECONFIG=str(kubeconfig), PYTHONPATH=path, PYTHONUNBUFFERED="1"
    )


def _alive(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start(
    supervisor: processes.Supervisor,
    *,
    kubeconfig: pathlib.Path,
    log_path: pathlib.Path,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    wait: bool = True,
) -> RunningOperator:
    """Start the operator under ``supervisor``; by default wait until its liveness answers 200.

    ``env`` adds to the environment the operator inherits (``KUBEINFER_COLLECTOR``, say)."""
    liveness_url = f"http://127.0.0.1:{processes.free_port()}/healthz"
    process = supervisor.start(
        "kubeinfer-operator",
        command(liveness_url, extra_args),
        log_path=log_path,
        env=_environment(kubeconfig, env or {}),
        cwd=versions.REPO_ROOT,
    )
    if wait:
        supervisor.wait_until(
            lambda: _alive(liveness_url),
            what="the kubeinfer operator's liveness endpoint",
            timeout=LIVENESS_TIMEOUT_SECONDS,
            interval=0.25,
        )
    return RunningOperator(process=process, log_path=log_path, liveness_url=liveness_url)


@contextlib.contextmanager
def running(
    kubeconfig: pathlib.Path, log_path: pathlib.Path, extra_args: Sequence[str] = ()
) -> Iterator[RunningOperator]:
    """The operator started under its own supervisor, stopped on exit."""
    with processes.Supervisor() as supervisor:
        yield start(supervisor, kubeconfig=kubeconfig, log_path=log_path, extra_args=extra_args)
