"""Promotion keeps the promoted version's pod template: the placement follows the version.

Covers, with whole planner passes against a simulated one-node pool (``gpu_cluster``): a surging
canary that ends at full weight, one that ends below ``replicas.min``, a blue-green switch with
its scale-down delay and a switch back within it, and a zero-spare canary. In each, a version's
rendered pod template and ResourceClaimTemplate are byte-identical in every pass from its first
to its last, across promotion, retirement and switching back; ``status.placement`` becomes the
sets the candidate was pinned to, and a retired version keeps its own in
``status.rollout.retired.placement``.
"""

from __future__ import annotations

from typing import Any

from kubeinfer.api import inference_service as api
from kubeinfer.planning import children, inference_service
from kubeinfer.planning.labels import APPLIED_HASH_ANNOTATION
from kubeinfer.planning.serving import model_server
from tests.planning import gpu_cluster
from tests.planning.gpu_cluster import OWNER, Cluster

Passes = list[tuple[inference_service.Plan, dict[str, int | None]]]


def _spec(version: str, **rollout: Any) -> api.InferenceServiceSpec:
    """Two replicas of two GPUs each: stable holds two of the node's four sets."""
    return gpu_cluster.spec(version, gpus=2, **rollout)


def _pinned(plan: inference_service.Plan, version: str) -> tuple[str, str] | None:
    """(hash of the pod template, applied hash of its ResourceClaimTemplate) of ``version``."""
    by_kind: dict[str, dict[str, Any]] = {}
    for c in plan.children:
        by_kind.setdefault(c["kind"], {})[c["metadata"]["name"]] = c
    dep = by_kind["Deployment"].get(model_server.version_name(OWNER, version))
    if dep is None:
        return None
    template = dep["spec"]["template"]
    name = template["spec"]["resourceClaims"][0]["resourceClaimTemplateName"]
    claim = by_kind["ResourceClaimTemplate"][name]
    return children.content_hash(template), claim["metadata"]["annotations"][
        APPLIED_HASH_ANNOTATION
    ]


def _renders(passes: Passes, version: str) -> list[tuple[str, str]]:
    return [p for p in (_pinned(plan, version) for plan, _ in passes) if p is not None]


def _sets(placement: list[api.ReplicaPlacement]) -> list[tuple[str, tuple[int, ...]]]:
    return [(p.node, tuple(p.gpus)) for p in placement]


def _promoted(passes: Passes) -> int:
    return next(i for i, (p, _) in enumerate(passes) if p.status.rollout.phase == "Promoted")


def _settled(spec: api.InferenceServiceSpec) -> tuple[Cluster, Passes]:
    cluster = Cluster(sets=4)
    before = cluster.run(spec, seconds=15)
    assert [p.version for p in cluster.pods] == ["v1", "v1"]
    return cluster, before


def test_a_surging_canary_is_promoted_without_recreating_its_pods() -> None:
    cluster, before = _settled(_spec("v1"))
    v1_sets = _sets(before[-1][0].status.placement)
    spec = _spec("v2", steps=[{"weight": 50, "pause": "30s"}, {"weight": 100, "pause": "30s"}])
    passes = cluster.run(spec, seconds=300)
    assert passes[0][0].status.rollout.mode == "Surge"
    promoted = _promoted(passes)
    renders = _renders(passes, "v2")
    assert len(renders) == len(passes), "v2 is rendered in every pass, as candidate then stable"
    assert set(renders) == {renders[0]}, "one pod template and claim template throughout"
    after = _sets(passes[-1][0].status.placement)
    assert len(after) == 2 and not set(after) & set(v1_sets), "v2 keeps its own two sets"
    assert passes[promoted][0].status.placement == passes[-1][0].status.placement
    assert [p.version for p in cluster.pods] == ["v2", "v2"]
    assert cluster.waited_on_held_set == 0


def test_a_canary_ending_below_the_minimum_grows_onto_a_set_stable_released() -> None:
    cluster, before = _settled(_spec("v1"))
    v1_sets = _sets(before[-1][0].status.placement)
    passes = cluster.run(_spec("v2"), seconds=300)
    renders = _renders(passes, "v2")
    assert set(renders) == {renders[0]}
    promoted = _promoted(passes)
    assert passes[promoted - 1][1]["v2"] == 1, "the last step runs one candidate pod"
    after = _sets(passes[-1][0].status.placement)
    assert after[1] == v1_sets[0] and after[0] not in v1_sets, "the extra set, then one of v1's"
    assert [p.version for p in cluster.pods] == ["v2", "v2"]


def test_blue_green_keeps_both_templates_through_the_switch_and_the_scale_down() -> None:
    cluster, before = _settled(_spec("v1"))
    v1_placement = before[-1][0].status.placement
    v1_render = _pinned(before[-1][0], "v1")
    passes = cluster.run(_spec("v2", strategy="blueGreen"), seconds=300)
    promoted = _promoted(passes)
    v2 = _renders(passes, "v2")
    assert len(v2) == len(passes) and set(v2) == {v2[0]}
    assert set(_renders(passes, "v1")) == {v1_render}, "v1 is rendered as it ran until deleted"
    retiring = passes[promoted][0].status
    assert retiring.rollout.retired.placement == v1_placement
    assert not set(_sets(retiring.placement)) & set(_sets(v1_placement))
    assert _pinned(passes[-1][0], "v1") is None, "deleted after the scale-down delay"
    assert [p.version for p in cluster.pods] == ["v2", "v2"]


def test_switching_back_within_the_delay_keeps_both_templates() -> None:
    cluster, before = _settled(_spec("v1"))
    v1_placement = before[-1][0].status.placement
    v1_render = _pinned(before[-1][0], "v1")
    rollout = cluster.run(_spec("v2", strategy="blueGreen", scaleDownDelay="5m"), seconds=120)
    promoted = _promoted(rollout)
    v2_render = _pinned(rollout[promoted][0], "v2")
    v2_placement = rollout[promoted][0].status.placement
    back = cluster.run(_spec("v1", strategy="blueGreen", scaleDownDelay="5m"), seconds=15)
    assert any(e.reason == "SwitchedBack" for e in back[0][0].events)
    assert {_pinned(p, "v1") for p, _ in back} == {v1_render}
    assert {_pinned(p, "v2") for p, _ in back} == {v2_render}
    assert back[-1][0].status.placement == v1_placement
    assert back[-1][0].status.rollout.retired.placement == v2_placement


def test_a_zero_spare_canary_keeps_the_sets_and_the_template_it_moved_onto() -> None:
    cluster = Cluster(sets=2)
    before = cluster.run(gpu_cluster.spec("v1", gpus=4), seconds=15)
    passes = cluster.run(gpu_cluster.spec("v2", gpus=4), seconds=300)
    assert passes[0][0].status.rollout.mode == "ZeroSpare"
    _promoted(passes)
    renders = _renders(passes, "v2")
    assert len(renders) == len(passes) and set(renders) == {renders[0]}
    assert passes[-1][0].status.placement == before[-1][0].status.placement
