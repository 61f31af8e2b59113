"""Argo CD "Core" on loopback: Redis, argocd-repo-server and argocd-application-controller.

Owns: finding or installing Redis (Debian's ``redis-server``, ``apt-get install`` when missing
and root, as ``prometheus`` does) and running it on a free loopback port without persistence;
installing what Argo CD reads from the cluster (its CRDs from the pinned module's
``manifests/crds``, the ``argocd`` namespace, its own ``manifests/base/config`` objects, the
``argocd-cm`` it is given, the ``default`` AppProject that only argocd-server would create);
running the one ``argocd`` binary as ``argocd-repo-server`` and ``argocd-application-controller``
(chosen by ``ARGOCD_BINARY_NAME``) against the control plane's admin kubeconfig, the way Argo CD's
``Procfile`` runs them for development: ``ARGOCD_FAKE_IN_CLUSTER`` makes the in-cluster destination
``https://kubernetes.default.svc`` mean that kubeconfig; plaintext gRPC between them on loopback;
GPG off; and waiting for each one's ``/healthz``.
Must not: build argocd (``argocd`` does), write Applications or judge them (``argocd_apps`` and
the tests do), or listen anywhere but 127.0.0.1 (the controller's metrics server binds every
address, as Argo CD hard-codes; nothing connects to it but the readiness probe on 127.0.0.1).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import yaml

from e2e.harness import (
    argocd,
    crds,
    debian,
    gomodules,
    kubectl,
    logfmt,
    processes,
    versions,
    waiting,
)

log = logging.getLogger("e2e.harness.argocd_core")  # not __name__: also run as __main__

NAMESPACE = "argocd"
IN_CLUSTER = "https://kubernetes.default.svc"
REDIS_PACKAGE = "redis-server"
READY_TIMEOUT_SECONDS = 90.0
RECONCILIATION_SECONDS = 5
"""How often the controller compares every Application with Git (``timeout.reconciliation``;
Argo CD's default is 120 s plus up to 60 s of jitter): with no webhook, Git is polled."""
PROCESSORS = "2"  # status and operation processors: a handful of Applications on two shared cores


class ArgoCDCoreError(RuntimeError):
    """Redis cannot be installed, or Argo CD's manifests are not where the module keeps them."""


def redis_binary() -> pathlib.Path:
    """Path of ``redis-server``; installs Debian's package first when missing and root."""
    try:
        return debian.command("redis-server", package=REDIS_PACKAGE)
    except debian.DebianError as err:
        raise ArgoCDCoreError(str(err)) from err


def _module_manifests(pinned: versions.Versions) -> pathlib.Path:
    return gomodules.module_dir(argocd.MODULE, pinned.argocd) / "manifests"


def crd_files(pinned: versions.Versions | None = None) -> list[pathlib.Path]:
    """Argo CD's CRDs (Application, AppProject, ApplicationSet) from the pinned module."""
    pinned = pinned or versions.load()
    files = sorted((_module_manifests(pinned) / "crds").glob("*-crd.yaml"))
    if not files:
        raise ArgoCDCoreError(f"no *-crd.yaml under {_module_manifests(pinned) / 'crds'}")
    return files


def own_config(pinned: versions.Versions | None = None) -> list[dict[str, Any]]:
    """Argo CD's own ``manifests/base/config`` objects except argocd-cm, in its namespace."""
    pinned = pinned or versions.load()
    found = []
    for path in sorted((_module_manifests(pinned) / "base" / "config").glob("argocd-*.yaml")):
        document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        if document["metadata"]["name"] == "argocd-cm":
            continue
        document["metadata"]["namespace"] = NAMESPACE
        found.append(document)
    return found


def default_project() -> dict[str, Any]:
    """The ``default`` AppProject argocd-server creates at start (any repo, any destination)."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "default", "namespace": NAMESPACE},
        "spec": {
            "sourceRepos": ["*"],
            "destinations": [{"server": "*", "namespace": "*"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    }


def install(kubectl_: kubectl.Kubectl, *, argocd_cm: Mapping[str, Any]) -> None:
    """Install Argo CD's CRDs and configuration, with ``argocd_cm`` as its argocd-cm."""
    files = crd_files()
    kubectl_.apply(*files)
    names = crds.crd_names(files)

    def established() -> bool:
        # Not `kubectl wait`: it fails on a CRD whose status has no conditions yet.
        out = kubectl_(
            "get",
            *(f"customresourcedefinition/{name}" for name in names),
            "-o",
            'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Established")].status}{" "}{end}',
        ).stdout
        return out.split() == ["True"] * len(names)

    waiting.until(established, what="Argo CD's CRDs to be Established", timeout=60, interval=0.5)
    # A new resource's watch cache answers 429 for a moment; kubectl waits out its Retry-After.
    kubectl_("get", ",".join(names), "--all-namespaces", "--output=name")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    config_map = dict(argocd_cm)
    config_map["metadata"] = dict(config_map["metadata"], namespace=NAMESPACE)
    kubectl_.apply(text=yaml.safe_dump(namespace))
    kubectl_.apply(
        text=yaml.safe_dump_all([*own_config(), config_map, default_project()], sort_keys=False)
    )


@dataclasses.dataclass(frozen=True)
class ArgoCDCore:
    """The running components: Redis's address, the repo-server's, the processes (their logs
    under ``run_dir / "logs"``)."""

    run_dir: pathlib.Path
    redis: str
    helm: bool
    """Whether the repo-server has a helm to render Helm sources with."""
    repo_server: str
    processes: tuple[processes.Process, ...]

    def ensure_running(self) -> None:
        """Raise ``processes.ProcessError`` with its log tail if a component has exited."""
        for process in self.processes:
            process.ensure_running()


def _redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _environment(
    run_dir: pathlib.Path, component: str, kubeconfig: pathlib.Path, path_dirs: list[str]
) -> dict[str, str]:
    """The environment Argo CD's Procfile gives a component, with every data path in ``run_dir``."""
    for sub in ("tls", "ssh", "gpg/keys", "gpg/source", "tmp", "home"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    return dict(
        os.environ,
        ARGOCD_BINARY_NAME=component,
        ARGOCD_FAKE_IN_CLUSTER="true",
        KUBECONFIG=str(kubeconfig),
        ARGOCD_GPG_ENABLED="false",
        ARGOCD_TLS_DATA_PATH=str(run_dir / "tls"),
        ARGOCD_SSH_DATA_PATH=str(run_dir / "ssh"),
        ARGOCD_GNUPGHOME=str(run_dir / "gpg" / "keys"),
        ARGOCD_GPG_DATA_PATH=str(run_dir / "gpg" / "source"),
        ARGOCD_RECONCILIATION_TIMEOUT=f"{RECONCILIATION_SECONDS}s",
        # Repositories are cloned under $TMPDIR; git and helm keep state under $HOME.
        TMPDIR=str(run_dir / "tmp"),
        HOME=str(run_dir / "home"),
        PATH=os.pathsep.join([*path_dirs, os.environ.get("PATH", "")]),
    )


def start(
    supervisor: processes.Supervisor,
    *,
    binary: pathlib.Path,
    kubeconfig: pathlib.Path,
    run_dir: pathlib.Path,
    helm: pathlib.Path | None = None,
) -> ArgoCDCore:
    """Start Redis, the repo-server and the application controller; wait until each is ready.

    ``helm``: the binary the repo-server renders Helm sources with (put first on its PATH);
    without it only plain-directory sources render."""
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path_dirs = [str(helm.parent)] if helm is not None else []
    redis_port = processes.free_port()
    redis = supervisor.start(
        "redis",
        [
            str(redis_binary()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(redis_port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(run_dir),
        ],
        log_path=logs / "redis.log",
    )
    supervisor.wait_until(lambda: _redis_ready(redis_port), what="redis PING", timeout=30)
    redis_address = f"127.0.0.1:{redis_port}"

    repo_port, repo_metrics = processes.free_port(), processes.free_port()
    repo_server = supervisor.start(
        "argocd-repo-server",
        [
            str(binary),
            "--address=127.0.0.1",
            f"--port={repo_port}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={repo_metrics}",
            f"--redis={redis_address}",
            "--disable-tls",
            "--loglevel=info",
            "--logformat=text",
        ],
        log_path=logs / "argocd-repo-server.log",
        env=_environment(run_dir / "repo-server", "argocd-repo-server", kubeconfig, path_dirs),
    )
    supervisor.wait_until(
        lambda: _healthy(f"http://127.0.0.1:{repo_metrics}/healthz"),
        what="argocd-repo-server /healthz",
        timeout=READY_TIMEOUT_SECONDS,
    )
    repo_address = f"127.0.0.1:{repo_port}"

    controller_metrics = processes.free_port()
    controller = supervisor.start(
        "argocd-application-controller",
        [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            f"--namespace={NAMESPACE}",
            f"--redis={redis_address}",
            f"--repo-server={repo_address}",
            "--repo-server-plaintext",
            # The hydrator is off; nothing listens here and nothing calls it.
            f"--commit-server=127.0.0.1:{processes.free_port()}",
            f"--metrics-port={controller_metrics}",
            f"--app-resync={RECONCILIATION_SECONDS}",
            "--app-resync-jitter=0",
            f"--status-processors={PROCESSORS}",
            f"--operation-processors={PROCESSORS}",
            # Compare through the API server's dry-run apply, as the sync applies (SSA): the
            # defaults a CRD schema fills in are then part of both sides, never drift.
            "--server-side-diff-enabled=true",
            # Keep each resource's health in the Application (Argo CD 3 keeps it only in Redis
            # by default), so `status.resources[].health` says which resource is not Healthy.
            "--persist-resource-health",
            "--loglevel=info",
            "--logformat=text",
        ],
        log_path=logs / "argocd-application-controller.log",
        env=_environment(
            run_dir / "application-controller",
            "argocd-application-controller",
            kubeconfig,
            path_dirs,
        ),
    )
    supervisor.wait_until(
        lambda: _healthy(f"http://127.0.0.1:{controller_metrics}/healthz"),
        what="argocd-application-controller /healthz",
        timeout=READY_TIMEOUT_SECONDS,
    )
    log.info("Argo CD core ready", extra={"repo_server": repo_address, "redis": redis_address})
    return ArgoCDCore(
        run_dir=run_dir,
        helm=helm is not None,
        redis=redis_address,
        repo_server=repo_address,
        processes=(redis, repo_server, controller),
    )


def main() -> int:
    """``python -m e2e.harness.argocd_core``: install Redis if missing; print its path."""
    logfmt.setup()
    try:
        print(redis_binary())
    except ArgoCDCoreError as err:
        log.error("Redis is not available", extra={"error": str(err)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
