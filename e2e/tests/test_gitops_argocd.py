"""A real Argo CD syncs kubeinfer from a Git repository; everything is driven by Git commits.

Argo CD "Core" (``argocd-repo-server`` and ``argocd-application-controller`` from the pinned
module, Redis from Debian) runs on loopback against the session's control plane, with
kubeinfer's health scripts in ``argocd-cm``; a local repository (``file://``) is the source of
truth, and the test only commits to it. Applications: ``kubeinfer`` (``charts/kubeinfer``),
``examples`` (``manifests/examples/`` moved into this module's namespace) and ``chat`` (one
InferenceService with a canary analysed on real Prometheus over simulators), all automated with
prune, self-heal and server-side apply.

The tests run in file order on one module-scoped Argo CD, repository, operator and simulators:

- the chart (Helm source) syncs and is Healthy, its CRDs (sync wave -1) applied before anything
  of wave 0 (the controller's own record of what it applied, in order), and its argocd-cm
  merged into Argo CD's;
- ``examples`` and ``chat`` sync; ``chat`` is Progressing until its service is Ready, then Healthy;
- a commit with a new model version: Progressing through the canary, Healthy after promotion;
- a commit with a failing version rolls back; the Application is Healthy naming the rollback
  (never Degraded); ``git revert`` brings Synced/Healthy, and the bad version is not tried again;
- a manual ``kubectl patch`` of the spec is reverted by self-heal;
- a file removed from Git is pruned, and the InferenceService's children go with it;
- bad input: an Application over a broken manifest shows Argo CD's ComparisonError; a CR the API
  server refuses (CEL rule) fails the sync with the API server's message; nothing running moves;
- across the module: no Application is ever OutOfSync at a revision it was Synced at, except
  inside the manual patch's window (the operator mutates no spec and copies no tracking
  metadata to children), and no InferenceService spec field is owned by the operator.

Commit -> Synced and commit -> Healthy are printed (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import secrets
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from e2e.harness import (
    argocd_apps,
    argocd_core,
    git_repo,
    helm,
    objects,
    operator_process,
    processes,
    prometheus,
    scrape_targets,
    versions,
    waiting,
)
from e2e.harness import cluster as cluster_setup
from e2e.simulator import behaviour, fleet, load, server

pytestmark = pytest.mark.e2e

EXAMPLES = versions.REPO_ROOT / "manifests" / "examples"
CHAT = "chat"
CHAT_FILE = "services/chat/inferenceservice.yaml"
EMBEDDER = "tiny-embedder"
EMBEDDER_FILE = "examples/02-inferenceservice-cpu.yaml"
BAD_FILE = "examples/90-refused.yaml"
SYNC_TIMEOUT = 90.0
TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
TRACKING_LABEL = "app.kubernetes.io/instance"
CHART = versions.REPO_ROOT / "charts" / "kubeinfer"
CHART_APP = "kubeinfer"
CHART_NAMESPACE = "kubeinfer-system"
CHART_VALUES = {"argocd": {"healthChecks": {"enabled": True}}}
NO_RESOURCE = argocd_apps.Resource(ref="", sync="", health="", message="")
CHART_WORKLOADS = ("deployment/kubeinfer-operator", "daemonset/kubeinfer-agent")
APPLICATIONS = (CHART_APP, "examples", CHAT, "broken")


@dataclasses.dataclass
class GitOps:
    """What the module's tests share: the namespace, repository, recorder and what happened."""

    cluster: cluster_setup.Cluster
    namespace: str
    repo: git_repo.Repository
    recorder: argocd_apps.Recorder
    sims: fleet.Fleet
    argocd: argocd_core.ArgoCDCore
    operator: operator_process.RunningOperator
    patch_windows: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    timings: list[str] = dataclasses.field(default_factory=list)

    def log_files(self) -> list[pathlib.Path]:
        """Argo CD's and the operator's logs, attached to a failing test's report."""
        return [*(p.log_path for p in self.argocd.processes), self.operator.log_path]

    def commit(self, message: str) -> tuple[str, float]:
        """Commit the work tree; its SHA and when it was made."""
        sha = self.repo.commit(message)
        return sha, time.monotonic()

    def revert(self, sha: str) -> tuple[str, float]:
        """``git revert`` one commit; the revert's SHA and when it was made."""
        reverted = self.repo.revert(sha)
        return reverted, time.monotonic()

    def synced(self, app: str, sha: str, since: float) -> argocd_apps.Seen:
        """The first state of ``app`` Synced at ``sha`` with its sync operation finished."""
        return self.recorder.wait(
            app,
            lambda s: s.sync == "Synced" and s.revision == sha and s.operation != "Running",
            what=f"Synced at {sha[:8]}",
            since=since,
            timeout=SYNC_TIMEOUT,
        )

    def healthy(self, app: str, since: float, timeout: float = 240.0) -> argocd_apps.Seen:
        """The first Healthy state of ``app`` since ``since``."""
        return self.recorder.wait(
            app, lambda s: s.health == "Healthy", what="Healthy", since=since, timeout=timeout
        )

    def resources(self, app: str) -> tuple[argocd_apps.Resource, ...]:
        """Each resource ``app`` manages, as last seen."""
        state = self.recorder.state(app)
        return state.resources if state else ()

    def report(self, what: str, committed: float, synced: float, healthy: float) -> None:
        """Print and keep one commit's figures."""
        line = (
            f"{what}: commit -> Synced {synced - committed:.1f} s, "
            f"commit -> Healthy {healthy - committed:.1f} s"
        )
        self.timings.append(line)
        print(f"\n{line}")

    def chat_status(self) -> dict[str, Any]:
        """The chat InferenceService's status."""
        return objects.status(self.cluster, f"infsvc/{CHAT}", namespace=self.namespace)


def _chat(namespace: str, version: str) -> str:
    """The chat InferenceService: a one-step canary analysed every 30 s on success rate."""
    return yaml.safe_dump(
        {
            "apiVersion": "kubeinfer.io/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": CHAT, "namespace": namespace},
            "spec": {
                "model": {
                    "name": "chat",
                    "version": version,
                    "uri": "s3://models/chat",
                    "runtime": "vllm",
                },
                "resources": {"gpus": 0, "cpu": "1", "memory": "2Gi", "sharedMemory": "256Mi"},
                "replicas": {"min": 2, "max": 2},
                "sla": {"tier": "silver"},
                "autoscaling": {"engine": "keda"},
                "traffic": {"provider": "none"},
                "rollout": {
                    "strategy": "canary",
                    "steps": [{"weight": 50, "pause": "30s"}],
                    "analysis": {"interval": "30s", "minSamples": 20},
                },
            },
        },
        sort_keys=False,
    )


def _examples(repo: git_repo.Repository, namespace: str) -> None:
    """Copy ``manifests/examples`` into ``examples/``, each object moved into ``namespace``."""
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        for document in documents:
            document["metadata"]["namespace"] = namespace
        repo.write(f"examples/{path.name}", yaml.safe_dump_all(documents, sort_keys=False))


@pytest.fixture(scope="module")
def argocd(
    cluster: cluster_setup.Cluster,
    argocd_binary: pathlib.Path,
    installed_config_map: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[argocd_core.ArgoCDCore]:
    """Argo CD core on loopback with kubeinfer's health scripts, for this module."""
    argocd_core.install(cluster.kubectl, argocd_cm=installed_config_map)
    with processes.Supervisor() as supervisor:
        core = argocd_core.start(
            supervisor,
            binary=argocd_binary,
            kubeconfig=cluster.kubeconfig,
            run_dir=tmp_path_factory.mktemp("argocd"),
            helm=helm.ensure_binary(),
        )
        yield core


@pytest.fixture(scope="module")
def gitops(
    cluster: cluster_setup.Cluster,
    argocd: argocd_core.ArgoCDCore,
    scraper: prometheus.Prometheus,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GitOps]:
    """A repository holding the examples and chat v1, the operator analysing on the module's
    Prometheus, simulators for chat's pods under load, and the recorder."""
    namespace = f"gitops-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", namespace)
    repo = git_repo.init(tmp_path_factory.mktemp("gitops-repo"))
    _examples(repo, namespace)
    repo.write(CHAT_FILE, _chat(namespace, "v1"))
    repo.commit("examples and chat v1")
    assert cluster.kubeinfer_crds
    with contextlib.ExitStack() as stack:
        operator = stack.enter_context(
            operator_process.running(
                cluster.operator_kubeconfig,
                argocd.run_dir / "logs" / "kubeinfer-operator.log",
                ["--prometheus-url", scraper.url],
            )
        )
        api = stack.enter_context(contextlib.closing(cluster.api_client()))
        sims = stack.enter_context(
            fleet.Fleet(server.Identity(runtime="vllm", model="chat"), behaviour.Behaviour())
        )
        stack.enter_context(
            scrape_targets.Follower(
                api, namespace=namespace, monitor_name=CHAT, simulators=sims, scraper=scraper
            )
        )
        recorder = stack.enter_context(argocd_apps.Recorder(api))
        _, stop_load = sims.start_load(load.ROLLOUT)
        stack.callback(stop_load)
        yield GitOps(cluster, namespace, repo, recorder, sims, argocd, operator)
        argocd.ensure_running()
        _leave_the_session_as_it_was(cluster, namespace)


def _leave_the_session_as_it_was(cluster: cluster_setup.Cluster, namespace: str) -> None:
    """Delete the Applications without cascading (no finalizer: the CRDs and the access objects
    the session shares with ``manifests/`` stay), then the chart's workloads, which only this
    module made, and the module's namespace."""
    for app in APPLICATIONS:
        cluster.kubectl(
            "delete",
            "application",
            app,
            f"--namespace={argocd_core.NAMESPACE}",
            "--ignore-not-found",
        )
    for workload in CHART_WORKLOADS:
        cluster.kubectl(
            "delete",
            workload,
            f"--namespace={CHART_NAMESPACE}",
            "--ignore-not-found",
            "--wait=false",
        )
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def _apply(gitops: GitOps, name: str, path: str) -> float:
    """Create one Application over ``path``; when."""
    manifest = argocd_apps.application(
        name, repo_url=gitops.repo.url, path=path, namespace=gitops.namespace
    )
    gitops.cluster.kubectl.apply(text=yaml.safe_dump(manifest))
    return time.monotonic()


def test_chart_syncs_with_its_crds_and_is_healthy(gitops: GitOps) -> None:
    gitops.repo.copy_tree(CHART, "charts/kubeinfer")
    sha, committed = gitops.commit("the kubeinfer chart")
    manifest = argocd_apps.application(
        CHART_APP,
        repo_url=gitops.repo.url,
        path="charts/kubeinfer",
        namespace=CHART_NAMESPACE,
        helm_values=CHART_VALUES,
    )
    gitops.cluster.kubectl.apply(text=yaml.safe_dump(manifest))
    synced = gitops.synced(CHART_APP, sha, committed)
    healthy = gitops.healthy(CHART_APP, committed)
    gitops.report("the chart (Application created)", committed, synced.at, healthy.at)
    resources = {r.ref: (r.sync, r.health) for r in gitops.resources(CHART_APP)}
    for crd in ("inferenceservices", "gpupools", "chaosexperiments", "logpolicies"):
        assert resources.get(f"CustomResourceDefinition/{crd}.kubeinfer.io", ("",))[0] == "Synced"
        annotations = json.loads(
            gitops.cluster.kubectl("get", "crd", f"{crd}.kubeinfer.io", "-o", "json").stdout
        )["metadata"]["annotations"]
        assert annotations["argocd.argoproj.io/sync-wave"] == "-1", annotations
    assert resources.get("Deployment/kubeinfer-operator", ("",))[0] == "Synced", resources
    # Wave -1 first: the controller records each applied resource in order, and every CRD
    # comes before the first object of wave 0.
    applied = _applied_kinds(gitops.argocd, CHART_APP)
    crds = [i for i, kind in enumerate(applied) if kind == "CustomResourceDefinition"]
    others = [i for i, kind in enumerate(applied) if kind != "CustomResourceDefinition"]
    assert crds and others and max(crds) < min(others), applied
    # The chart's argocd-cm merged kubeinfer's health keys into Argo CD's own, as its owner.
    managers = json.loads(
        gitops.cluster.kubectl(
            "get",
            "configmap",
            "argocd-cm",
            "-n",
            argocd_core.NAMESPACE,
            "-o",
            "json",
            "--show-managed-fields",
        ).stdout
    )["metadata"]["managedFields"]
    assert "argocd-controller" in [m["manager"] for m in managers]


def _applied_kinds(core: argocd_core.ArgoCDCore, app: str) -> list[str]:
    """Kinds of the resources the controller applied for ``app``, in the order it logged them."""
    log_file = core.run_dir / "logs" / "argocd-application-controller.log"
    kinds = []
    for line in log_file.read_text(encoding="utf-8").splitlines():
        if "Adding resource result" in line and f" application={app} " in line:
            kinds.append(line.split(" kind=", 1)[1].split(" ", 1)[0])
    return kinds


def _ready(gitops: GitOps, name: str) -> str:
    ready = objects.condition(
        objects.status(gitops.cluster, f"infsvc/{name}", namespace=gitops.namespace), "Ready"
    )
    return str(ready.get("status", ""))


def test_applications_sync_and_chat_is_healthy_only_once_ready(gitops: GitOps) -> None:
    sha = gitops.repo.head()
    created = _apply(gitops, CHAT, "services/chat")
    _apply(gitops, "examples", "examples")
    synced = gitops.synced(CHAT, sha, created)
    healthy = gitops.healthy(CHAT, created)
    assert _ready(gitops, CHAT) == "True", "Healthy before the service was Ready"
    gitops.report("Application created (chat v1)", created, synced.at, healthy.at)
    before = [s.state.health for s in gitops.recorder.history(CHAT, created) if s.at < healthy.at]
    assert "Progressing" in before, gitops.recorder.describe(CHAT, created)
    assert "Degraded" not in before, gitops.recorder.describe(CHAT, created)
    gitops.synced("examples", sha, created)
    waiting.until(
        lambda: any(
            (r.ref, r.sync, r.health) == (f"InferenceService/{EMBEDDER}", "Synced", "Healthy")
            for r in gitops.resources("examples")
        ),
        what=f"{EMBEDDER} Healthy in the examples Application",
        timeout=120,
        interval=0.5,
        on_timeout=lambda: gitops.recorder.describe("examples"),
    )


def test_new_version_is_progressing_through_the_canary_then_healthy(gitops: GitOps) -> None:
    gitops.repo.write(CHAT_FILE, _chat(gitops.namespace, "v2"))
    sha, committed = gitops.commit("chat v2")
    synced = gitops.synced(CHAT, sha, committed)
    progressing = gitops.recorder.wait(
        CHAT, lambda s: s.health == "Progressing", what="Progressing (canary)", since=committed
    )
    healthy = gitops.healthy(CHAT, progressing.at, timeout=300)
    status = gitops.chat_status()
    assert status["stable"]["version"] == "v2", json.dumps(status.get("rollout"))
    gitops.report("chat v1 -> v2 (canary, promoted)", committed, synced.at, healthy.at)
    assert "Degraded" not in [s.state.health for s in gitops.recorder.history(CHAT, committed)]


def _break_new_pods(gitops: GitOps, stable_prefix: str) -> None:
    """From now on new simulators (the next version's pods) return 5% errors; the stable pods
    (``stable_prefix``) keep serving without errors. Waits until only stable pods have
    simulators: the fleet's admin calls reach every simulator, and one of a pod being deleted
    refuses them."""
    _only_pods(gitops, stable_prefix)
    gitops.sims.set_behaviour({"errorRate": 0.05})
    for pod in gitops.sims.addresses():
        _put_behaviour(gitops.sims, pod, {"errorRate": 0.0})


def _only_pods(gitops: GitOps, stable_prefix: str) -> None:
    """Wait until every simulator of a chat pod is one of a ``stable_prefix`` pod."""
    waiting.until(
        lambda: (
            any(p.startswith(stable_prefix) for p in gitops.sims.addresses())
            and all(
                p.startswith(stable_prefix)
                for p in gitops.sims.addresses()
                if p.startswith(f"{CHAT}-")
            )
        ),
        what=f"only {stable_prefix} pods to have simulators",
        timeout=60,
        interval=0.5,
        on_timeout=lambda: repr(gitops.sims.addresses()),
    )


def _put_behaviour(sims: fleet.Fleet, pod: str, document: dict[str, Any]) -> None:
    """PUT one simulator's behaviour through its admin endpoint."""
    address = sims.addresses()[pod]
    request = urllib.request.Request(
        f"http://{address}/admin/behaviour",
        data=json.dumps(document).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_failing_version_rolls_back_healthy_and_revert_returns_without_retrying_it(
    gitops: GitOps,
) -> None:
    _break_new_pods(gitops, f"{CHAT}-v2-")
    gitops.repo.write(CHAT_FILE, _chat(gitops.namespace, "v3"))
    bad, committed = gitops.commit("chat v3")
    gitops.synced(CHAT, bad, committed)

    def rolled_back() -> dict[str, Any] | None:
        status = gitops.chat_status()
        return status if "v3" in (status.get("rollout") or {}).get("deniedVersions", []) else None

    status = waiting.first(
        rolled_back,
        what="v3 rolled back",
        timeout=300,
        interval=1.0,
        on_timeout=lambda: json.dumps(gitops.chat_status().get("rollout"), indent=1),
    )
    assert status["stable"]["version"] == "v2"
    after = gitops.recorder.wait(
        CHAT,
        lambda s: (
            s.health == "Healthy"
            and (s.resource(f"InferenceService/{CHAT}") or NO_RESOURCE).message.startswith(
                "Rolled back v3"
            )
        ),
        what="Healthy naming the rollback",
        since=committed,
    )
    assert after.state.sync == "Synced" and after.state.revision == bad
    states = gitops.recorder.history(CHAT, committed)
    assert "Degraded" not in [s.state.health for s in states], gitops.recorder.describe(
        CHAT, committed
    )
    print(
        f"\nafter the rollback Argo CD shows: {after.state.health}, "
        f"{after.state.resource(f'InferenceService/{CHAT}')}"
    )
    _only_pods(gitops, f"{CHAT}-v2-")
    gitops.sims.set_behaviour({"errorRate": 0.0})

    reverted, committed = gitops.revert(bad)
    synced = gitops.synced(CHAT, reverted, committed)
    healthy = gitops.healthy(CHAT, synced.at)
    gitops.report("git revert of v3", committed, synced.at, healthy.at)
    final = gitops.chat_status()
    assert final["stable"]["version"] == "v2"
    assert final["rollout"]["deniedVersions"] == ["v3"]
    assert not (final.get("candidate") or {}).get("version"), final.get("candidate")
    deployments = gitops.cluster.kubectl(
        "get",
        "deploy",
        "-n",
        gitops.namespace,
        "-l",
        f"kubeinfer.io/inferenceservice={CHAT}",
        "-o",
        "name",
    ).stdout.split()
    assert "deployment.apps/chat-v3" not in deployments, deployments


def test_manual_patch_is_reverted_by_self_heal(gitops: GitOps) -> None:
    before = gitops.recorder.state(CHAT)
    assert before is not None and before.sync == "Synced"
    patched_at = time.monotonic()
    gitops.cluster.kubectl(
        "patch",
        "infsvc",
        CHAT,
        "-n",
        gitops.namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"replicas": {"max": 3}}}),
    )

    def healed() -> bool:
        out = gitops.cluster.kubectl(
            "get", "infsvc", CHAT, "-n", gitops.namespace, "-o", "jsonpath={.spec.replicas.max}"
        ).stdout
        return out == "2"

    waiting.until(
        healed,
        what="self-heal to restore replicas.max",
        timeout=SYNC_TIMEOUT,
        interval=0.5,
        on_timeout=lambda: gitops.recorder.describe(CHAT, patched_at),
    )
    healed_at = time.monotonic()
    gitops.recorder.wait(
        CHAT, lambda s: s.sync == "Synced", what="Synced after self-heal", since=patched_at
    )
    gitops.patch_windows.append((patched_at, time.monotonic()))
    print(f"\nself-heal restored the spec {healed_at - patched_at:.1f} s after the patch")


def _children(gitops: GitOps, uid: str) -> list[str]:
    found = []
    for kind in ("deployments", "services", "scaledobjects"):
        out = gitops.cluster.kubectl("get", kind, "-n", gitops.namespace, "-o", "json").stdout
        for item in json.loads(out)["items"]:
            if any(o.get("uid") == uid for o in item["metadata"].get("ownerReferences") or []):
                found.append(f"{item['kind']}/{item['metadata']['name']}")
    return found


def test_file_removed_from_git_is_pruned_with_its_children(gitops: GitOps) -> None:
    uid = gitops.cluster.kubectl(
        "get", "infsvc", EMBEDDER, "-n", gitops.namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    children = _children(gitops, uid)
    assert any(c.startswith("Deployment/") for c in children), children
    gitops.repo.remove(EMBEDDER_FILE)
    sha, committed = gitops.commit(f"remove {EMBEDDER}")
    gitops.synced("examples", sha, committed)

    def gone() -> bool:
        names = gitops.cluster.kubectl(
            "get", "infsvc", "-n", gitops.namespace, "-o", "jsonpath={.items[*].metadata.name}"
        ).stdout.split()
        return EMBEDDER not in names and not _children(gitops, uid)

    waiting.until(
        gone, what=f"{EMBEDDER} and its children {children} to be gone", timeout=120, interval=1.0
    )


def test_bad_input_shows_the_message_and_disturbs_nothing_running(gitops: GitOps) -> None:
    chat_generation = gitops.chat_status().get("observedGeneration")
    # A manifest that is not YAML: the Application cannot even be compared.
    # (Argo CD skips a file that does not parse unless it looks like a resource: apiVersion,
    # kind and metadata; then the Application shows the parser's error.)
    gitops.repo.write(
        "broken/service.yaml",
        "apiVersion: kubeinfer.io/v1alpha1\nkind: InferenceService\nmetadata:\n"
        "  name: broken\nspec: {model: [unclosed\n",
    )
    sha, committed = gitops.commit("a broken manifest")
    _apply(gitops, "broken", "broken")
    broken = gitops.recorder.wait(
        "broken",
        lambda s: any(c.startswith("ComparisonError") for c in s.conditions),
        what="a ComparisonError",
        since=committed,
    )
    print(f"\nbroken manifest: {broken.state.conditions}")
    # A CR the API server refuses (a CEL rule of the CRD).
    refused = yaml.safe_load(_chat(gitops.namespace, "v1"))
    refused["metadata"]["name"] = "refused"
    refused["spec"]["replicas"] = {"min": 3, "max": 1}
    gitops.repo.write(BAD_FILE, yaml.safe_dump(refused))
    sha, committed = gitops.commit("a refused InferenceService")
    refusal = "replicas.min must not exceed replicas.max"

    def shown(state: argocd_apps.State) -> bool:
        failed_sync = state.operation in ("Failed", "Error") and refusal in state.operation_message
        return failed_sync or any(refusal in c for c in state.conditions)

    seen = gitops.recorder.wait(
        "examples", shown, what="the API server's refusal", since=committed, timeout=SYNC_TIMEOUT
    )
    print(
        f"\nrefused CR: sync {seen.state.sync}, operation {seen.state.operation}: "
        f"{seen.state.operation_message!r}; conditions {list(seen.state.conditions)}"
    )
    assert gitops.chat_status().get("observedGeneration") == chat_generation
    assert _ready(gitops, CHAT) == "True"
    gitops.repo.remove(BAD_FILE)
    sha, committed = gitops.commit("drop the refused InferenceService")
    gitops.synced("examples", sha, committed)


def test_operator_never_makes_an_application_out_of_sync(gitops: GitOps) -> None:
    violations = []
    for app in (CHART_APP, "examples", CHAT):
        synced_at: set[str] = set()
        for seen in gitops.recorder.history(app):
            state = seen.state
            patched = any(start <= seen.at <= end for start, end in gitops.patch_windows)
            if state.sync == "Synced":
                synced_at.add(state.revision)
            elif state.sync == "OutOfSync" and state.revision in synced_at and not patched:
                violations.append(f"{app} at +{seen.at:.1f}: {state.resources}")
    assert not violations, violations
    for kind in ("deployments", "services", "scaledobjects", "servicemonitors"):
        out = gitops.cluster.kubectl("get", kind, "-n", gitops.namespace, "-o", "json").stdout
        for item in json.loads(out)["items"]:
            meta = item["metadata"]
            assert TRACKING_ANNOTATION not in (meta.get("annotations") or {}), meta
            assert TRACKING_LABEL not in (meta.get("labels") or {}), meta
    out = gitops.cluster.kubectl(
        "get", "infsvc", "-n", gitops.namespace, "-o", "json", "--show-managed-fields"
    ).stdout
    for item in json.loads(out)["items"]:
        owners = [
            m["manager"]
            for m in item["metadata"].get("managedFields") or []
            if "f:spec" in (m.get("fieldsV1") or {}) and m.get("subresource") != "status"
        ]
        assert owners and set(owners) <= {"argocd-controller", "kubectl-patch"}, (
            item["metadata"]["name"],
            owners,
        )
    print("\n" + "\n".join(gitops.timings))
