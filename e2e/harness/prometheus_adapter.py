"""prometheus-adapter, built from its Go module and served to the API server as custom metrics.

Owns: building ``sigs.k8s.io/prometheus-adapter/cmd/adapter`` at the version ``versions.env``
pins, through the wrapper module ``e2e/tools/prometheus-adapter`` (its go.mod must require that
version; ``go install module@version`` cannot be used because the proxy refuses the module's
version list, which ``go install`` reads for deprecations), cached next to the control-plane
binaries under a ``.key`` file; its identity (the module's own ServiceAccount and RBAC from
``deploy/manifests``, a TokenRequest kubeconfig); its serving certificate; starting it on
127.0.0.1 with the rules file ``manifests/monitoring/adapter-rules.yaml``; and registering it.

How the API server reaches a process on loopback: the APIService names a Service of
``type: ExternalName`` with ``externalName: localhost``. The aggregator resolves such a Service
to ``https://localhost:<APIService port>`` (``ResolveCluster`` in k8s.io/apiserver); a ClusterIP
Service would resolve to its ClusterIP, where nothing listens, and ``--enable-aggregator-routing``
would use Endpoints, which may not hold loopback addresses. The aggregator verifies the adapter
against ``caBundle`` for the name ``<service>.<namespace>.svc`` and authenticates itself with the
front-proxy client certificate, which the adapter trusts through the
``extension-apiserver-authentication`` ConfigMap it reads with its kubeconfig.
Must not: pick the rules (``manifests/monitoring`` ships them) or listen beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import json
import logging
import pathlib
import sys
import time
from typing import Any

import yaml

from e2e.harness import (
    gomodules,
    kubectl,
    logfmt,
    pki,
    processes,
    rbac,
    toolchain,
    versions,
)

log = logging.getLogger(__name__)

MODULE = "sigs.k8s.io/prometheus-adapter"
PACKAGE = f"{MODULE}/cmd/adapter"
WRAPPER_DIR = versions.TOOLS_DIR / "prometheus-adapter"
RULES_FILE = versions.REPO_ROOT / "manifests" / "monitoring" / "adapter-rules.yaml"
NAMESPACE = "monitoring"
NAME = "prometheus-adapter"
API_SERVICE = "v1beta1.custom.metrics.k8s.io"
# The module's own identity and access objects; the APIService there is for metrics.k8s.io,
# so ours is written below.
RBAC_FILES = (
    "service-account.yaml",
    "cluster-role.yaml",
    "cluster-role-binding.yaml",
    "cluster-role-binding-delegator.yaml",
    "role-binding-auth-reader.yaml",
)
RELIST_INTERVAL = "15s"
READY_TIMEOUT_SECONDS = 120.0


class AdapterError(RuntimeError):
    """The wrapper module disagrees with ``versions.env`` or the adapter never became available."""


def check_wrapper(pinned: versions.Versions | None = None) -> None:
    """Raise ``AdapterError`` unless the wrapper go.mod requires exactly the pinned adapter."""
    pinned = pinned or versions.load()
    edit = json.loads(toolchain._run_go(["mod", "edit", "-json"], cwd=WRAPPER_DIR))
    required = {r["Path"]: r["Version"] for r in edit.get("Require") or []}
    tools = [t["Path"] for t in edit.get("Tool") or []]
    if required.get(MODULE) != pinned.prometheus_adapter or tools != [PACKAGE]:
        raise AdapterError(
            f"{WRAPPER_DIR / 'go.mod'} requires {MODULE} {required.get(MODULE)} with tools "
            f"{tools}; versions.env pins {pinned.prometheus_adapter} and the tool is {PACKAGE}. "
            f"Edit its require line, then run `go mod tidy` there."
        )


def ensure_binary(pinned: versions.Versions | None = None) -> pathlib.Path:
    """Build the adapter unless the cached one was built from the same go.mod and go.sum."""
    pinned = pinned or versions.load()
    directory = toolchain.cache_dir(pinned)
    target = directory / "prometheus-adapter"
    key_file = directory / "prometheus-adapter.key"
    with toolchain._locked(directory):
        check_wrapper(pinned)
        sums = "".join((WRAPPER_DIR / n).read_text(encoding="utf-8") for n in ("go.mod", "go.sum"))
        key = f"{PACKAGE} {pinned.prometheus_adapter} wrapper {hash_text(sums)} ldflags -s -w"
        if toolchain._is_current(target, key_file, key):
            return target
        with toolchain._progress("prometheus-adapter", 1, 1):
            scratch = directory / ".prometheus-adapter.partial"
            toolchain._run_go(
                ["build", "-ldflags", "-s -w", "-o", str(scratch), PACKAGE], cwd=WRAPPER_DIR
            )
            scratch.replace(target)
        key_file.write_text(key, encoding="utf-8")
    return target


def hash_text(text: str) -> str:
    """A short stable digest for cache keys."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def module_objects(pinned: versions.Versions) -> list[dict[str, Any]]:
    """The adapter's ServiceAccount and RBAC, read from its own module's ``deploy/manifests``."""
    manifests = gomodules.module_dir(MODULE, pinned.prometheus_adapter) / "deploy" / "manifests"
    return [yaml.safe_load((manifests / name).read_text(encoding="utf-8")) for name in RBAC_FILES]


def registration(ca_bundle: bytes, port: int) -> list[dict[str, Any]]:
    """The ExternalName Service on localhost and the APIService trusting ``ca_bundle``."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": API_SERVICE},
            "spec": {
                "group": "custom.metrics.k8s.io",
                "version": "v1beta1",
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
                "caBundle": base64.b64encode(ca_bundle).decode("ascii"),
                "service": {"name": NAME, "namespace": NAMESPACE, "port": port},
            },
        },
    ]


@dataclasses.dataclass(frozen=True)
class Adapter:
    """A running, registered adapter."""

    process: processes.Process
    port: int
    ca_bundle: bytes
    api_service: str = API_SERVICE


def available(admin: kubectl.Kubectl) -> bool:
    """Whether the API server reports the APIService ``Available``."""
    result = admin("get", "apiservice", API_SERVICE, "-o", "json", check=False)
    if result.returncode != 0:
        return False
    conditions = json.loads(result.stdout).get("status", {}).get("conditions") or []
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


def start(
    supervisor: processes.Supervisor,
    admin: kubectl.Kubectl,
    *,
    run_dir: pathlib.Path,
    prometheus_url: str,
    register_now: bool = True,
) -> Adapter:
    """Start the adapter on loopback against ``prometheus_url``; unless ``register_now`` is
    false, register it and wait until the API server reports the APIService Available."""
    pinned = versions.load()
    binary = ensure_binary(pinned)
    for sub in ("logs", "pki", "kubeconfigs"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    admin.apply(
        text=yaml.safe_dump_all(
            [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
                *module_objects(pinned),
            ]
        )
    )
    config = rbac.service_account_kubeconfig(
        admin, run_dir / "kubeconfigs" / f"{NAME}.kubeconfig", name=NAME, namespace=NAMESPACE
    )
    serving = pki.serving_pair(
        run_dir / "pki", NAME, dns_names=(f"{NAME}.{NAMESPACE}.svc", "localhost")
    )
    port = processes.free_port()
    process = supervisor.start(
        NAME,
        [
            str(binary),
            f"--config={RULES_FILE}",
            f"--prometheus-url={prometheus_url}",
            f"--metrics-relist-interval={RELIST_INTERVAL}",
            f"--lister-kubeconfig={config}",
            f"--authentication-kubeconfig={config}",
            f"--authorization-kubeconfig={config}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            "--v=2",
        ],
        log_path=run_dir / "logs" / f"{NAME}.log",
    )
    adapter = Adapter(
        process=process,
        port=port,
        ca_bundle=(run_dir / "pki" / f"{NAME}-ca.crt").read_bytes(),
    )
    if register_now:
        register(supervisor, admin, adapter)
    return adapter


def register(supervisor: processes.Supervisor, admin: kubectl.Kubectl, adapter: Adapter) -> None:
    """Apply the Service and APIService for ``adapter``; wait until the APIService is Available."""
    started = time.monotonic()
    admin.apply(text=yaml.safe_dump_all(registration(adapter.ca_bundle, adapter.port)))
    supervisor.wait_until(
        lambda: available(admin),
        what=f"APIService {API_SERVICE} Available",
        timeout=READY_TIMEOUT_SECONDS,
        interval=0.5,
    )
    log.info(
        "Custom metrics API available",
        extra={"port": adapter.port, "elapsed_s": round(time.monotonic() - started, 1)},
    )


def unregister(admin: kubectl.Kubectl) -> None:
    """Remove the APIService (the API server stops proxying) and its Service."""
    admin("delete", "apiservice", API_SERVICE, "--ignore-not-found", "--wait=false")
    admin("delete", "service", NAME, f"--namespace={NAMESPACE}", "--ignore-not-found")


def main(argv: list[str] | None = None) -> int:
    """``python -m e2e.harness.prometheus_adapter [build|check]``: prebuild or check the pin."""
    parser = argparse.ArgumentParser(prog="python -m e2e.harness.prometheus_adapter")
    parser.add_argument("command", nargs="?", default="build", choices=("build", "check"))
    args = parser.parse_args(argv)
    logfmt.setup()
    try:
        if args.command == "check":
            check_wrapper()
        else:
            print(ensure_binary())
    except (AdapterError, toolchain.ToolchainError, gomodules.GoToolError) as err:
        log.error("prometheus-adapter step failed", extra={"error": str(err)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
