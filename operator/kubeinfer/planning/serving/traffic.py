"""Routes: how requests are split between the stable and candidate versions, or mirrored.

Gateway API HTTPRoute: weighted ``backendRefs`` and, for shadow rollouts, a ``RequestMirror``
filter with ``percent``, left out when every request is mirrored (that is the filter's default,
which gateways without percentage mirroring honour too); the gateway discards the candidate's
responses. Whether the parent Gateways can mirror at all is decided before the split reaches this
module (:mod:`kubeinfer.planning.serving.gateway_support`). Istio VirtualService: weighted ``route``
destinations and ``mirror`` with ``mirrorPercentage``. ``traffic.provider: none`` renders no
route: the front Service selects the stable version.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeinfer.api import inference_service as api
from kubeinfer.planning import children
from kubeinfer.planning.serving import gateway_support

HTTP_PORT = 8080


@dataclass(frozen=True)
class Split:
    """Where requests go: Service names and the candidate's share."""

    stable: str
    candidate: str | None = None
    candidate_weight: int = 0
    mirror_percent: int = 0

    def backends(self) -> list[tuple[str, int]]:
        """(Service, weight) pairs; a candidate at weight 0 stays listed so the switch is a weight
        change, not a new backend."""
        if self.candidate is None:
            return [(self.stable, 100)]
        return [(self.stable, 100 - self.candidate_weight), (self.candidate, self.candidate_weight)]


def _host(owner: children.Owner, service: str) -> str:
    return f"{service}.{owner.namespace}.svc.cluster.local"


def build_route(
    owner: children.Owner, spec: api.InferenceServiceSpec, split: Split
) -> children.Manifest | None:
    """Return the route for ``split``, or None when traffic.provider is none."""
    if spec.traffic.provider == "gateway-api":
        rule: children.Manifest = {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [
                {"name": svc, "port": HTTP_PORT, "weight": w} for svc, w in split.backends()
            ],
        }
        if split.candidate is not None and split.mirror_percent:
            mirror: children.Manifest = {"backendRef": {"name": split.candidate, "port": HTTP_PORT}}
            if split.mirror_percent < gateway_support.FULL_MIRROR_PERCENT:
                mirror["percent"] = split.mirror_percent
            rule["filters"] = [{"type": "RequestMirror", "requestMirror": mirror}]
        return {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": children.metadata(owner, owner.name),
            "spec": {
                "parentRefs": [
                    p.model_dump(by_alias=True, exclude_none=True) for p in spec.traffic.parent_refs
                ],
                **({"hostnames": list(spec.traffic.hostnames)} if spec.traffic.hostnames else {}),
                "rules": [rule],
            },
        }
    if spec.traffic.provider == "istio":
        http: children.Manifest = {
            "route": [
                {
                    "destination": {"host": _host(owner, svc), "port": {"number": HTTP_PORT}},
                    "weight": w,
                }
                for svc, w in split.backends()
            ]
        }
        if split.candidate is not None and split.mirror_percent:
            http["mirror"] = {"host": _host(owner, split.candidate), "port": {"number": HTTP_PORT}}
            http["mirrorPercentage"] = {"value": float(split.mirror_percent)}
        return {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": children.metadata(owner, owner.name),
            "spec": {
                "hosts": list(spec.traffic.hostnames) or [_host(owner, owner.name)],
                "http": [http],
            },
        }
    return None
