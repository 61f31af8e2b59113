"""Gateway mirror support: both shapes of supportedFeatures are read, the feature a filter needs
follows its percent, a class that lists features without it holds the mirror even when support is
assumed, unknown support (no Gateway, no class, no features published) holds it unless assumed,
every failing parent is named, and istio or non-shadow strategies are never checked."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType
from kubeinfer.planning.serving import gateway_support as gs

MIRRORS = frozenset({"Gateway", "HTTPRoute", gs.REQUEST_MIRROR, gs.PERCENTAGE_MIRROR})
NO_MIRROR = frozenset({"Gateway", "HTTPRoute", "HTTPRouteBackendTimeout"})
FULL_ONLY = frozenset({"Gateway", "HTTPRoute", gs.REQUEST_MIRROR})


def _spec(
    *,
    strategy: str = "shadow",
    provider: str = "gateway-api",
    percent: int = 10,
    assume: bool = False,
) -> api.InferenceServiceSpec:
    return api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "m", "version": "v2", "uri": "hf://org/m"},
            "traffic": {
                "provider": provider,
                "parentRefs": [{"name": "gw"}] if provider == "gateway-api" else [],
                "assumeMirrorSupport": assume,
            },
            "rollout": {"strategy": strategy, "mirrorPercent": percent},
        }
    )


def _parent(features: frozenset[str] | None, *, cls: str | None = "gc") -> gs.Parent:
    return gs.Parent(gateway="ns/gw", gateway_class=cls, features=features)


@pytest.mark.parametrize(
    ("entries", "names"),
    [
        (
            [{"name": "HTTPRoute"}, {"name": gs.PERCENTAGE_MIRROR}],
            {"HTTPRoute", gs.PERCENTAGE_MIRROR},
        ),
        (["HTTPRoute", gs.REQUEST_MIRROR], {"HTTPRoute", gs.REQUEST_MIRROR}),
        ([{"name": "HTTPRoute"}, "Gateway"], {"HTTPRoute", "Gateway"}),
        (None, set()),
        ([], set()),
        ([{"nom": "x"}, 7, "", {"name": None}], set()),
    ],
    ids=[
        "v1.2+ lists name objects",
        "v1.1 listed plain strings",
        "a mixed list is read entry by entry",
        "no supportedFeatures is no feature",
        "an empty list is no feature",
        "entries without a name string are left out",
    ],
)
def test_supported_features_reads_both_shapes(entries: Any, names: set[str]) -> None:
    assert gs.supported_features(entries) == names


@pytest.mark.parametrize(
    ("percent", "feature"),
    [(1, gs.PERCENTAGE_MIRROR), (99, gs.PERCENTAGE_MIRROR), (100, gs.REQUEST_MIRROR)],
    ids=["1% needs percentage", "99% needs percentage", "100% needs only the plain mirror"],
)
def test_required_feature_follows_the_percent(percent: int, feature: str) -> None:
    assert gs.required_feature(percent) == feature


@pytest.mark.parametrize(
    ("spec", "parents", "reason"),
    [
        (_spec(), [_parent(MIRRORS)], None),
        (_spec(), [_parent(NO_MIRROR)], "MirrorUnsupported"),
        (_spec(), [_parent(FULL_ONLY)], "MirrorUnsupported"),
        (_spec(percent=100), [_parent(FULL_ONLY)], None),
        (_spec(assume=True), [_parent(NO_MIRROR)], "MirrorUnsupported"),
        (_spec(), [_parent(frozenset())], "MirrorSupportUnknown"),
        (_spec(), [_parent(None)], "MirrorSupportUnknown"),
        (_spec(), [_parent(None, cls=None)], "MirrorSupportUnknown"),
        (_spec(assume=True), [_parent(frozenset())], None),
        (_spec(assume=True), [_parent(None, cls=None)], None),
        (_spec(), [_parent(MIRRORS), _parent(NO_MIRROR)], "MirrorUnsupported"),
        (_spec(), [_parent(MIRRORS), _parent(frozenset())], "MirrorSupportUnknown"),
        (_spec(), [_parent(frozenset()), _parent(NO_MIRROR)], "MirrorUnsupported"),
        (_spec(provider="istio"), [], None),
        (_spec(strategy="canary"), [_parent(NO_MIRROR)], None),
        (_spec(strategy="blueGreen"), [_parent(frozenset())], None),
    ],
    ids=[
        "a class listing percentage mirroring lets the mirror render",
        "a class listing features without mirroring holds it",
        "a percent below 100 needs more than the plain mirror",
        "mirroring every request needs only the plain mirror",
        "assuming support never overrides a class that says no",
        "a class publishing no features leaves support unknown",
        "a missing GatewayClass leaves support unknown",
        "a missing Gateway leaves support unknown",
        "assumed support covers a class publishing no features",
        "assumed support covers a missing Gateway",
        "one lacking parent of two holds the mirror",
        "one unknown parent of two holds the mirror",
        "a parent that says no outranks one that says nothing",
        "istio mirrors natively and is not checked",
        "canary renders no mirror and is not checked",
        "blue-green renders no mirror and is not checked",
    ],
)
def test_mirror_hold(
    spec: api.InferenceServiceSpec, parents: list[gs.Parent], reason: str | None
) -> None:
    hold = gs.mirror_hold(spec, parents)
    assert (hold.reason.value if hold else None) == reason
    if hold is not None:
        assert (hold.type, hold.status) == (ConditionType.PROGRESSING, "True")


def test_hold_names_the_class_gateway_and_missing_feature() -> None:
    hold = gs.mirror_hold(_spec(), [_parent(NO_MIRROR, cls="traefik")])
    assert hold is not None
    assert "GatewayClass traefik of Gateway ns/gw" in hold.message
    assert gs.PERCENTAGE_MIRROR in hold.message


@pytest.mark.parametrize(
    ("parent", "says"),
    [
        (_parent(None, cls=None), "Gateway ns/gw was not found"),
        (_parent(None), "GatewayClass gc of Gateway ns/gw was not found"),
        (
            _parent(frozenset()),
            "GatewayClass gc of Gateway ns/gw publishes no status.supportedFeatures",
        ),
    ],
    ids=["missing Gateway", "missing GatewayClass", "no features published"],
)
def test_unknown_support_says_why_and_how_to_override(parent: gs.Parent, says: str) -> None:
    hold = gs.mirror_hold(_spec(), [parent])
    assert hold is not None
    assert says in hold.message
    assert "traffic.assumeMirrorSupport" in hold.message


def test_plan_holds_the_mirror_of_a_shadow_rollout_its_gateway_cannot_carry() -> None:
    from kubeinfer.planning import children
    from kubeinfer.planning import inference_service as planner

    owner = children.Owner("kubeinfer.io/v1alpha1", "InferenceService", "m", "ns", "u")
    observed = planner.Observed(
        pool=None,
        deployments={
            v: planner.DeploymentView(replicas=1, ready_replicas=1, available=True)
            for v in ("v1", "v2")
        },
        route_accepted=True,
        status=api.InferenceServiceStatus.model_validate(
            {"stable": {"version": "v1", "uri": "hf://org/m"}}
        ),
    )
    for parents, filtered, reason in [
        ((_parent(NO_MIRROR),), False, "MirrorUnsupported"),
        ((_parent(MIRRORS),), True, "RolloutProgressing"),
    ]:
        plan = planner.plan(owner, _spec(), replace(observed, gateways=parents))
        route = next(c for c in plan.children if c["kind"] == "HTTPRoute")
        assert ("filters" in route["spec"]["rules"][0]) is filtered
        conds = {o.type: (o.status, o.reason.value) for o in plan.observations}
        assert conds[ConditionType.PROGRESSING] == ("True", reason)
        assert conds[ConditionType.TRAFFIC_READY] == ("True", "AsExpected")
        assert plan.status.traffic.mirror_percent == (10 if filtered else 0)
