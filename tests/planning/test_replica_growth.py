"""Autoscaling a GPU service between ``replicas.min`` and ``replicas.max`` keeps its pod template.

Whole planner passes against a one-node DRA pool: the Deployment's replicas change as the
autoscaler would change them, and the rendered pod template and ResourceClaimTemplate must stay
byte-identical, because the claim template already names the growth sets up to ``replicas.max``.
A growth set another service takes changes the template once; growth sets are not held. Blue-green
switches (and back) and zero-spare canaries keep each version's template with growth sets too.
"""

from __future__ import annotations

from typing import Any

from kubeinfer.api import inference_service as api
from kubeinfer.planning import children, inference_service
from kubeinfer.planning.gpu import replica_placement
from kubeinfer.planning.labels import APPLIED_HASH_ANNOTATION
from kubeinfer.planning.serving import model_server
from tests.planning import gpu_cluster
from tests.planning.gpu_cluster import OWNER


def _spec(*, gpus: int = 1, low: int = 1, high: int = 4) -> api.InferenceServiceSpec:
    return api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "m", "version": "v1", "uri": "hf://org/m"},
            "resources": {"gpus": gpus},
            "placement": {"gpuPool": "p", "topology": "any"},
            "replicas": {"min": low, "max": high},
            "traffic": {"provider": "none"},
        }
    )


def _pool(taken: frozenset[int] = frozenset()) -> replica_placement.PoolState:
    node = replica_placement.PoolNode(
        name="node-0",
        topology=gpu_cluster.node_topology(),
        uuids={i: f"GPU-{i}" for i in range(8)},
        schedulable=frozenset(range(8)),
        taken=taken,
        dra=True,
    )
    return replica_placement.PoolState(exists=True, nodes=(node,))


def _pass(
    spec: api.InferenceServiceSpec,
    status: dict[str, Any],
    replicas: int,
    pool: replica_placement.PoolState | None = None,
) -> inference_service.Plan:
    parsed = api.InferenceServiceStatus.model_validate(status)
    return inference_service.plan(
        OWNER,
        spec,
        inference_service.Observed(
            pool=pool or _pool(),
            previous_placement=tuple(parsed.placement),
            deployments={
                "v1": inference_service.DeploymentView(
                    replicas=replicas, ready_replicas=replicas, available=True
                )
            },
            pods={"v1": (replicas, 0)},
            status=parsed,
        ),
    )


def _pinned(plan: inference_service.Plan) -> tuple[str, str]:
    """(applied hash of the Deployment's pod template, applied hash of its claim template)."""
    dep = next(c for c in plan.children if c["kind"] == "Deployment")
    claim = next(c for c in plan.children if c["kind"] == "ResourceClaimTemplate")
    name = dep["spec"]["template"]["spec"]["resourceClaims"][0]["resourceClaimTemplateName"]
    assert claim["metadata"]["name"] == name
    return children.content_hash(dep["spec"]["template"]), claim["metadata"]["annotations"][
        APPLIED_HASH_ANNOTATION
    ]


def _sets(placement: list[api.ReplicaPlacement]) -> list[tuple[str, tuple[int, ...]]]:
    return [(p.node, tuple(p.gpus)) for p in placement]


def _scaled(
    spec: api.InferenceServiceSpec, counts: list[int]
) -> tuple[list[inference_service.Plan], dict[str, Any]]:
    status: dict[str, Any] = {}
    plans = []
    for replicas in counts:
        plan = _pass(spec, status, replicas)
        plans.append(plan)
        status = plan.status
    return plans, status


def test_scaling_between_min_and_max_keeps_the_pod_template() -> None:
    plans, _ = _scaled(_spec(), [1, 1, 2, 3, 4, 3, 1, 2])
    pinned = [_pinned(p) for p in plans]
    assert set(pinned) == {pinned[0]}, "one pod template and claim template at every scale"
    first = plans[0].status
    grown = _sets(first.placement) + _sets(first.growth.placement)
    assert len(grown) == 4 and len(set(grown)) == 4, "one set per replica up to replicas.max"
    for plan, replicas in zip(plans, [1, 1, 2, 3, 4, 3, 1, 2], strict=True):
        now = _sets(plan.status.placement) + _sets(plan.status.growth.placement)
        assert now == grown, "the current replicas' sets are a prefix of the same list"
        assert len(plan.status.placement) == replicas


def test_the_claim_template_lists_current_sets_then_growth_sets() -> None:
    plan = _pass(_spec(gpus=2, high=3), {}, 1)
    claim = next(c for c in plan.children if c["kind"] == "ResourceClaimTemplate")
    subrequests = claim["spec"]["spec"]["devices"]["requests"][0]["firstAvailable"]
    expected = [
        [f"GPU-{g}" for g in p.gpus]
        for p in [*plan.status.placement, *plan.status.growth.placement]
    ]
    assert len(subrequests) == 3
    for sub, uuids in zip(subrequests, expected, strict=True):
        expression = sub["selectors"][0]["cel"]["expression"]
        assert all(f'"{u}"' in expression for u in uuids)
    dep = next(c for c in plan.children if c["kind"] == "Deployment")
    affinity = dep["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    term = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchFields"][0]["values"] == ["node-0"]


def test_a_growth_set_another_service_takes_changes_the_template_once() -> None:
    spec = _spec()
    plans, status = _scaled(spec, [1, 1])
    growth = status.growth.placement
    taken = frozenset(growth[0].gpus)
    contended = _pass(spec, status, 1, _pool(taken))
    assert _pinned(contended) != _pinned(plans[-1]), "the taken set leaves the template"
    regrown = contended.status.growth.placement
    assert len(regrown) == 3 and all(not set(p.gpus) & taken for p in regrown)
    assert _sets(regrown)[:2] == _sets(growth)[1:], "the growth sets still free are kept"
    settled = _pass(spec, contended.status, 2, _pool(taken))
    assert _pinned(settled) == _pinned(contended), "then scaling keeps it again"


def test_growth_sets_are_not_held() -> None:
    spec = _spec(gpus=2, low=1, high=4)
    plan = _pass(spec, {}, 1)
    assert len(plan.status.placement) == 1
    assert len(plan.status.growth.placement) == 3
    capacity = next(o for o in plan.observations if o.type == "CapacityAvailable")
    assert "holds 1 replicas" in capacity.message
    placed = next(o for o in plan.observations if o.type == "Placed")
    assert placed.message.startswith("1 replicas placed")
    assert "3 of 3 replicas the autoscaler may add have a growth set" in placed.message


def test_growth_plans_as_many_sets_as_the_pool_has() -> None:
    spec = _spec(gpus=2, low=1, high=6)
    plan = _pass(spec, {}, 1)
    assert len(plan.status.placement) == 1
    assert len(plan.status.growth.placement) == 3, "8 GPUs: four sets of two in all"
    placed = next(o for o in plan.observations if o.type == "Placed")
    assert "3 of 5 replicas the autoscaler may add have a growth set" in placed.message
    again = _pass(spec, plan.status, 1)
    assert _pinned(again) == _pinned(plan)


def _bounded(spec: api.InferenceServiceSpec, low: int, high: int) -> api.InferenceServiceSpec:
    return spec.model_copy(update={"replicas": api.Replicas(min=low, max=high)})


def _version_pinned(plan: inference_service.Plan, version: str) -> tuple[str, str] | None:
    name = model_server.version_name(OWNER, version)
    deps = [c for c in plan.children if c["kind"] == "Deployment" and c["metadata"]["name"] == name]
    if not deps:
        return None
    template = deps[0]["spec"]["template"]
    claim_name = template["spec"]["resourceClaims"][0]["resourceClaimTemplateName"]
    claim = next(c for c in plan.children if c["metadata"]["name"] == claim_name)
    return children.content_hash(template), claim["metadata"]["annotations"][
        APPLIED_HASH_ANNOTATION
    ]


def test_a_blue_green_switch_and_back_keeps_templates_with_growth_sets() -> None:
    cluster = gpu_cluster.Cluster(sets=4)
    v1 = _bounded(gpu_cluster.spec("v1", gpus=2), 2, 3)
    before = cluster.run(v1, seconds=15)
    assert len(before[-1][0].status.growth.placement) == 1
    v1_render = _version_pinned(before[-1][0], "v1")
    blue_green = {"strategy": "blueGreen", "scaleDownDelay": "5m"}
    ahead = cluster.run(_bounded(gpu_cluster.spec("v2", gpus=2, **blue_green), 2, 3), seconds=120)
    assert any(p.status.rollout.phase == "Promoted" for p, _ in ahead)
    back = cluster.run(_bounded(gpu_cluster.spec("v1", gpus=2, **blue_green), 2, 3), seconds=15)
    assert any(e.reason == "SwitchedBack" for e in back[0][0].events)
    v1_renders = {_version_pinned(p, "v1") for p, _ in [*ahead, *back]} - {None}
    assert v1_renders == {v1_render}, "v1 keeps its template (growth sets included) throughout"
    v2_renders = {_version_pinned(p, "v2") for p, _ in ahead} - {None}
    assert len(v2_renders) == 1


def test_a_zero_spare_canary_keeps_its_template_with_growth_sets() -> None:
    cluster = gpu_cluster.Cluster(sets=4)
    before = cluster.run(_bounded(gpu_cluster.spec("v1", gpus=2), 3, 4), seconds=15)
    assert len(before[-1][0].status.growth.placement) == 1
    passes = cluster.run(_bounded(gpu_cluster.spec("v2", gpus=2), 3, 4), seconds=400)
    assert passes[0][0].status.rollout.mode == "ZeroSpare"
    assert any(p.status.rollout.phase == "Promoted" for p, _ in passes)
    renders = [r for r in (_version_pinned(p, "v2") for p, _ in passes) if r is not None]
    assert len(renders) == len(passes) and set(renders) == {renders[0]}
    v1_before = _sets(before[-1][0].status.placement) + _sets(before[-1][0].status.growth.placement)
    last = passes[-1][0].status
    assert _sets(last.placement) + _sets(last.growth.placement) == v1_before
