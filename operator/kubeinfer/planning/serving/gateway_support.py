"""Gateway capability: whether the Gateways a shadow HTTPRoute attaches to can mirror requests.

A shadow rollout with ``traffic.provider: gateway-api`` renders a ``RequestMirror`` filter. A
gateway that cannot mirror may still accept the route and then fail every request on it (Traefik
v3.6 answers HTTP 500), taking the service down for users. So the filter is rendered only when
every parent Gateway's GatewayClass lists the Gateway API feature it needs in
``status.supportedFeatures`` (GEP-2162): ``HTTPRouteRequestPercentageMirror`` for a ``percent``
below 100, ``HTTPRouteRequestMirror`` when every request is mirrored (the filter then carries no
``percent``). A class that publishes no features, or a Gateway or class not in the cluster,
leaves support unknown: the mirror is held unless ``traffic.assumeMirrorSupport`` says the
gateway mirrors. Istio's VirtualService mirrors natively and is not checked.

Pure: the controller reads Gateways and GatewayClasses from the watch store into
:class:`Parent`; this module never reads the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kubeinfer.api import inference_service as api
from kubeinfer.api.conditions import ConditionType, Reason
from kubeinfer.planning.conditions import Observation

REQUEST_MIRROR = "HTTPRouteRequestMirror"
"""Feature of the RequestMirror filter mirroring every request (no percent or fraction)."""
PERCENTAGE_MIRROR = "HTTPRouteRequestPercentageMirror"
"""Feature of the RequestMirror filter's ``percent`` and ``fraction``."""
FULL_MIRROR_PERCENT = 100
"""A mirror of every request needs no ``percent``: the filter's default is all requests."""


@dataclass(frozen=True)
class Parent:
    """What the cluster says of one parentRef: its Gateway's class and that class's features."""

    gateway: str
    """``namespace/name`` of the Gateway."""
    gateway_class: str | None = None
    """The Gateway's ``spec.gatewayClassName``; None when the Gateway is not in the cluster."""
    features: frozenset[str] | None = None
    """The class's ``status.supportedFeatures``; None when the GatewayClass is not there."""


def supported_features(entries: Iterable[object] | None) -> frozenset[str]:
    """Feature names of a GatewayClass's ``status.supportedFeatures``.

    Gateway API v1.2 and later list ``{name: ...}`` objects; v1.1's experimental channel listed
    plain strings. Anything else is not a feature name and is left out.
    """
    names: set[str] = set()
    for entry in entries or ():
        name = entry.get("name") if isinstance(entry, dict) else entry
        if isinstance(name, str) and name:
            names.add(name)
    return frozenset(names)


def required_feature(mirror_percent: int) -> str:
    """The feature a RequestMirror filter mirroring ``mirror_percent`` of requests needs."""
    return REQUEST_MIRROR if mirror_percent >= FULL_MIRROR_PERCENT else PERCENTAGE_MIRROR


def mirror_hold(spec: api.InferenceServiceSpec, parents: Sequence[Parent]) -> Observation | None:
    """The Progressing observation that holds a shadow's mirror, or None when it may be rendered.

    A class that publishes its features without the needed one holds the mirror whatever
    ``assumeMirrorSupport`` says: the gateway itself says it cannot mirror.
    """
    if spec.traffic.provider != "gateway-api" or spec.rollout.strategy != "shadow":
        return None
    feature = required_feature(spec.rollout.mirror_percent)
    lacking = [p for p in parents if p.features and feature not in p.features]
    if lacking:
        where = "; ".join(
            f"GatewayClass {p.gateway_class} of Gateway {p.gateway} does not list {feature} in "
            "status.supportedFeatures"
            for p in lacking
        )
        return Observation.true(
            ConditionType.PROGRESSING,
            Reason.MIRROR_UNSUPPORTED,
            f"The shadow waits with no request mirrored and users on stable: {where}. Attach "
            "the route to a Gateway whose class lists it, or roll out with canary or blueGreen.",
        )
    if spec.traffic.assume_mirror_support:
        return None
    unknown = [p for p in parents if not p.features]
    if not unknown:
        return None
    where = "; ".join(_unknown(p) for p in unknown)
    return Observation.true(
        ConditionType.PROGRESSING,
        Reason.MIRROR_SUPPORT_UNKNOWN,
        f"The shadow waits with no request mirrored and users on stable: {where}, so support "
        f"for {feature} is unknown. Set traffic.assumeMirrorSupport if the gateway mirrors.",
    )


def _unknown(parent: Parent) -> str:
    if parent.gateway_class is None:
        return f"Gateway {parent.gateway} was not found"
    if parent.features is None:
        return f"GatewayClass {parent.gateway_class} of Gateway {parent.gateway} was not found"
    return (
        f"GatewayClass {parent.gateway_class} of Gateway {parent.gateway} publishes no "
        "status.supportedFeatures"
    )
