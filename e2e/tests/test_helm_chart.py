"""The Helm chart ``charts/kubeinfer`` with the pinned helm, on the real control plane.

Covers: the built helm reporting the pinned version; ``helm lint --strict`` for every
``ci/*-values.yaml``; each render accepted by the API server (server-side apply, dry run);
values with an unknown key or a wrong type refused by ``helm template``, ``helm upgrade`` and
``helm install`` naming the key, the running release left as it was; ``helm install`` then
``helm upgrade`` with changed values reaching the Deployment and the release revision; the
operator brought up as the chart's ServiceAccount (the installed Deployment's command and env,
a TokenRequest token of its ServiceAccount, so only the chart's RBAC is in play) reconciling
the CPU example to Ready; and the chart's defaults equal to ``manifests/`` (same objects, RBAC
rules, container specs), with the differences that are allowed named in ``ALLOWED_LABELS`` /
``ALLOWED_ANNOTATIONS``.

Sharing the session's control plane: the chart's object names are fixed (one kubeinfer per
cluster) and the session already holds ``manifests/``' cluster-wide objects under the same names
(ClusterRoles, bindings, admission policies, PriorityClasses, DeviceClass, CRDs). The release
is installed into a fresh namespace with ``crds.install=false``, ``priorityClasses.create=false``
and ``dra.deviceClass=false`` (those exist, equal to the chart's: the equality test shows it) and
``--take-ownership`` for the RBAC and admission objects, which it must own to be "the chart's
RBAC". The teardown uninstalls the release and re-applies ``manifests/``' access objects, so the
tests after this module find them exactly as the session set them up (checked before leaving).
The ServiceAccounts in ``kubeinfer-system`` are never touched: tokens other fixtures hold stay
valid.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from e2e.harness import chart_check, helm, kubectl, operator_process, processes, rbac, versions
from e2e.harness import cluster as cluster_setup

pytestmark = pytest.mark.e2e

CI_VALUES = sorted((chart_check.CHART_DIR / "ci").glob("*-values.yaml"))
BAD_VALUES = chart_check.bad_values_files()
EXAMPLES = versions.REPO_ROOT / "manifests" / "examples"
RELEASE = "kubeinfer-helm-e2e"
# Objects the session set up from manifests/ and the release must not recreate.
SHARED_OFF = ("crds.install=false", "priorityClasses.create=false", "dra.deviceClass=false")
UPGRADED_CPU_REQUEST = "150m"

# Labels helm and the chart add for release tracking and the chart version: they identify the
# release that manages an object and change nothing the API server or the operator acts on.
ALLOWED_LABELS = frozenset(
    {
        "helm.sh/chart",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/version",
        "app.kubernetes.io/part-of",  # manifests/ adds it through kustomize; compared below
    }
)
# Annotations addressed to Argo CD and helm (sync order, server-side apply, keep on uninstall).
ALLOWED_ANNOTATIONS = frozenset(
    {
        "argocd.argoproj.io/sync-options",
        "argocd.argoproj.io/sync-wave",
        "helm.sh/resource-policy",
    }
)


@dataclasses.dataclass(frozen=True)
class Release:
    """The installed and upgraded release: what each revision put in the cluster."""

    name: str
    namespace: str
    installed_deployment: dict[str, Any]
    upgraded_deployment: dict[str, Any]
    installed_revision: int
    upgraded_revision: int


def _deployment(cluster: cluster_setup.Cluster, namespace: str) -> dict[str, Any]:
    text = cluster.kubectl(
        "get", "deployment", rbac.OPERATOR_SERVICE_ACCOUNT, "-n", namespace, "-o", "json"
    ).stdout
    found: dict[str, Any] = json.loads(text)
    return found


def _revision(helm_: helm.Helm, release: str, namespace: str) -> int:
    status = json.loads(helm_("status", release, "-n", namespace, "-o", "json").stdout)
    return int(status["version"])


def _operator_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = next(c for c in containers if c["name"] == "operator")
    return found


@pytest.fixture(scope="module")
def helm_binary() -> pathlib.Path:
    return helm.ensure_binary()


@pytest.fixture(scope="module")
def offline_helm(helm_binary: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> helm.Helm:
    """helm with no cluster: lint and template."""
    return helm.Helm(binary=helm_binary, home=tmp_path_factory.mktemp("helm-offline"))


@pytest.fixture(scope="module")
def admin_helm(
    helm_binary: pathlib.Path,
    cluster: cluster_setup.Cluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> helm.Helm:
    """helm as the cluster admin."""
    return helm.Helm(
        binary=helm_binary,
        home=tmp_path_factory.mktemp("helm-admin"),
        kubeconfig=cluster.kubeconfig,
    )


@pytest.fixture(scope="module")
def release_namespace(cluster: cluster_setup.Cluster) -> Iterator[str]:
    """A fresh namespace for the release (and the example it reconciles)."""
    name = f"helm-e2e-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _restore_session_access(cluster: cluster_setup.Cluster) -> None:
    """Re-apply manifests/' access objects; check the operator binding names kubeinfer-system."""
    rbac.apply_access(cluster.kubectl)
    binding = json.loads(
        cluster.kubectl(
            "get", "clusterrolebinding", rbac.OPERATOR_SERVICE_ACCOUNT, "-o", "json"
        ).stdout
    )
    assert [s["namespace"] for s in binding["subjects"]] == [rbac.OPERATOR_NAMESPACE], binding


@pytest.fixture(scope="module")
def release(
    cluster: cluster_setup.Cluster,
    kubeinfer_crds: tuple[str, ...],
    operator_kubeconfig: pathlib.Path,
    admin_helm: helm.Helm,
    release_namespace: str,
) -> Iterator[Release]:
    """``helm install`` with the defaults, then ``helm upgrade`` changing the operator's CPU
    request and turning on verbose logging; uninstalled (and the session's objects restored)
    after the module. ``operator_kubeconfig`` first sets up what the session shares whatever
    ran before: manifests/' PriorityClasses, DeviceClass and peering CRD, which the release
    leaves alone, and its RBAC, which the release adopts."""
    common = ["--namespace", release_namespace, "--take-ownership", "--force-conflicts"]
    for assignment in SHARED_OFF:
        common += ["--set", assignment]
    started = time.monotonic()
    try:
        admin_helm("install", RELEASE, str(chart_check.CHART_DIR), *common)
        installed = _deployment(cluster, release_namespace)
        installed_revision = _revision(admin_helm, RELEASE, release_namespace)
        admin_helm(
            "upgrade",
            RELEASE,
            str(chart_check.CHART_DIR),
            *common,
            "--set",
            f"operator.resources.requests.cpu={UPGRADED_CPU_REQUEST}",
            "--set",
            "operator.verbose=true",
        )
        upgraded = _deployment(cluster, release_namespace)
        print(f"helm install + upgrade took {time.monotonic() - started:.1f}s")
        yield Release(
            name=RELEASE,
            namespace=release_namespace,
            installed_deployment=installed,
            upgraded_deployment=upgraded,
            installed_revision=installed_revision,
            upgraded_revision=_revision(admin_helm, RELEASE, release_namespace),
        )
    finally:
        admin_helm("uninstall", RELEASE, "--namespace", release_namespace, check=False)
        _restore_session_access(cluster)


# --- offline: lint and render ------------------------------------------------------------------


def test_the_built_helm_reports_the_pinned_version(helm_binary: pathlib.Path) -> None:
    assert helm.reported_version(helm_binary) == versions.load().helm


def test_the_chart_has_ci_values_files() -> None:
    assert chart_check.ci_values_files() == CI_VALUES


def test_check_inputs_without_what_they_need_are_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(chart_check.ChartCheckError, match=r"holds no \*-values\.yaml"):
        chart_check.ci_values_files(tmp_path)
    with pytest.raises(chart_check.ChartCheckError, match="no values file the schema must refuse"):
        chart_check.bad_values_files(tmp_path)
    (tmp_path / "silent.yaml").write_text("replicas: two\n", encoding="utf-8")
    with pytest.raises(
        chart_check.ChartCheckError, match="needs exactly one non-empty '# expect:'"
    ):
        chart_check.bad_values_files(tmp_path)


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda path: path.stem)
def test_lint_strict_passes(offline_helm: helm.Helm, values: pathlib.Path) -> None:
    chart_check.lint(offline_helm, values=values)


@pytest.mark.parametrize("bad", BAD_VALUES, ids=lambda bad: bad.path.stem)
def test_bad_values_are_refused_naming_the_key(
    offline_helm: helm.Helm, bad: chart_check.BadValues
) -> None:
    message = chart_check.check_refused(offline_helm, bad)
    print(f"{bad.path.name}: {message}")


# --- the API server accepts every render ------------------------------------------------------


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda path: path.stem)
def test_render_passes_server_side_dry_run(
    cluster: cluster_setup.Cluster,
    kubeinfer_crds: tuple[str, ...],
    offline_helm: helm.Helm,
    release_namespace: str,
    values: pathlib.Path,
) -> None:
    # Namespaces other than the release's (Argo CD's, prometheus-adapter's) point at the fresh
    # namespace, which exists; field ownership is not the chart's concern here, so conflicts with
    # the session's own copies of the cluster-wide objects are forced (it is a dry run).
    rendered = chart_check.check_renders(offline_helm, values=values)
    objects = chart_check.objects(
        chart_check.template(
            offline_helm,
            values=[values],
            set_values=[
                f"argocd.healthChecks.namespace={release_namespace}",
                f"monitoring.adapterRules.namespace={release_namespace}",
            ],
            release=RELEASE,
            namespace=release_namespace,
        ).stdout
    )
    assert len(objects) == len(rendered)
    out = cluster.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--force-conflicts",
        "--field-manager=kubeinfer-chart-dry-run",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(objects),
    ).stdout
    applied = [line for line in out.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(objects), out


# --- install, upgrade, refuse a bad upgrade --------------------------------------------------


def test_install_then_upgrade_reaches_the_deployment(release: Release) -> None:
    assert (release.installed_revision, release.upgraded_revision) == (1, 2)
    before = _operator_container(release.installed_deployment)
    after = _operator_container(release.upgraded_deployment)
    assert before["resources"]["requests"]["cpu"] == "100m"
    assert after["resources"]["requests"]["cpu"] == UPGRADED_CPU_REQUEST
    assert "--verbose" not in before["command"] and "--verbose" in after["command"], after
    assert release.upgraded_deployment["metadata"]["generation"] == 2
    assert release.upgraded_deployment["spec"]["template"]["spec"]["serviceAccountName"] == (
        rbac.OPERATOR_SERVICE_ACCOUNT
    )


@pytest.mark.parametrize("bad", BAD_VALUES, ids=lambda bad: bad.path.stem)
def test_bad_upgrade_or_install_is_refused_and_the_release_is_untouched(
    cluster: cluster_setup.Cluster,
    admin_helm: helm.Helm,
    release: Release,
    bad: chart_check.BadValues,
) -> None:
    result = admin_helm(
        "upgrade",
        release.name,
        str(chart_check.CHART_DIR),
        "--namespace",
        release.namespace,
        "--reuse-values",
        "-f",
        str(bad.path),
        check=False,
    )
    assert result.returncode != 0 and bad.expect in result.stderr, result.stderr
    assert _revision(admin_helm, release.name, release.namespace) == release.upgraded_revision
    live = _deployment(cluster, release.namespace)
    assert live["metadata"]["generation"] == release.upgraded_deployment["metadata"]["generation"]
    other = f"{release.name}-bad"
    result = admin_helm(
        "install",
        other,
        str(chart_check.CHART_DIR),
        "--namespace",
        release.namespace,
        "-f",
        str(bad.path),
        check=False,
    )
    assert result.returncode != 0 and bad.expect in result.stderr, result.stderr
    listed = json.loads(admin_helm("list", "--namespace", release.namespace, "-o", "json").stdout)
    assert [r["name"] for r in listed] == [release.name], listed


# --- the operator as the chart's ServiceAccount ----------------------------------------------


def _local_run(container: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The Deployment container's ``kubeinfer run`` arguments past what the harness sets itself
    (``--all-namespaces``, the liveness address), and its literal env."""
    argv = [*container.get("command", []), *container.get("args", [])]
    assert argv[:2] == ["kubeinfer", "run"], argv
    extra = [a for a in argv[2:] if a != "--all-namespaces"]
    assert not [a for a in extra if a.startswith(("--http-", "--liveness"))], extra
    env = {}
    for variable in container.get("env", []):
        assert "value" in variable, f"{variable['name']}: only literal env runs locally"
        env[variable["name"]] = variable["value"]
    return extra, env


@dataclasses.dataclass(frozen=True)
class ChartOperator:
    """The operator started from the installed Deployment, as its ServiceAccount."""

    running: operator_process.RunningOperator
    kubectl: kubectl.Kubectl  # as the chart's ServiceAccount
    service_account: str
    extra_args: list[str]


@pytest.fixture
def chart_operator(
    cluster: cluster_setup.Cluster, release: Release, tmp_path: pathlib.Path
) -> Iterator[ChartOperator]:
    """``kubeinfer run`` with the installed Deployment's command and env, authenticated by a
    TokenRequest token of the Deployment's ServiceAccount."""
    live = _deployment(cluster, release.namespace)
    account = live["spec"]["template"]["spec"]["serviceAccountName"]
    kubeconfig = rbac.service_account_kubeconfig(
        cluster.kubectl,
        tmp_path / "chart-operator.kubeconfig",
        name=account,
        namespace=release.namespace,
    )
    extra_args, env = _local_run(_operator_container(live))
    with processes.Supervisor() as supervisor:
        running = operator_process.start(
            supervisor,
            kubeconfig=kubeconfig,
            log_path=tmp_path / "chart-operator.log",
            extra_args=extra_args,
            env=env,
        )
        yield ChartOperator(
            running=running,
            kubectl=kubectl.Kubectl(binary=cluster.kubectl.binary, kubeconfig=kubeconfig),
            service_account=account,
            extra_args=extra_args,
        )


def test_operator_as_the_charts_service_account_reconciles_an_example(
    cluster: cluster_setup.Cluster,
    release: Release,
    chart_operator: ChartOperator,
    operator_log: operator_process.RunningOperator,
) -> None:
    whoami = json.loads(chart_operator.kubectl("auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == (
        f"system:serviceaccount:{release.namespace}:{chart_operator.service_account}"
    )
    can_read_secrets = chart_operator.kubectl("auth", "can-i", "list", "secrets", "-A", check=False)
    assert can_read_secrets.stdout.strip() == "no"
    assert "--verbose" in chart_operator.extra_args  # the upgraded revision is what runs
    example = yaml.safe_load(
        (EXAMPLES / "02-inferenceservice-cpu.yaml").read_text(encoding="utf-8")
    )
    example["metadata"]["namespace"] = release.namespace
    started = time.monotonic()
    cluster.kubectl.apply(text=yaml.safe_dump(example))
    cluster.kubectl(
        "wait",
        "-n",
        release.namespace,
        f"inferenceservice/{example['metadata']['name']}",
        "--for=condition=Ready",
        "--timeout=90s",
        timeout=100,
    )
    print(f"the CPU example was Ready {time.monotonic() - started:.1f}s after apply")
    children = cluster.kubectl(
        "get", "deployments", "-n", release.namespace, "-o", "name"
    ).stdout.split()
    assert f"deployment.apps/{example['metadata']['name']}-v1" in children, children


@pytest.fixture
def operator_log(chart_operator: ChartOperator) -> operator_process.RunningOperator:
    """The chart operator's process, for the report hook that attaches its log on failure."""
    return chart_operator.running


# --- the chart's defaults equal manifests/ ----------------------------------------------------


def _cluster_scoped_kinds(cluster: cluster_setup.Cluster) -> frozenset[str]:
    """Kinds the API server serves without a namespace (kustomize may still set one on kinds it
    does not know; the API server ignores it, and so does this comparison)."""
    table = cluster.kubectl("api-resources", "--namespaced=false", "--no-headers").stdout
    return frozenset(line.split()[-1] for line in table.splitlines() if line.strip())


def _by_key(objects: list[dict[str, Any]], cluster_scoped: frozenset[str]) -> dict[str, Any]:
    """``Kind/namespace/name`` to the object, the namespace dropped from cluster-scoped kinds."""
    found = {}
    for obj in objects:
        if obj["kind"] in cluster_scoped:
            obj["metadata"].pop("namespace", None)
        meta = obj["metadata"]
        found[f"{obj['kind']}/{meta.get('namespace', '')}/{meta['name']}"] = obj
    return found


def _normalised(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop what may differ (ALLOWED_LABELS, ALLOWED_ANNOTATIONS) and fill API defaults either
    side may leave out, so the rest must be equal field for field."""
    copy: dict[str, Any] = json.loads(json.dumps(obj))
    metas = [copy["metadata"]]
    template = copy.get("spec", {}).get("template")
    if isinstance(template, dict) and "metadata" in template:
        metas.append(template["metadata"])
    for meta in metas:
        for field, allowed in (("labels", ALLOWED_LABELS), ("annotations", ALLOWED_ANNOTATIONS)):
            kept = {k: v for k, v in (meta.get(field) or {}).items() if k not in allowed}
            meta.pop(field, None)
            if kept:
                meta[field] = kept
    if isinstance(template, dict):
        for container in template.get("spec", {}).get("containers", []):
            if not str(container.get("image", "")).endswith(":latest"):
                container.setdefault("imagePullPolicy", "IfNotPresent")
    if copy["kind"] in {"ClusterRole", "Role"}:
        copy["rules"] = sorted(copy.get("rules", []), key=lambda r: json.dumps(r, sort_keys=True))
    return copy


def _differences(path: str, chart: Any, manifests: Any) -> list[str]:
    if isinstance(chart, dict) and isinstance(manifests, dict):
        return [
            line
            for key in sorted(set(chart) | set(manifests))
            for line in _differences(f"{path}.{key}", chart.get(key), manifests.get(key))
        ]
    if isinstance(chart, list) and isinstance(manifests, list) and len(chart) == len(manifests):
        return [
            line
            for index, (a, b) in enumerate(zip(chart, manifests, strict=True))
            for line in _differences(f"{path}[{index}]", a, b)
        ]
    if chart != manifests:
        return [f"{path}: chart {json.dumps(chart)} != manifests {json.dumps(manifests)}"]
    return []


def test_chart_defaults_equal_manifests(
    cluster: cluster_setup.Cluster, offline_helm: helm.Helm
) -> None:
    """Same objects, same RBAC rules, same container specs. Allowed to differ: the labels and
    annotations above; the kubeinfer CRDs (the chart templates them, ``crds/`` holds them for
    manifests/: the chart's own staleness test keeps them equal); the Namespace (manifests/ has
    it, the chart leaves it to ``--create-namespace`` unless ``namespace.create``)."""
    scoped = _cluster_scoped_kinds(cluster)
    rendered = chart_check.objects(chart_check.template(offline_helm).stdout)
    chart = _by_key(
        [
            o
            for o in rendered
            if not (
                o["kind"] == "CustomResourceDefinition" and o["spec"]["group"] == "kubeinfer.io"
            )
        ],
        scoped,
    )
    manifests = _by_key(
        [o for o in rbac.render(cluster.kubectl) if o["kind"] != "Namespace"], scoped
    )
    problems = [f"only in the chart: {k}" for k in sorted(set(chart) - set(manifests))]
    problems += [f"only in manifests/: {k}" for k in sorted(set(manifests) - set(chart))]
    for key in sorted(set(chart) & set(manifests)):
        problems += _differences(key, _normalised(chart[key]), _normalised(manifests[key]))
    for key in sorted(set(chart) & set(manifests)):
        part_of = chart[key]["metadata"].get("labels", {}).get("app.kubernetes.io/part-of")
        if part_of != "kubeinfer":
            problems.append(f"{key}: label app.kubernetes.io/part-of is {part_of!r}")
    assert not problems, "\n".join(problems)
