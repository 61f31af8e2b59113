"""CustomResourceDefinitions the operator's children need, and the repo's own generated CRDs.

Owns: where each third-party CRD comes from (a file inside the pinned Go module of the project
that publishes it, never a hand-written copy), which of them are installed, and installing any
CRD files and waiting until the API server has established them.
Must not: generate kubeinfer's CRDs (``kubeinfer crds`` does, into ``crds/``).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from collections.abc import Iterable, Sequence

import yaml

from e2e.harness import gomodules, kubectl, versions

log = logging.getLogger(__name__)

REPO_CRDS_DIR = versions.REPO_ROOT / "crds"


@dataclasses.dataclass(frozen=True)
class CrdSource:
    """CRD files in one Go module: ``directory`` inside it, ``files`` there (empty: all *.yaml)."""

    name: str
    module: str
    version_key: str  # field of versions.Versions
    directory: str
    files: tuple[str, ...] = ()

    def paths(self, pinned: versions.Versions) -> list[pathlib.Path]:
        """The CRD files of this source at the pinned version."""
        root = gomodules.module_dir(self.module, getattr(pinned, self.version_key)) / self.directory
        if not self.files:
            return sorted(root.glob("*.yaml"))
        return [root / name for name in self.files]


THIRD_PARTY: tuple[CrdSource, ...] = (
    # Gateway API standard channel: GatewayClass, Gateway, HTTPRoute, GRPCRoute, ReferenceGrant, ...
    CrdSource("gateway-api", "sigs.k8s.io/gateway-api", "gateway_api", "config/crd/standard"),
    CrdSource(
        "prometheus-operator",
        "github.com/prometheus-operator/prometheus-operator",
        "prometheus_operator",
        "example/prometheus-operator-crd",
        (
            "monitoring.coreos.com_servicemonitors.yaml",
            "monitoring.coreos.com_podmonitors.yaml",
            "monitoring.coreos.com_prometheusrules.yaml",
        ),
    ),
    CrdSource(
        "keda",
        "github.com/kedacore/keda/v2",
        "keda",
        "config/crd/bases",
        (
            "keda.sh_scaledobjects.yaml",
            "keda.sh_scaledjobs.yaml",
            "keda.sh_triggerauthentications.yaml",
            "keda.sh_clustertriggerauthentications.yaml",
        ),
    ),
)


def third_party_files(pinned: versions.Versions | None = None) -> list[pathlib.Path]:
    """Every third-party CRD file at the pinned versions."""
    pinned = pinned or versions.load()
    return [path for source in THIRD_PARTY for path in source.paths(pinned)]


def repo_files(directory: pathlib.Path = REPO_CRDS_DIR) -> list[pathlib.Path]:
    """kubeinfer's generated CRDs (``crds/*.yaml``); empty until ``make crds`` has run."""
    return sorted(directory.glob("*.yaml"))


def crd_names(files: Iterable[pathlib.Path]) -> list[str]:
    """``metadata.name`` of every CustomResourceDefinition document in ``files``."""
    names = []
    for path in files:
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                names.append(str(document["metadata"]["name"]))
    return names


def install(
    runner: kubectl.Kubectl, files: Sequence[pathlib.Path], *, timeout_seconds: int = 60
) -> list[str]:
    """Server-side apply ``files``, wait until their CRDs are Established and served; names."""
    names = crd_names(files)
    if not names:
        return []
    runner.apply(*files)
    runner(
        "wait",
        "--for=condition=Established",
        f"--timeout={timeout_seconds}s",
        *(f"customresourcedefinition/{name}" for name in names),
        timeout=timeout_seconds + 10,
    )
    # Established is not yet served: a new resource's watch cache answers 429 "storage is
    # (re)initializing" for a moment. kubectl honours Retry-After, so one list waits it out.
    runner("get", ",".join(names), "--all-namespaces", "--output=name", timeout=timeout_seconds)
    log.info("Installed CRDs", extra={"count": len(names)})
    return names


def install_third_party(
    runner: kubectl.Kubectl, pinned: versions.Versions | None = None
) -> list[str]:
    """The third-party CRDs at the pinned versions."""
    return install(runner, third_party_files(pinned))


def install_kubeinfer(runner: kubectl.Kubectl) -> list[str]:
    """kubeinfer's own generated CRDs from ``crds/``."""
    return install(runner, repo_files())
