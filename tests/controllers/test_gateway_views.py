"""The controllers' reads of Gateway API state from the watch store (a real in-memory store).

Covers: a parentRef resolves to its Gateway (in the InferenceService's namespace unless named),
the Gateway's class and the class's features in either published shape; a missing Gateway or
class is reported as such; only gateway-api routes have parents; the slim copies keep what the
check reads; a Gateway or GatewayClass event finds the InferenceServices attached to it.
"""

from __future__ import annotations

from typing import Any

from kubeinfer.api import inference_service as api
from kubeinfer.controllers import gateways
from kubeinfer.kube.store import Store
from kubeinfer.planning.serving import gateway_support as gs


def _gateway(namespace: str, name: str, cls: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": {"gatewayClassName": cls, "listeners": [{"name": "http", "port": 80}]},
        "status": {"addresses": [{"value": "10.0.0.1"}]},
    }


def _class(name: str, features: list[Any] | None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [{"type": "Accepted", "status": "True"}]}
    if features is not None:
        status["supportedFeatures"] = features
    return {"metadata": {"name": name}, "spec": {"controllerName": "x/y"}, "status": status}


def _store() -> Store:
    store = Store()
    for gw in (
        _gateway("ns", "local", "mirrors"),
        _gateway("infra", "shared", "plain"),
        _gateway("ns", "orphan", "gone"),
        _gateway("ns", "quiet", "silent"),
    ):
        store.put(gateways.GATEWAY, gateways.slim_gateway(gw))
    store.put(
        gateways.GATEWAY_CLASS,
        gateways.slim_class(_class("mirrors", [{"name": gs.PERCENTAGE_MIRROR}])),
    )
    store.put(gateways.GATEWAY_CLASS, gateways.slim_class(_class("plain", ["HTTPRoute"])))
    store.put(gateways.GATEWAY_CLASS, gateways.slim_class(_class("silent", None)))
    return store


def _spec(refs: list[dict[str, str]], provider: str = "gateway-api") -> api.InferenceServiceSpec:
    return api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "m", "version": "v1", "uri": "hf://org/m"},
            "traffic": {"provider": provider, "parentRefs": refs},
        }
    )


def test_parents_resolve_gateway_class_and_features() -> None:
    refs = [
        {"name": "local"},
        {"name": "shared", "namespace": "infra"},
        {"name": "orphan"},
        {"name": "quiet"},
        {"name": "absent"},
    ]
    assert gateways.parents(_store(), "ns", _spec(refs)) == (
        gs.Parent("ns/local", "mirrors", frozenset({gs.PERCENTAGE_MIRROR})),
        gs.Parent("infra/shared", "plain", frozenset({"HTTPRoute"})),
        gs.Parent("ns/orphan", "gone", None),
        gs.Parent("ns/quiet", "silent", frozenset()),
        gs.Parent("ns/absent", None, None),
    )


def test_only_gateway_api_routes_have_parents() -> None:
    assert gateways.parents(_store(), "ns", _spec([], provider="istio")) == ()


def test_slim_copies_keep_what_the_check_reads() -> None:
    assert gateways.slim_gateway(_gateway("ns", "g", "c")) == {
        "metadata": {"name": "g", "namespace": "ns"},
        "spec": {"gatewayClassName": "c"},
    }
    assert gateways.slim_class(_class("c", None)) == {
        "metadata": {"name": "c"},
        "status": {"supportedFeatures": []},
    }


def test_events_find_the_attached_inference_services() -> None:
    service = {
        "metadata": {"name": "svc", "namespace": "ns"},
        "spec": {
            "traffic": {"parentRefs": [{"name": "local"}, {"name": "shared", "namespace": "infra"}]}
        },
    }
    assert gateways.parent_keys(service) == {("ns", "local"), ("infra", "shared")}
    assert gateways.parent_keys({"metadata": {"name": "s", "namespace": "ns"}, "spec": {}}) == set()
    store = _store()
    assert gateways.gateways_of_class(store, "plain") == {("infra", "shared")}
    assert gateways.gateways_of_class(store, "nobody") == set()
