"""pytest fixtures for the end-to-end suite, all against one real control plane per session.

- ``cluster`` (session): control plane + 2 fake 8-GPU nodes + third-party and kubeinfer CRDs;
  exposes ``kubeconfig``, ``api_client()``, ``kubectl``. Builds missing binaries first.
- ``api`` (function): an admin ``kubernetes.client.ApiClient``, closed after the test.
- ``namespace`` (function): a fresh namespace, deleted after the test.
- ``kubeinfer_crds`` (session): kubeinfer's generated CRDs from ``crds/``, installed once.
- ``operator_kubeconfig`` (session): the operator ServiceAccount's kubeconfig, exactly the
  RBAC of ``manifests/``.
- ``operator`` (function): ``kubeinfer run`` as a subprocess with that kubeconfig; its output
  goes to a file. A failing test's report carries the log of every operator it ran (from any
  fixture) and a snapshot of its namespace: Deployments, ReplicaSets, pods and Events.
- ``loopback_node`` (function): a KWOK 8-GPU node whose ``spec.podCIDR`` is a fresh
  127.42.x.0/24, so its pods get loopback IPs that simulators can listen on (pin pods with
  ``kubernetes.io/hostname`` and tolerate ``gpu_nodes.LOOPBACK_TAINT``); its ``GpuNodeSpec``; deleted
  after the test.
- ``analysing_operator`` (function): the operator as its ServiceAccount, with
  ``--prometheus-url`` at the module's ``scraper``, so it analyses rollouts.
- ``scraper`` (module): Debian's Prometheus on loopback, scraping the target files that
  ``harness/scrape_targets.Follower`` writes; one per test module that asks for it.
- ``argocd_binary`` (session): the argocd command, built from its Go module on first use.
- ``installed_config_map`` / ``argocd_cm`` (session): Argo CD's own argocd-cm with kubeinfer's
  health component (``manifests/argocd``) merged in, as a dict and as a file.
- ``live`` (function): Argo CD's health evaluator judging live objects of the control plane.
- ``small_volume`` (function): an 8 MiB tmpfs to fill up. Mounting needs root; without it the
  test is skipped on a developer's machine but fails under CI (``CI`` set, as ``.ci/run`` does),
  so CI never passes with the disk-pressure tests silently left out.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import secrets
from collections.abc import Generator, Iterator
from typing import Any

import kubernetes
import pytest
import yaml

from e2e.harness import (
    argocd,
    argocd_live,
    gpu_nodes,
    health_fixtures,
    log_replay,
    operator_process,
    processes,
    prometheus,
    toolchain,
)
from e2e.harness import cluster as cluster_setup
from e2e.harness import kubectl as kubectl_cmd

MAX_ATTACHED_LOG_CHARS = 20_000


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster_setup.Cluster]:
    """The session's control plane, ready for kubeinfer."""
    with cluster_setup.running(tmp_path_factory.mktemp("control-plane")) as running:
        yield running


@pytest.fixture
def api(cluster: cluster_setup.Cluster) -> Iterator[Any]:
    """An admin API client for one test."""
    with contextlib.closing(cluster.api_client()) as client:
        yield client


@pytest.fixture
def namespace(request: pytest.FixtureRequest, api: Any) -> Iterator[str]:
    """A namespace named after the test, deleted (without waiting) afterwards."""
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{stem}-{secrets.token_hex(3)}"
    core: Any = kubernetes.client.CoreV1Api(api)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    with contextlib.suppress(kubernetes.client.ApiException):
        core.delete_namespace(name)


@pytest.fixture(scope="session")
def kubeinfer_crds(cluster: cluster_setup.Cluster) -> tuple[str, ...]:
    """Names of kubeinfer's CRDs, installed from ``crds/`` and established."""
    return cluster.kubeinfer_crds


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster: cluster_setup.Cluster) -> pathlib.Path:
    """Kubeconfig of the kubeinfer-operator ServiceAccount (RBAC from ``manifests/``)."""
    return cluster.operator_kubeconfig


@pytest.fixture
def operator(
    kubeinfer_crds: tuple[str, ...],
    operator_kubeconfig: pathlib.Path,
    tmp_path: pathlib.Path,
) -> Iterator[operator_process.RunningOperator]:
    """The operator running as its ServiceAccount for the duration of one test."""
    log_path = tmp_path / "kubeinfer-operator.log"
    with processes.Supervisor() as supervisor:
        yield operator_process.start(supervisor, kubeconfig=operator_kubeconfig, log_path=log_path)


@pytest.fixture
def loopback_node(api: Any) -> Iterator[gpu_nodes.GpuNodeSpec]:
    """A Ready KWOK GPU node giving its pods IPs from a fresh 127.42.x.0/24; deleted after.
    Tainted with ``gpu_nodes.LOOPBACK_TAINT`` so only pods that tolerate it land there; its
    address pool is opened by one pod first (``gpu_nodes.open_ip_pool``: kwok's race)."""
    spec = gpu_nodes.GpuNodeSpec(
        name=f"loopback-{secrets.token_hex(3)}",
        pod_cidr=f"127.42.{1 + secrets.randbelow(254)}.0/24",
        taints=(gpu_nodes.LOOPBACK_TAINT,),
    )
    gpu_nodes.create(api, [spec])
    gpu_nodes.open_ip_pool(api, spec)
    yield spec
    with contextlib.suppress(kubernetes.client.ApiException):
        kubernetes.client.CoreV1Api(api).delete_node(spec.name)


@pytest.fixture
def analysing_operator(
    kubeinfer_crds: tuple[str, ...],
    operator_kubeconfig: pathlib.Path,
    scraper: prometheus.Prometheus,
    tmp_path: pathlib.Path,
) -> Iterator[operator_process.RunningOperator]:
    """The operator as its ServiceAccount, analysing rollouts on the module's Prometheus."""
    with operator_process.running(
        operator_kubeconfig,
        tmp_path / "kubeinfer-operator.log",
        ["--prometheus-url", scraper.url],
    ) as running:
        yield running


@pytest.fixture(scope="module")
def scraper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[prometheus.Prometheus]:
    """Prometheus on loopback for one test module."""
    with processes.Supervisor() as supervisor:
        yield prometheus.start(supervisor, tmp_path_factory.mktemp("prometheus"))


@pytest.fixture(scope="session")
def argocd_binary() -> pathlib.Path:
    """The argocd command (built on first use, then cached by version)."""
    return argocd.ensure_binary()


@pytest.fixture(scope="session")
def installed_config_map(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Argo CD's argocd-cm with the kubeinfer component applied, as a user's kustomization does."""
    kubectl = kubectl_cmd.Kubectl(toolchain.ensure_binaries().kubectl, pathlib.Path(os.devnull))
    root = tmp_path_factory.mktemp("argocd-install")
    return argocd.installed_config_map(kubectl, health_fixtures.LAYOUT.root, root)


@pytest.fixture(scope="session")
def argocd_cm(
    installed_config_map: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> pathlib.Path:
    """The installed argocd-cm written to a file for ``--argocd-cm-path``."""
    path = tmp_path_factory.mktemp("argocd-cm") / "argocd-cm.yaml"
    path.write_text(yaml.safe_dump(installed_config_map), encoding="utf-8")
    return path


@pytest.fixture
def live(
    cluster: cluster_setup.Cluster,
    argocd_binary: pathlib.Path,
    argocd_cm: pathlib.Path,
    tmp_path: pathlib.Path,
) -> argocd_live.LiveJudge:
    """A judge of live objects; the tests using it also start the operator."""
    return argocd_live.LiveJudge(cluster, argocd_binary, argocd_cm, tmp_path / "live.yaml")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach what explains a failure to its report: the output of every operator the test ran
    (whichever fixture started it) and, while its namespace still exists, what is in it."""
    report = yield
    if not report.failed or report.when != "call":
        return report
    args = getattr(item, "funcargs", {})
    for value in args.values():
        if isinstance(value, operator_process.RunningOperator) and value.log_path.exists():
            text = value.log_path.read_text(encoding="utf-8", errors="replace")
            section = f"kubeinfer operator log ({value.log_path})"
            report.sections.append((section, text[-MAX_ATTACHED_LOG_CHARS:]))
        # Fixtures running more processes (Argo CD's, say) name their logs with log_files().
        for path in getattr(value, "log_files", list)():
            if isinstance(path, pathlib.Path) and path.exists():
                text = path.read_text(encoding="utf-8", errors="replace")
                report.sections.append((f"log {path.name}", text[-MAX_ATTACHED_LOG_CHARS:]))
    cluster = args.get("cluster")
    namespace = args.get("namespace")
    if isinstance(cluster, cluster_setup.Cluster) and isinstance(namespace, str):
        report.sections.append((f"namespace {namespace}", _namespace_snapshot(cluster, namespace)))
    return report


def _namespace_snapshot(cluster: cluster_setup.Cluster, namespace: str) -> str:
    """Workloads, pods (with their nodes) and the newest Events of one namespace."""
    parts = []
    for args in (
        ("get", "deploy,rs,pods", "-o", "wide"),
        ("get", "events", "--sort-by=.lastTimestamp"),
    ):
        done = cluster.kubectl(*args, "-n", namespace, check=False, timeout=30)
        parts.append(f"$ kubectl {' '.join(args)}\n{done.stdout}{done.stderr}")
    return "\n".join(parts)[-MAX_ATTACHED_LOG_CHARS:]


@pytest.fixture
def small_volume(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """An 8 MiB tmpfs to fill up; see the module docstring for what happens without root."""
    with log_replay.tmpfs(tmp_path / "vol", size="8m") as volume:
        if volume is None:
            reason = "cannot mount a tmpfs to fill (needs root)"
            if os.environ.get("CI"):
                pytest.fail(f"{reason}; CI must run the disk-pressure tests")
            pytest.skip(reason)
        yield volume
