"""A control plane ready for kubeinfer: GPU nodes, third-party and kubeinfer CRDs, operator RBAC.

Owns: composing ``control_plane``, ``gpu_nodes``, ``crds`` and ``rbac`` into the one setup that
the pytest fixtures and ``make dev`` share. Must not: run the operator (callers decide).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import pathlib
from collections.abc import Iterator, Sequence
from typing import Any

from e2e.harness import control_plane, crds, gpu_nodes, kubectl, rbac

log = logging.getLogger(__name__)

DEFAULT_FLEET: tuple[gpu_nodes.GpuNodeSpec, ...] = tuple(gpu_nodes.fleet(2))


@dataclasses.dataclass(frozen=True)
class Cluster:
    """What a test or a developer gets: the running control plane and what was set up on it."""

    control_plane: control_plane.ControlPlane
    gpu_nodes: tuple[str, ...]
    crds: tuple[str, ...]

    @property
    def kubeconfig(self) -> pathlib.Path:
        """The admin kubeconfig."""
        return self.control_plane.admin_kubeconfig

    @property
    def run_dir(self) -> pathlib.Path:
        """Logs, certificates and kubeconfigs of this run."""
        return self.control_plane.run_dir

    @property
    def kubectl(self) -> kubectl.Kubectl:
        """kubectl as the cluster admin."""
        return self.control_plane.kubectl

    def api_client(self, config_file: pathlib.Path | None = None) -> Any:
        """A new ``kubernetes.client.ApiClient`` (admin unless ``config_file`` is given)."""
        return self.control_plane.api_client(config_file)

    @functools.cached_property
    def kubeinfer_crds(self) -> tuple[str, ...]:
        """Install kubeinfer's generated CRDs (``crds/``) once; their names."""
        return tuple(crds.install_kubeinfer(self.kubectl))

    @functools.cached_property
    def operator_kubeconfig(self) -> pathlib.Path:
        """Kubeconfig of the operator's ServiceAccount, with exactly ``manifests/`` RBAC."""
        output = self.run_dir / "kubeconfigs" / "kubeinfer-operator.kubeconfig"
        return rbac.operator_kubeconfig(self.kubectl, output)


@contextlib.contextmanager
def running(
    run_dir: pathlib.Path | None = None,
    *,
    nodes: Sequence[gpu_nodes.GpuNodeSpec] = DEFAULT_FLEET,
    install_crds: bool = True,
) -> Iterator[Cluster]:
    """Start a control plane, add ``nodes``, install third-party CRDs; stop it all on the way out.

    kubeinfer's own CRDs are a separate step (``Cluster.kubeinfer_crds``) so that a broken
    generated CRD fails the tests that need it, not the whole session.
    """
    with control_plane.ControlPlane(run_dir) as plane:
        with contextlib.closing(plane.api_client()) as api:
            names = gpu_nodes.create(api, nodes)
        installed = crds.install_third_party(plane.kubectl) if install_crds else []
        log.info("Cluster ready", extra={"gpu_nodes": len(names), "crds": len(installed)})
        yield Cluster(control_plane=plane, gpu_nodes=tuple(names), crds=tuple(installed))
