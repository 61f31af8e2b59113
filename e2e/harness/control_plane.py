"""A real Kubernetes control plane on loopback: etcd, API server, controller manager, scheduler, kwok.

Owns: the command lines of the five components, their run directory layout, start order and
readiness checks, and stopping them. Must not: build binaries (``toolchain``), make certificates
(``pki``), create nodes (``gpu_nodes``) or install CRDs (``crds``).

Layout of ``run_dir``: ``pki/`` certificates, ``etcd/`` data, ``logs/<component>.log``,
``kubeconfigs/<client>.kubeconfig``; ``admin.kubeconfig`` at the top is the one to hand out.

Networking: every listener binds 127.0.0.1 on a free port, and nothing connects anywhere else.
The service and pod ranges below only fill in API fields (ClusterIPs, fake pod IPs from kwok);
no proxy or kubelet exists, so nothing ever sends traffic to them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import pathlib
import shutil
import ssl
import tempfile
import time
import types
import urllib.error
import urllib.request
from typing import Any

import kubernetes

from e2e.harness import kubeconfig, kwok_stages, pki, processes, toolchain
from e2e.harness import kubectl as kubectl_tool

log = logging.getLogger(__name__)

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
KWOK_POD_CIDR = "10.244.0.0/16"
KWOK_NODE_IP = "10.240.0.1"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE = "fake"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
NODE_LEASE_SECONDS = 40
HPA_SYNC_PERIOD = "5s"
READY_TIMEOUT_SECONDS = 120.0


@dataclasses.dataclass(frozen=True)
class Ports:
    """Loopback ports chosen for one run."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    kwok: int

    @classmethod
    def pick(cls) -> Ports:
        """Free ports for every listener."""
        return cls(*(processes.free_port() for _ in dataclasses.fields(cls)))


class ControlPlane:
    """Starts on ``start()`` or ``with``; stops everything on ``stop()``, exit or SIGTERM.

    >>> with ControlPlane() as cluster:  # doctest: +SKIP
    ...     cluster.kubectl("get", "nodes")
    """

    def __init__(
        self,
        run_dir: pathlib.Path | None = None,
        *,
        binaries: toolchain.Binaries | None = None,
    ) -> None:
        self.run_dir = run_dir or pathlib.Path(tempfile.mkdtemp(prefix="kubeinfer-e2e-"))
        self._binaries = binaries
        self.supervisor = processes.Supervisor()
        self.ports = Ports.pick()
        self.server = f"https://127.0.0.1:{self.ports.apiserver}"
        self.admin_kubeconfig = self.run_dir / "admin.kubeconfig"
        self._pki: pki.Pki | None = None
        self.started_in_seconds: float | None = None

    # -- public surface ---------------------------------------------------------------------------

    @property
    def binaries(self) -> toolchain.Binaries:
        """The binaries this control plane runs (built on first use)."""
        if self._binaries is None:
            self._binaries = toolchain.ensure_binaries()
        return self._binaries

    @property
    def certificates(self) -> pki.Pki:
        """Certificates of this run; available once ``start()`` began."""
        if self._pki is None:
            raise RuntimeError("the control plane has not been started")
        return self._pki

    @property
    def kubectl(self) -> kubectl_tool.Kubectl:
        """kubectl as the cluster admin."""
        return kubectl_tool.Kubectl(self.binaries.kubectl, self.admin_kubeconfig)

    def api_client(self, config_file: pathlib.Path | None = None) -> Any:
        """A ``kubernetes.client.ApiClient`` for ``config_file`` (default: the admin kubeconfig)."""
        path = config_file or self.admin_kubeconfig
        return kubernetes.config.new_client_from_config(config_file=str(path))  # type: ignore[no-untyped-call]

    def start(self) -> ControlPlane:
        """Build what is missing, then start all components and wait until they are ready."""
        binaries = self.binaries  # building is not part of the start time
        started = time.monotonic()
        for sub in ("logs", "kubeconfigs"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        self._pki = pki.generate(self.run_dir / "pki")
        self._write_kubeconfigs()
        try:
            self._start_etcd(binaries)
            self._start_apiserver(binaries)
            self._start_controller_manager(binaries)
            self._start_scheduler(binaries)
            self._start_kwok(binaries)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.started_in_seconds = round(time.monotonic() - started, 2)
        log.info(
            "Control plane ready",
            extra={
                "server": self.server,
                "kubeconfig": str(self.admin_kubeconfig),
                "elapsed_s": self.started_in_seconds,
            },
        )
        return self

    def stop(self) -> None:
        """Stop every component (newest first) and drop etcd's data; logs stay. Idempotent."""
        self.supervisor.stop()
        shutil.rmtree(self.run_dir / "etcd", ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    # -- components -------------------------------------------------------------------------------

    def _kubeconfig_for(self, client: str) -> pathlib.Path:
        return self.run_dir / "kubeconfigs" / f"{client}.kubeconfig"

    def _write_kubeconfigs(self) -> None:
        for client, pair in self.certificates.clients.items():
            kubeconfig.write(
                self._kubeconfig_for(client),
                server=self.server,
                ca=self.certificates.ca.cert,
                user=pki.CLIENTS[client].user,
                client=pair,
            )
        self.admin_kubeconfig.write_bytes(self._kubeconfig_for("admin").read_bytes())
        self.admin_kubeconfig.chmod(0o600)

    def _start(self, name: str, argv: list[str]) -> processes.Process:
        return self.supervisor.start(name, argv, log_path=self.run_dir / "logs" / f"{name}.log")

    def _start_etcd(self, binaries: toolchain.Binaries) -> None:
        client = f"http://127.0.0.1:{self.ports.etcd_client}"
        peer = f"http://127.0.0.1:{self.ports.etcd_peer}"
        self._start(
            "etcd",
            [
                str(binaries.etcd),
                "--name=e2e",
                f"--data-dir={self.run_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=e2e={peer}",
                "--unsafe-no-fsync=true",  # throwaway data: skip fsync, start and write faster
                "--log-level=warn",
            ],
        )

    def _start_apiserver(self, binaries: toolchain.Binaries) -> None:
        p = self.certificates
        self._start(
            "kube-apiserver",
            [
                str(binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports.apiserver}",
                # Endpoints may not hold loopback addresses; nothing in-cluster dials the API.
                "--endpoint-reconciler-type=none",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                f"--tls-cert-file={p.apiserver.cert}",
                f"--tls-private-key-file={p.apiserver.key}",
                f"--client-ca-file={p.ca.cert}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={p.service_account_public_key}",
                f"--service-account-signing-key-file={p.service_account_key}",
                # Aggregation layer: an APIService (e.g. prometheus-adapter) can be added later.
                f"--requestheader-client-ca-file={p.front_proxy_ca.cert}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={p.front_proxy_client.cert}",
                f"--proxy-client-key-file={p.front_proxy_client.key}",
                "--enable-priority-and-fairness=true",
                "--allow-privileged=true",
                "--profiling=false",
                f"--cert-dir={self.run_dir / 'pki' / 'apiserver-generated'}",
            ],
        )

    def _start_controller_manager(self, binaries: toolchain.Binaries) -> None:
        p = self.certificates
        self._start(
            "kube-controller-manager",
            [
                str(binaries.kube_controller_manager),
                f"--kubeconfig={self._kubeconfig_for('kube-controller-manager')}",
                "--secure-port=0",  # no HTTPS listener; readiness is read from its leader Lease
                "--use-service-account-credentials=true",
                f"--root-ca-file={p.ca.cert}",
                f"--service-account-private-key-file={p.service_account_key}",
                f"--cluster-signing-cert-file={p.ca.cert}",
                f"--cluster-signing-key-file={p.ca.key}",
                # "*" is every default-on controller: garbage collector, HPA, deployment, replicaset,
                # node lifecycle, service accounts, endpoint slices, disruption, ...
                "--controllers=*",
                f"--horizontal-pod-autoscaler-sync-period={HPA_SYNC_PERIOD}",
                # The default 20 QPS makes the controllers, not the operator, the bottleneck when
                # a test creates hundreds of Deployments; production clusters raise it too.
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--leader-elect=true",
            ],
        )

    def _start_scheduler(self, binaries: toolchain.Binaries) -> None:
        self._start(
            "kube-scheduler",
            [
                str(binaries.kube_scheduler),
                f"--kubeconfig={self._kubeconfig_for('kube-scheduler')}",
                "--secure-port=0",  # no HTTPS listener; readiness is read from its leader Lease
                "--leader-elect=true",
            ],
        )

    def _start_kwok(self, binaries: toolchain.Binaries) -> None:
        stages = kwok_stages.write_config(self.run_dir / "kwok-stages.yaml")
        self._start(
            "kwok",
            [
                str(binaries.kwok),
                f"--kubeconfig={self._kubeconfig_for('kwok')}",
                f"--config={stages}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector="
                f"{KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE}",
                f"--cidr={KWOK_POD_CIDR}",
                f"--node-ip={KWOK_NODE_IP}",
                f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
                f"--server-address=127.0.0.1:{self.ports.kwok}",
            ],
        )

    # -- readiness --------------------------------------------------------------------------------

    def _https_ok(self, path: str) -> bool:
        context = ssl.create_default_context(cafile=str(self.certificates.ca.cert))
        admin = self.certificates.clients["admin"]
        context.load_cert_chain(str(admin.cert), str(admin.key))
        try:
            with urllib.request.urlopen(f"{self.server}{path}", context=context, timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def _kwok_healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.ports.kwok}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def _wait_ready(self) -> None:
        wait = self.supervisor.wait_until
        wait(
            lambda: self._https_ok("/readyz"),
            what="kube-apiserver /readyz",
            timeout=READY_TIMEOUT_SECONDS,
        )
        with contextlib.closing(self.api_client()) as api:
            # The client's models are typed; reading them through Any keeps the checks short.
            core: Any = kubernetes.client.CoreV1Api(api)
            leases: Any = kubernetes.client.CoordinationV1Api(api)

            def leader_elected(name: str) -> bool:
                try:
                    lease = leases.read_namespaced_lease(name, "kube-system")
                except kubernetes.client.ApiException:
                    return False
                return bool(lease.spec.holder_identity)

            def default_service_account() -> bool:
                try:
                    core.read_namespaced_service_account("default", "default")
                except kubernetes.client.ApiException:
                    return False
                return True

            for component in ("kube-controller-manager", "kube-scheduler"):
                wait(
                    functools.partial(leader_elected, component),
                    what=f"{component} leader lease",
                    timeout=READY_TIMEOUT_SECONDS,
                    interval=0.25,
                )
            wait(
                default_service_account,
                what="the default ServiceAccount (controller manager running)",
                timeout=READY_TIMEOUT_SECONDS,
                interval=0.25,
            )
        wait(self._kwok_healthy, what="kwok /healthz", timeout=READY_TIMEOUT_SECONDS)
