"""Argo CD's own health evaluator judges every kubeinfer status fixture as expected.

Covers: the wrapper module ``e2e/tools/argocd`` requires the pinned Argo CD and carries its
replace directives; ``argocd`` built from ``github.com/argoproj/argo-cd/v3`` at that version; the
kustomize component ``manifests/argocd`` merged into the argocd-cm that Argo CD's own
``manifests/base/config`` ships (rendered with the harness's kubectl) keeps Argo CD's keys and
adds exactly the four health keys of ``argocd-cm.yaml``; and for each fixture under
``tests/argocd/fixtures``, ``argocd admin settings resource-overrides health`` with that
argocd-cm reports the status and message the fixture's annotations expect (no cluster needed).
On the real control plane with the operator: Argo CD sees a CPU InferenceService go from
Progressing to Healthy without ever seeing Degraded on the way (a Degraded would fail a sync
with waves), sees a service on a GPUPool that does not exist as Degraded, naming the pool, and
a LogPolicy whose redaction pattern does not compile as Degraded, naming the rule.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import pytest
import yaml

from e2e.harness import (
    argocd,
    argocd_health,
    gomodules,
    operator_process,
    toolchain,
    versions,
    waiting,
)
from e2e.harness import cluster as cluster_setup
from e2e.harness import kubectl as kubectl_cmd

pytestmark = pytest.mark.e2e

CPU_EXAMPLE = versions.REPO_ROOT / "manifests" / "examples" / "02-inferenceservice-cpu.yaml"


@pytest.fixture(scope="module")
def argocd_binary() -> pathlib.Path:
    """The argocd command (built on first use, then cached by version)."""
    return argocd.ensure_binary()


def _argo_cd_config_map() -> dict[str, Any]:
    """The argocd-cm of the pinned Argo CD's own install manifests."""
    base = gomodules.module_dir(argocd.MODULE, versions.load().argocd) / "manifests" / "base"
    loaded: dict[str, Any] = yaml.safe_load(
        (base / "config" / "argocd-cm.yaml").read_text(encoding="utf-8")
    )
    return loaded


@pytest.fixture(scope="module")
def installed_config_map(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Argo CD's argocd-cm with the kubeinfer component applied, as a user's kustomization does."""
    root = tmp_path_factory.mktemp("argocd-install")
    (root / "argocd-cm.yaml").write_text(yaml.safe_dump(_argo_cd_config_map()), encoding="utf-8")
    component = os.path.relpath(argocd_health.ARGOCD_DIR, root)
    (root / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "argocd",
                "resources": ["argocd-cm.yaml"],
                "components": [component],
            }
        ),
        encoding="utf-8",
    )
    kubectl = kubectl_cmd.Kubectl(toolchain.ensure_binaries().kubectl, pathlib.Path(os.devnull))
    rendered = [d for d in yaml.safe_load_all(kubectl.kustomize(root)) if isinstance(d, dict)]
    assert len(rendered) == 1
    return rendered[0]


@pytest.fixture(scope="module")
def argocd_cm(
    installed_config_map: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> pathlib.Path:
    """The installed argocd-cm written to a file for ``--argocd-cm-path``."""
    path = tmp_path_factory.mktemp("argocd-cm") / "argocd-cm.yaml"
    path.write_text(yaml.safe_dump(installed_config_map), encoding="utf-8")
    return path


def test_wrapper_module_requires_the_pinned_argo_cd_with_its_replaces() -> None:
    argocd.check_wrapper()


def test_component_adds_the_health_keys_and_keeps_argo_cds_own(
    installed_config_map: dict[str, Any],
) -> None:
    patch = yaml.safe_load(argocd_health.CONFIG_MAP_FILE.read_text(encoding="utf-8"))
    original = _argo_cd_config_map()["data"]
    assert installed_config_map["metadata"]["namespace"] == "argocd"
    assert installed_config_map["data"] == {**original, **patch["data"]}
    assert set(patch["data"]) == {
        argocd_health.config_key(kind) for kind in argocd_health.kind_names()
    }


@pytest.mark.parametrize("fixture", argocd_health.fixtures(), ids=lambda f: f.id)
def test_argo_cd_reports_the_expected_health(
    fixture: argocd_health.Fixture, argocd_binary: pathlib.Path, argocd_cm: pathlib.Path
) -> None:
    found = argocd.health(argocd_binary, fixture.path, argocd_cm)
    assert (found.status, found.message) == (fixture.status, fixture.message)


def _cpu_service(namespace: str) -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load(CPU_EXAMPLE.read_text(encoding="utf-8"))
    service["metadata"]["namespace"] = namespace
    return service


@dataclasses.dataclass(frozen=True)
class LiveJudge:
    """Argo CD's evaluator pointed at live kubeinfer objects of the session's control plane."""

    cluster: cluster_setup.Cluster
    binary: pathlib.Path
    argocd_cm: pathlib.Path
    scratch: pathlib.Path

    def judge(self, service: dict[str, Any]) -> argocd.Health:
        """The live object's health, read as Argo CD's controller reads it."""
        meta = service["metadata"]
        ref = f"{service['kind'].lower()}.kubeinfer.io/{meta['name']}"
        live = self.cluster.kubectl("get", ref, "-n", meta["namespace"], "-o", "yaml").stdout
        self.scratch.write_text(live, encoding="utf-8")
        return argocd.health(self.binary, self.scratch, self.argocd_cm)

    def watch(self, service: dict[str, Any], until: str) -> list[argocd.Health]:
        """Apply ``service``, judge it until the status is ``until``; return each distinct answer."""
        seen: list[argocd.Health] = []

        def reached() -> bool:
            found = self.judge(service)
            if not seen or seen[-1] != found:
                seen.append(found)
            return found.status == until

        self.cluster.kubectl.apply(text=yaml.safe_dump(service))
        waiting.until(
            reached,
            what=f"Argo CD to see {service['metadata']['name']} {until}",
            timeout=90,
            interval=0.5,
            on_timeout=lambda: repr(seen),
        )
        return seen


@pytest.fixture
def live(
    cluster: cluster_setup.Cluster,
    argocd_binary: pathlib.Path,
    argocd_cm: pathlib.Path,
    tmp_path: pathlib.Path,
) -> LiveJudge:
    """A judge of live objects; the tests using it also start the operator."""
    return LiveJudge(cluster, argocd_binary, argocd_cm, tmp_path / "live.yaml")


def test_a_starting_service_is_progressing_then_healthy_never_degraded(
    operator: operator_process.RunningOperator, namespace: str, live: LiveJudge
) -> None:
    seen = live.watch(_cpu_service(namespace), "Healthy")
    print("Argo CD saw:", *(f"{h.status}: {h.message}" for h in seen), sep="\n  ")
    assert [h.status for h in seen[:-1]] == ["Progressing"] * (len(seen) - 1), seen
    assert seen[-1] == argocd.Health("Healthy", "All conditions are met.")


def test_a_service_on_a_missing_pool_is_degraded_naming_the_pool(
    operator: operator_process.RunningOperator, namespace: str, live: LiveJudge
) -> None:
    service = _cpu_service(namespace)
    service["spec"]["resources"]["gpus"] = 1
    service["spec"]["placement"] = {"gpuPool": "no-such-pool"}
    seen = live.watch(service, "Degraded")
    assert seen[-1] == argocd.Health("Degraded", "GPUPool 'no-such-pool' does not exist.")


def test_a_log_policy_with_a_broken_pattern_is_degraded_naming_the_rule(
    operator: operator_process.RunningOperator, namespace: str, live: LiveJudge
) -> None:
    policy = {
        "apiVersion": "kubeinfer.io/v1alpha1",
        "kind": "LogPolicy",
        "metadata": {"name": "broken", "namespace": namespace},
        "spec": {
            "inferenceService": "tiny-embedder",
            "redaction": {"rules": [{"name": "half-open", "pattern": "user=(", "action": "mask"}]},
            "outputs": [{"name": "gateway", "type": "http", "endpoint": "http://127.0.0.1:4318"}],
        },
    }
    seen = live.watch(policy, "Degraded")
    assert seen[-1].message.startswith("Pattern rejected: redaction rule 'half-open': "), seen
