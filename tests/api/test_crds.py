"""CRD generation: crds/ is fresh, every field is described, defaults are present, and no
construct the API server rejects in a structural schema survives the rewrite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeinfer.api import crds, kinds

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "$ref",
    "$defs",
    "anyOf",
    "oneOf",
    "allOf",
    "const",
    "uniqueItems",
    "title",
    "examples",
}


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, child in (node.get("properties") or {}).items():
            out.extend(_walk(child, f"{path}.{key}"))
        if isinstance(node.get("items"), dict):
            out.extend(_walk(node["items"], f"{path}[]"))
        if isinstance(node.get("additionalProperties"), dict):
            out.extend(_walk(node["additionalProperties"], f"{path}{{}}"))
    return out


def _schema(kind: kinds.Kind) -> dict[str, Any]:
    return crds.build_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_crds_directory_matches_the_models() -> None:
    expected = crds.render_all()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "crds").glob("*.yaml")}
    assert on_disk == expected, "crds/ is stale: run `make crds`"


@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda k: k.kind)
def test_every_field_has_a_description(kind: kinds.Kind) -> None:
    missing = [
        path
        for path, node in _walk(_schema(kind))
        if path.count(".") >= 2
        and not path.endswith("[]")
        and not path.endswith("}")
        and not node.get("description")
    ]
    assert missing == []


@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda k: k.kind)
def test_schema_is_structural(kind: kinds.Kind) -> None:
    for path, node in _walk(_schema(kind)):
        assert not FORBIDDEN & node.keys(), f"{path} carries {FORBIDDEN & node.keys()}"
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        if "properties" in node:
            assert "additionalProperties" not in node, (
                f"{path} mixes properties and additionalProperties"
            )
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert node.get(bound, True) is True, f"{path}.{bound} must be boolean"


def test_defaults_are_published_including_factory_defaults() -> None:
    spec = _schema(kinds.INFERENCE_SERVICE)["properties"]["spec"]["properties"]
    assert spec["resources"]["default"] == {
        "gpus": 1,
        "cpu": "4",
        "memory": "32Gi",
        "sharedMemory": "8Gi",
    }
    assert spec["resources"]["properties"]["gpus"]["default"] == 1
    assert spec["sla"]["properties"]["tier"]["default"] == "silver"
    assert spec["rollout"]["properties"]["steps"]["default"] == [
        {"weight": 10, "pause": "1m"},
        {"weight": 50, "pause": "1m"},
    ]


def test_enums_bounds_and_cel_rules_reach_the_schema() -> None:
    spec = _schema(kinds.INFERENCE_SERVICE)["properties"]["spec"]
    props = spec["properties"]
    assert props["placement"]["properties"]["topology"]["enum"] == [
        "nvlink-required",
        "nvlink-preferred",
        "same-numa",
        "any",
    ]
    assert props["resources"]["properties"]["gpus"]["maximum"] == 16
    sla_rps = props["sla"]["properties"]["requestsPerSecond"]
    assert sla_rps["minimum"] == 0 and sla_rps["exclusiveMinimum"] is True
    messages = [r["message"] for r in spec["x-kubernetes-validations"]]
    assert "sla.latencyP95Ms is required for the gold tier (it scales on p95 latency)" in messages


def test_keyed_maps_become_cel_rules() -> None:
    rates = _schema(kinds.LOG_POLICY)["properties"]["spec"]["properties"]["sampling"]["properties"][
        "rates"
    ]
    assert "propertyNames" not in rates
    assert rates["x-kubernetes-validations"][0]["rule"].startswith("self.all(k, k in [")


@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda k: k.kind)
def test_names_columns_and_subresources(kind: kinds.Kind) -> None:
    crd = crds.build_crd(kind)
    names = crd["spec"]["names"]
    assert "isvc" not in names["shortNames"]
    assert names["categories"] == ["kubeinfer"]
    columns = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns[:2] == ["Ready", "Reason"] or columns[1:3] == ["Ready", "Reason"]
    assert "status" in crd["spec"]["versions"][0]["subresources"]
    conditions = _schema(kind)["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_inference_service_has_a_scale_subresource() -> None:
    scale = crds.build_crd(kinds.INFERENCE_SERVICE)["spec"]["versions"][0]["subresources"]["scale"]
    assert scale["specReplicasPath"] == ".spec.replicas.desired"


def test_crd_yaml_round_trips() -> None:
    for text in crds.render_all().values():
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"
