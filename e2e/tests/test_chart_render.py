"""The chart as helm renders it: the same bytes every time; the objects of ``manifests/`` with
the same names, RBAC rules, commands, env, ports, probes and security contexts; the CRDs of
``crds/`` behind their toggles; labels that cannot churn on pod templates and selectors; alerts
only on metrics the operator exports; the Argo CD health keys of ``manifests/argocd``; and values
the schema refuses, named in helm's message.

Needs the pinned helm (``make tools`` builds it into the shared cache, before ``make e2e``);
fails, never skips, without it.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from e2e.harness import helm
from kubeinfer import metrics
from kubeinfer.api import crds, kinds

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubeinfer"
NAMESPACE = "kubeinfer-system"
KUBE_VERSION = "1.34.4"

Manifest = dict[str, Any]


HELM = helm.cache_dir() / helm.BINARY_NAME


@pytest.fixture(scope="module", autouse=True)
def _helm_built() -> None:
    if not HELM.is_file():
        pytest.fail(f"helm is not built ({HELM}); run `make tools`")


@pytest.fixture(scope="module")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """helm with private cache, config and data directories: no user state is read."""
    home = tmp_path_factory.mktemp("helm")
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def _template(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(HELM),
            "template",
            "kubeinfer",
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _render(env: dict[str, str], *args: str) -> list[Manifest]:
    done = _template(env, *args)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _by_key(docs: list[Manifest]) -> dict[tuple[str, str], Manifest]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.fixture(scope="module")
def default(helm_home: dict[str, str]) -> dict[tuple[str, str], Manifest]:
    return _by_key(_render(helm_home))


@pytest.fixture(scope="module")
def full(helm_home: dict[str, str]) -> dict[tuple[str, str], Manifest]:
    return _by_key(_render(helm_home, "-f", str(CHART / "ci" / "full-values.yaml")))


def _manifests() -> list[Manifest]:
    kustomization = yaml.safe_load((ROOT / "manifests" / "kustomization.yaml").read_text())
    docs: list[Manifest] = []
    for name in kustomization["resources"]:
        if name == "namespace.yaml":  # helm's --create-namespace or namespace.create
            continue
        text = (ROOT / "manifests" / name).read_text()
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def _without_labels(doc: Manifest) -> Manifest:
    out = {k: v for k, v in doc.items() if k != "status"}
    out["metadata"] = {
        k: v for k, v in doc["metadata"].items() if k not in ("labels", "annotations")
    }
    if doc["kind"] in ("Deployment", "DaemonSet"):
        spec = dict(doc["spec"])
        template = dict(spec["template"])
        template["metadata"] = {}
        pod = dict(template["spec"])
        # The chart's one addition over manifests/: an explicit pull policy.
        pod["containers"] = [
            {k: v for k, v in c.items() if k != "imagePullPolicy"} for c in pod["containers"]
        ]
        template["spec"] = pod
        spec["template"] = template
        out["spec"] = spec
    return out


def test_rendering_twice_gives_the_same_bytes(helm_home: dict[str, str]) -> None:
    values = ("-f", str(CHART / "ci" / "full-values.yaml"))
    first, second = _template(helm_home, *values), _template(helm_home, *values)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout


@pytest.mark.parametrize(
    "manifest",
    _manifests(),
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)
def test_every_object_of_manifests_is_rendered_the_same(
    default: dict[tuple[str, str], Manifest], manifest: Manifest
) -> None:
    rendered = default.get((manifest["kind"], manifest["metadata"]["name"]))
    assert rendered is not None, "the chart does not render this object of manifests/"
    assert _without_labels(rendered) == _without_labels(manifest)
    labels = dict(rendered["metadata"].get("labels") or {})
    expected = dict(manifest["metadata"].get("labels") or {})
    expected["app.kubernetes.io/part-of"] = "kubeinfer"  # kustomization.yaml adds it
    assert {k: v for k, v in labels.items() if k not in RELEASE_LABELS} == expected


#: Labels only the chart sets: which release manages an object, and the chart's version.
RELEASE_LABELS = frozenset(
    {
        "helm.sh/chart",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/version",
    }
)


def test_the_operator_rbac_is_exactly_manifests_rbac(
    default: dict[tuple[str, str], Manifest],
) -> None:
    for name in ("operator", "agent"):
        text = (ROOT / "manifests" / "rbac" / f"{name}-clusterrole.yaml").read_text()
        expected = yaml.safe_load(text)["rules"]
        assert default[("ClusterRole", f"kubeinfer-{name}")]["rules"] == expected
    binding = default[("ClusterRoleBinding", "kubeinfer-operator")]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubeinfer-operator", "namespace": NAMESPACE}
    ]


def test_the_agent_policy_names_the_release_namespace(helm_home: dict[str, str]) -> None:
    docs = _by_key(_render(helm_home, "--namespace", "gpu-ops"))
    policy = docs[("ValidatingAdmissionPolicy", "kubeinfer-agent-own-node")]
    expression = policy["spec"]["matchConditions"][0]["expression"]
    assert expression == (
        'request.userInfo.username == "system:serviceaccount:gpu-ops:kubeinfer-agent"'
    )


def test_crds_come_from_the_models_with_argocd_and_keep_annotations(
    default: dict[tuple[str, str], Manifest],
) -> None:
    for kind in kinds.ALL:
        rendered = dict(default[("CustomResourceDefinition", kind.crd_name)])
        rendered["metadata"] = dict(rendered["metadata"])
        annotations = rendered["metadata"].pop("annotations")
        assert rendered == crds.build_crd(kind)
        assert annotations == {
            "argocd.argoproj.io/sync-options": "ServerSideApply=true,Prune=false,Delete=false",
            "argocd.argoproj.io/sync-wave": "-1",
            "helm.sh/resource-policy": "keep",
        }


def test_crd_toggles(helm_home: dict[str, str]) -> None:
    unkept = _render(helm_home, "--set", "crds.keep=false")
    crd_docs = [d for d in unkept if d["kind"] == "CustomResourceDefinition"]
    assert len(crd_docs) == len(kinds.ALL) + 1  # and kopf's ClusterKopfPeering
    for doc in crd_docs:
        annotations = doc["metadata"]["annotations"]
        assert "helm.sh/resource-policy" not in annotations
        assert annotations["argocd.argoproj.io/sync-options"] == "ServerSideApply=true"
    uninstalled = _render(helm_home, "-f", str(CHART / "ci" / "minimal-values.yaml"))
    kinds_left = sorted({d["kind"] for d in uninstalled})
    assert kinds_left == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]


def _pod_templates(docs: dict[tuple[str, str], Manifest]) -> Iterator[tuple[str, Manifest]]:
    for (kind, name), doc in docs.items():
        if kind in ("Deployment", "DaemonSet"):
            yield f"{kind}/{name}", doc["spec"]


def test_selectors_and_pod_labels_carry_nothing_that_changes_with_the_chart(
    full: dict[tuple[str, str], Manifest],
) -> None:
    seen = 0
    for where, spec in _pod_templates(full):
        labels = spec["template"]["metadata"]["labels"]
        for churning in ("helm.sh/chart", "app.kubernetes.io/version"):
            assert churning not in labels, f"{where} pod template has {churning}"
            assert churning not in spec["selector"]["matchLabels"], where
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        seen += 1
    assert seen == 2


def test_alerts_use_only_metrics_the_operator_exports(
    full: dict[tuple[str, str], Manifest],
) -> None:
    exported = set()
    for metric in metrics.Metrics(CollectorRegistry()).registry.collect():
        exported.add(metric.name)
        exported |= {s.name for s in metric.samples}
        exported |= {f"{metric.name}_total", f"{metric.name}_bucket"}
    rule = full[("PrometheusRule", "kubeinfer-operator")]
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    used = {m for r in alerts for m in re.findall(r"kubeinfer_[a-z_]+", r["expr"])}
    assert used, "no alert uses an operator metric"
    assert used <= exported
    assert {"KubeinferOperatorDown", "KubeinferReconcileErrors", "KubeinferGPUOOMRisk"} <= {
        r["alert"] for r in alerts
    }


def test_the_servicemonitor_scrapes_the_operator_service(
    full: dict[tuple[str, str], Manifest],
) -> None:
    monitor = full[("ServiceMonitor", "kubeinfer-operator")]
    service = full[("Service", "kubeinfer-operator")]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_argocd_health_checks_are_manifests_argocd_keys_only(
    full: dict[tuple[str, str], Manifest],
) -> None:
    expected = yaml.safe_load((ROOT / "manifests" / "argocd" / "argocd-cm.yaml").read_text())
    cm = full[("ConfigMap", "argocd-cm")]
    assert cm["metadata"]["namespace"] == "argocd"
    assert cm["data"] == expected["data"]
    options = cm["metadata"]["annotations"]["argocd.argoproj.io/sync-options"].split(",")
    assert {"ServerSideApply=true", "Prune=false", "Delete=false"} <= set(options)


def test_the_full_values_turn_every_toggle_on(full: dict[tuple[str, str], Manifest]) -> None:
    kinds_rendered = {kind for kind, _ in full}
    assert {
        "Namespace",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "PrometheusRule",
        "ConfigMap",
        "DaemonSet",
        "DeviceClass",
        "PriorityClass",
        "ValidatingAdmissionPolicy",
    } <= kinds_rendered
    operator = full[("Deployment", "kubeinfer-operator")]["spec"]["template"]["spec"]
    assert operator["containers"][0]["command"] == [
        "kubeinfer",
        "run",
        "--namespace=models",
        "--namespace=staging",
        "--verbose",
        "--standalone",
    ]
    assert operator["priorityClassName"] == "system-cluster-critical"


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ("operator:\n  replicaz: 2\n", "replicaz"),
        ("agent:\n  enabled: yes-please\n", "/agent/enabled"),
        ("operator:\n  replicas: '1'\n", "/operator/replicas"),
        ("image:\n  pullPolicy: Sometimes\n", "/image/pullPolicy"),
        ("commonLabels:\n  helm.sh/chart: x\n", "/commonLabels/helm.sh~1chart"),
    ],
    ids=["unknown key", "wrong type", "string for integer", "not in enum", "reserved label"],
)
def test_bad_values_are_refused_naming_the_key(
    helm_home: dict[str, str], tmp_path: Path, values: str, named: str
) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text(values)
    done = _template(helm_home, "-f", str(bad))
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert named in done.stderr, done.stderr


def test_the_operator_pod_meets_pod_security_restricted(
    default: dict[tuple[str, str], Manifest],
) -> None:
    pod = default[("Deployment", "kubeinfer-operator")]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert not context.get("capabilities", {}).get("add")
    assert not {"hostNetwork", "hostPID", "hostIPC"} & pod.keys()
    # restricted admits only these volume types (no hostPath)
    allowed = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral"}
    allowed |= {"persistentVolumeClaim", "projected", "secret"}
    for volume in pod.get("volumes", []):
        assert set(volume) - {"name"} <= allowed, volume


@pytest.mark.parametrize(
    "values", sorted((CHART / "ci").glob("*-values.yaml")), ids=lambda p: p.name
)
def test_lint_strict_passes_for_every_ci_values_file(
    helm_home: dict[str, str], values: Path
) -> None:
    done = subprocess.run(
        [str(HELM), "lint", "--strict", str(CHART), "-f", str(values), "-n", NAMESPACE],
        env=helm_home,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_pdb_takes_min_available_or_else_max_unavailable(helm_home: dict[str, str]) -> None:
    on = ("--set", "operator.podDisruptionBudget.enabled=true")
    default = _by_key(_render(helm_home, *on))[("PodDisruptionBudget", "kubeinfer-operator")]
    assert default["spec"]["maxUnavailable"] == 1 and "minAvailable" not in default["spec"]
    pinned = _by_key(
        _render(helm_home, *on, "--set", "operator.podDisruptionBudget.minAvailable=0")
    )[("PodDisruptionBudget", "kubeinfer-operator")]
    assert pinned["spec"]["minAvailable"] == 0 and "maxUnavailable" not in pinned["spec"]
    assert pinned["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "kubeinfer",
        "app.kubernetes.io/component": "operator",
    }
    assert ("PodDisruptionBudget", "kubeinfer-operator") not in _by_key(_render(helm_home))
