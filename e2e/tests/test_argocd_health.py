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
a LogPolicy whose redaction pattern does not compile as Degraded, naming the rule. (A live
rolled-back InferenceService is judged in ``test_rollout_analysis``, where the rollback happens.)
"""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import yaml

from e2e.harness import argocd, argocd_live, health_fixtures, operator_process, versions
from kubeinfer import argocd_health

pytestmark = pytest.mark.e2e

CPU_EXAMPLE = versions.REPO_ROOT / "manifests" / "examples" / "02-inferenceservice-cpu.yaml"


def test_wrapper_module_requires_the_pinned_argo_cd_with_its_replaces() -> None:
    argocd.check_wrapper()


def test_component_adds_the_health_keys_and_keeps_argo_cds_own(
    installed_config_map: dict[str, Any],
) -> None:
    patch = yaml.safe_load(health_fixtures.LAYOUT.config_map_file.read_text(encoding="utf-8"))
    original = argocd.own_config_map()["data"]
    assert installed_config_map["metadata"]["namespace"] == "argocd"
    assert installed_config_map["data"] == {**original, **patch["data"]}
    assert set(patch["data"]) == {
        argocd_health.config_key(kind) for kind in argocd_health.kind_names()
    }


@pytest.mark.parametrize("fixture", health_fixtures.fixtures(), ids=lambda f: f.id)
def test_argo_cd_reports_the_expected_health(
    fixture: health_fixtures.Fixture, argocd_binary: pathlib.Path, argocd_cm: pathlib.Path
) -> None:
    found = argocd.health(argocd_binary, fixture.path, argocd_cm)
    assert (found.status, found.message) == (fixture.status, fixture.message)


def _cpu_service(namespace: str) -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load(CPU_EXAMPLE.read_text(encoding="utf-8"))
    service["metadata"]["namespace"] = namespace
    return service


def test_a_starting_service_is_progressing_then_healthy_never_degraded(
    operator: operator_process.RunningOperator, namespace: str, live: argocd_live.LiveJudge
) -> None:
    seen = live.watch(_cpu_service(namespace), "Healthy")
    print("Argo CD saw:", *(f"{h.status}: {h.message}" for h in seen), sep="\n  ")
    assert [h.status for h in seen[:-1]] == ["Progressing"] * (len(seen) - 1), seen
    assert seen[-1] == argocd.Health("Healthy", "All conditions are met.")


def test_a_service_on_a_missing_pool_is_degraded_naming_the_pool(
    operator: operator_process.RunningOperator, namespace: str, live: argocd_live.LiveJudge
) -> None:
    service = _cpu_service(namespace)
    service["spec"]["resources"]["gpus"] = 1
    service["spec"]["placement"] = {"gpuPool": "no-such-pool"}
    seen = live.watch(service, "Degraded")
    assert seen[-1] == argocd.Health("Degraded", "GPUPool 'no-such-pool' does not exist.")


def test_a_log_policy_with_a_broken_pattern_is_degraded_naming_the_rule(
    operator: operator_process.RunningOperator, namespace: str, live: argocd_live.LiveJudge
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
