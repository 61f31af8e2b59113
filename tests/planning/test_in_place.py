"""In-place reloads (``rollout.reload: inPlace``): which server loads which version, and whole
planner passes over a pool of Triton pods whose loads complete (or are refused) between passes.

Covers: the assignment (keeps candidate pods, moves unlabelled pods first, never retries a
refused version, only Ready pods with an address load); the rendered children (one Deployment
whose template names no version and loads nothing at start, version Services selecting by the
pods' labels, the autoscaler on that one Deployment, no extra GPU in ``status.plan``); a healthy
version promoted through every step with the pods each step asks for and every pod loaded once;
a failing version rolled back by loading stable again; a version a server refuses rolled back
with the runtime's answer as evidence; a restarted operator resuming from status and pod labels;
a URI change staying out of the version rollout.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType
from kubeinfer.planning import children
from kubeinfer.planning import inference_service as planner
from kubeinfer.planning.labels import MODEL_VERSION_LABEL
from kubeinfer.planning.rollout import analysis, in_place

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OWNER = children.Owner(
    api_version="kubeinfer.io/v1alpha1",
    kind="InferenceService",
    name="chat",
    namespace="ml",
    uid="uid-1",
    generation=1,
)
HEALTHY = {"success-rate": (0.999, 0.999), "latency-p95": (120.0, 118.0)}
FAILING = {"success-rate": (0.95, 0.999), "latency-p95": (120.0, 118.0)}
Pod = in_place.ServerPod


def _spec(version: str, **over: Any) -> api.InferenceServiceSpec:
    doc: dict[str, Any] = {
        "model": {
            "name": "chat",
            "version": version,
            "uri": "s3://models/repository",
            "runtime": "triton",
        },
        "resources": {"gpus": 0, "cpu": "1", "memory": "2Gi"},
        "replicas": {"min": 4, "max": 4},
        "traffic": {"provider": "none"},
        "autoscaling": {"engine": "keda"},
        "rollout": {
            "reload": "inPlace",
            "steps": [{"weight": 25, "pause": "30s"}, {"weight": 50, "pause": "30s"}],
            "analysis": {"interval": "30s"},
        },
    }
    for key, value in over.items():
        doc[key] = {**doc.get(key, {}), **value}
    return api.InferenceServiceSpec.model_validate(doc)


def _pods(version: str = "", n: int = 4) -> list[Pod]:
    return [
        Pod(name=f"chat-{i}", ip=f"10.0.0.{i + 1}", ready=True, labelled=version) for i in range(n)
    ]


# -- the assignment ------------------------------------------------------------------------------


def test_a_step_reloads_the_pods_it_asks_for_and_keeps_the_candidates_it_has() -> None:
    pods = _pods("2")
    first = in_place.assign(pods, stable="2", candidate="3", candidate_pods=1)
    assert [(r.pod, r.version, r.previous) for r in first] == [("chat-0", "3", "2")]
    pods[0] = dataclasses.replace(pods[0], labelled="3")
    second = in_place.assign(pods, stable="2", candidate="3", candidate_pods=2)
    assert [(r.pod, r.version) for r in second] == [("chat-1", "3")]
    assert in_place.assign(pods, stable="2", candidate="3", candidate_pods=1) == ()


def test_fresh_servers_take_the_candidate_first_and_the_rest_load_stable() -> None:
    pods = [*_pods("2", 3), Pod(name="chat-9", ip="10.0.0.9", ready=True)]
    loads = in_place.assign(pods, stable="2", candidate="3", candidate_pods=1)
    assert [(r.pod, r.version, r.previous) for r in loads] == [("chat-9", "3", "")]
    fresh = in_place.assign(_pods(""), stable="2", candidate=None, candidate_pods=0)
    assert {(r.pod, r.version) for r in fresh} == {(f"chat-{i}", "2") for i in range(4)}


def test_promotion_and_rollback_put_every_pod_on_one_version() -> None:
    pods = [dataclasses.replace(p, labelled="3" if i < 2 else "2") for i, p in enumerate(_pods())]
    promoted = in_place.assign(pods, stable="3", candidate=None, candidate_pods=0)
    assert {(r.pod, r.version) for r in promoted} == {("chat-2", "3"), ("chat-3", "3")}
    rolled_back = in_place.assign(pods, stable="2", candidate=None, candidate_pods=0)
    assert {(r.pod, r.version) for r in rolled_back} == {("chat-0", "2"), ("chat-1", "2")}


def test_a_refused_version_is_never_retried_and_unready_pods_wait() -> None:
    pods = _pods("2")
    pods[0] = dataclasses.replace(pods[0], load_error="3: failed to load 'chat' version 3")
    pods[1] = dataclasses.replace(pods[1], ready=False)
    pods[2] = dataclasses.replace(pods[2], ip="")
    loads = in_place.assign(pods, stable="2", candidate="3", candidate_pods=4)
    assert [(r.pod, r.version) for r in loads] == [("chat-3", "3")]
    # a fresh server that refused stable itself is not asked again either
    fresh = Pod(name="chat-9", ip="10.0.0.9", ready=True, load_error="2: out of memory")
    assert in_place.assign([fresh], stable="2", candidate=None, candidate_pods=0) == ()
    seen = in_place.views(pods)
    assert seen.serving == {"2": 4} and seen.ready == {"2": 3}
    assert seen.refusal == {"3": "chat-0: failed to load 'chat' version 3"}


def test_a_server_that_restarted_since_its_load_is_loaded_again() -> None:
    pods = [dataclasses.replace(p, loaded_at_restart=0) for p in _pods("2")]
    assert in_place.assign(pods, stable="2", candidate=None, candidate_pods=0) == ()
    pods[1] = dataclasses.replace(pods[1], restarts=1)  # its container came back empty
    assert pods[1].version == "" and in_place.views(pods).serving == {"2": 3}
    (load,) = in_place.assign(pods, stable="2", candidate=None, candidate_pods=0)
    assert (load.pod, load.version, load.previous, load.restarts) == ("chat-1", "2", "", 1)


# -- the children --------------------------------------------------------------------------------


def _plan(
    spec: api.InferenceServiceSpec,
    pods: list[Pod],
    status: dict[str, Any] | None = None,
    *,
    now: datetime = T0,
    samples: tuple[analysis.Sample, ...] | None = None,
) -> planner.Plan:
    observed = planner.Observed(
        pool=None,
        status=api.InferenceServiceStatus.model_validate(status or {}),
        server_pods=tuple(pods),
        samples=samples,
        now=now,
    )
    return planner.plan(OWNER, spec, observed)


def _kinds(plan: planner.Plan) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["kind"], c["metadata"]["name"]): c for c in plan.children}


def test_one_deployment_names_no_version_and_loads_nothing_at_start() -> None:
    spec = _spec("2")
    plan = _plan(spec, _pods("2"), {"stable": {"version": "1", "uri": "s3://models/repository"}})
    objs = _kinds(plan)
    deployments = [name for kind, name in objs if kind == "Deployment"]
    assert deployments == ["chat"]
    deployment = objs[("Deployment", "chat")]
    template = deployment["spec"]["template"]
    assert MODEL_VERSION_LABEL not in template["metadata"]["labels"]
    assert MODEL_VERSION_LABEL not in deployment["spec"]["selector"]["matchLabels"]
    (server,) = template["spec"]["containers"]
    assert "postStart" not in server["lifecycle"]
    assert "KUBEINFER_MODEL_VERSION" not in {e["name"] for e in server["env"]}
    assert objs[("ScaledObject", "chat")]["spec"]["scaleTargetRef"]["name"] == "chat"
    for version in ("1", "2"):
        selector = objs[("Service", f"chat-{version}")]["spec"]["selector"]
        assert selector[MODEL_VERSION_LABEL] == version
    # the same template whichever version rolls: a new version never restarts a pod
    later = _kinds(_plan(_spec("3"), _pods("2"), {"stable": {"version": "2"}}))
    assert later[("Deployment", "chat")]["spec"]["template"] == template
    assert plan.handover is None


def test_the_plan_shows_the_pods_each_step_reloads_and_no_extra_gpu() -> None:
    spec = _spec("3", resources={"gpus": 1}, placement={"gpuPool": "pool"})
    plan = _plan(spec, _pods("2"), {"stable": {"version": "2", "uri": "s3://models/repository"}})
    steps = plan.status.rollout.plan
    assert [(s.candidate_replicas, s.stable_replicas, s.gpus) for s in steps] == [
        (1, 3, 0),
        (2, 2, 0),
    ]
    assert plan.status.rollout.mode == in_place.MODE


# -- whole rollouts ------------------------------------------------------------------------------


@dataclasses.dataclass
class Pool:
    """Servers that carry out each pass's loads before the next pass (unless refused)."""

    pods: list[Pod]
    refuses: dict[str, str] = dataclasses.field(default_factory=dict)
    loads: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    most_candidates: int = 0

    def apply(self, plan: planner.Plan) -> None:
        for load in plan.reloads:
            i = next(i for i, p in enumerate(self.pods) if p.name == load.pod)
            self.loads.append((load.pod, load.version))
            if load.version in self.refuses:
                error = f"{load.version}: {self.refuses[load.version]}"
                self.pods[i] = dataclasses.replace(self.pods[i], load_error=error)
            else:
                self.pods[i] = dataclasses.replace(self.pods[i], labelled=load.version)


def _rollout(
    pool: Pool,
    spec: api.InferenceServiceSpec,
    *,
    values: dict[str, tuple[float, float]],
    seconds: int = 600,
    status: dict[str, Any] | None = None,
) -> tuple[planner.Plan, api.InferenceServiceStatus]:
    """Passes every 5 s; the analysis is due every interval, as the controller asks for it."""
    status = status or {"stable": {"version": "2", "uri": spec.model.uri}}
    plan = None
    for tick in range(0, seconds, 5):
        now = T0 + timedelta(seconds=tick)
        samples = tuple(analysis.Sample(k, v, s, count=500) for k, (v, s) in values.items())
        plan = _plan(spec, pool.pods, status, now=now, samples=samples)
        status = plan.status
        pool.apply(plan)
        candidates = sum(p.version == spec.model.version for p in pool.pods)
        if plan.status.candidate is not None:
            pool.most_candidates = max(pool.most_candidates, candidates)
        if plan.status.candidate is None and not plan.reloads and tick > 0:
            break
    assert plan is not None
    return plan, status


def _condition(plan: planner.Plan, kind: ConditionType) -> Any:
    return next(o for o in plan.observations if o.type == kind)


def test_a_healthy_version_is_promoted_step_by_step_with_each_pod_loaded_once() -> None:
    pool = Pool(_pods("2"))
    plan, status = _rollout(pool, _spec("3"), values=HEALTHY)
    assert status.stable.version == "3"
    assert {p.version for p in pool.pods} == {"3"}
    assert sorted(pool.loads) == sorted((f"chat-{i}", "3") for i in range(4))
    assert pool.most_candidates == 2  # 25% then 50% of four pods before promotion
    assert _condition(plan, ConditionType.READY).status == "True"


def test_stable_keeps_a_pod_to_be_compared_with_until_promotion() -> None:
    pool = Pool(_pods("2", n=2))
    _, status = _rollout(pool, _spec("3", replicas={"min": 2, "max": 2}), values=HEALTHY)
    assert status.stable.version == "3"
    assert pool.most_candidates == 1, "50% of two pods, and never stable's last pod"
    assert in_place.capped(1, 1) == 1 and in_place.capped(3, 0) == 0


def test_a_failing_version_is_rolled_back_by_loading_stable_again() -> None:
    pool = Pool(_pods("2"))
    plan, status = _rollout(pool, _spec("3"), values=FAILING)
    assert status.stable.version == "2"
    assert status.rollout.rolled_back_from == "3"
    assert {p.version for p in pool.pods} == {"2"}
    assert ("chat-0", "3") in pool.loads and ("chat-0", "2") in pool.loads
    rolled_back = _condition(plan, ConditionType.ROLLED_BACK)
    assert rolled_back.status == "True" and "success-rate" in rolled_back.message


def test_a_version_the_server_refuses_rolls_back_with_its_answer() -> None:
    answer = "failed to load 'chat' version 3: no such version directory"
    pool = Pool(_pods("2"), refuses={"3": answer})
    plan, status = _rollout(pool, _spec("3"), values=HEALTHY)
    assert status.rollout.rolled_back_from == "3"
    assert pool.loads == [("chat-0", "3")], "one refusal fails the candidate; nothing retries it"
    rolled_back = _condition(plan, ConditionType.ROLLED_BACK)
    assert answer in rolled_back.message and "chat-0" in rolled_back.message
    assert {p.version for p in pool.pods} == {"2"}


def test_a_restarted_operator_resumes_from_status_and_the_pod_labels() -> None:
    pool = Pool(_pods("2"))
    spec = _spec("3")
    _, status = _rollout(pool, spec, values=HEALTHY, seconds=40)
    assert status.rollout.step == 1
    pods_before = list(pool.pods)
    # a fresh process knows only what the API server holds: the status and the pods
    plan = _plan(spec, pool.pods, status, now=T0 + timedelta(seconds=45))
    assert plan.status.rollout.step == 1
    assert sum(p.version == "3" for p in pods_before) == 2
    assert plan.reloads == ()


@pytest.mark.parametrize("field", ["uri", "image"])
def test_a_server_change_restarts_pods_and_rolls_no_version(field: str) -> None:
    value = "s3://models/other" if field == "uri" else "registry.local/triton:custom"
    spec = _spec("2", model={field: value})
    plan = _plan(spec, _pods("2"), {"stable": {"version": "2", "uri": "s3://models/repository"}})
    assert plan.status.candidate is None
    assert plan.reloads == ()
    (server,) = _kinds(plan)[("Deployment", "chat")]["spec"]["template"]["spec"]["containers"]
    assert value in str(server)
