"""Rewrite pydantic's JSON schema into the structural OpenAPI dialect the API server accepts.

pydantic emits JSON Schema 2020-12; a CRD needs a *structural* schema: every node typed, no
``$ref``, no ``anyOf`` carrying types, no ``const``, boolean ``exclusiveMinimum``, no
``uniqueItems``, no ``additionalProperties`` beside ``properties``. Defaults produced by
``default_factory`` must appear too, so that what Git holds and what the cluster holds agree.
This module owns that rewrite and nothing else; it must not know about particular kinds.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, cast

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

Schema = dict[str, Any]

_DROPPED_KEYS = frozenset({"title", "examples", "$defs", "discriminator"})


class _FactoryDefaults(GenerateJsonSchema):
    """pydantic's generator, but fields with ``default_factory`` publish their default too.

    A nested model default is published in full (not as ``{}``): the API server validates a
    default against the CEL rules of its schema without first applying the nested defaults.
    """

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().default_schema(schema)
        inner = self.generate_inner(schema["schema"])
        value = cast(Callable[[], Any], factory)()
        return {**inner, "default": _to_json(value)}


def _to_json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True, mode="json", exclude_none=True)
    if isinstance(value, list):
        return [
            v.model_dump(by_alias=True, mode="json", exclude_none=True)
            if isinstance(v, BaseModel)
            else v
            for v in value
        ]
    return value


def structural(model: type[BaseModel]) -> Schema:
    """Return the structural OpenAPI v3 schema of ``model`` (validation mode, camelCase keys)."""
    raw = model.model_json_schema(by_alias=True, schema_generator=_FactoryDefaults)
    definitions: dict[str, Schema] = raw.get("$defs", {})
    return _rewrite(raw, definitions)


def _rewrite(node: Schema, definitions: dict[str, Schema]) -> Schema:
    node = _inline(node, definitions)
    node = _collapse_optional(node, definitions)
    out: Schema = {k: v for k, v in node.items() if k not in _DROPPED_KEYS}

    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
            out[plain] = out.pop(bound)
            out[bound] = True
    if out.pop("uniqueItems", False):
        out["x-kubernetes-list-type"] = "set"
    if out.get("default", 0) is None:
        del out["default"]

    if "properties" in out:
        out["type"] = "object"
        out.pop("additionalProperties", None)
        out["properties"] = {
            name: _rewrite(child, definitions) for name, child in out["properties"].items()
        }
    elif isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _rewrite(out["additionalProperties"], definitions)
    if "propertyNames" in out:
        out["maxProperties"] = out.get("maxProperties", 64)
        names = out.pop("propertyNames")
        if "enum" in names:
            allowed = ", ".join(f"'{n}'" for n in names["enum"])
            rule = {
                "rule": f"self.all(k, k in [{allowed}])",
                "message": f"keys must be one of {', '.join(names['enum'])}",
            }
            out.setdefault("x-kubernetes-validations", []).append(rule)
    if "items" in out:
        out["items"] = _rewrite(out["items"], definitions)
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "type" not in out:
        raise ValueError(f"schema node has no type after rewriting: {node}")
    return out


def _inline(node: Schema, definitions: dict[str, Schema]) -> Schema:
    """Replace a ``$ref`` by its definition; the referring node's keys win (descriptions)."""
    if "$ref" not in node:
        return node
    target = definitions[node["$ref"].rsplit("/", 1)[-1]]
    merged = copy.deepcopy(target)
    for key, value in node.items():
        if key != "$ref":
            merged[key] = value
    return merged


def _collapse_optional(node: Schema, definitions: dict[str, Schema]) -> Schema:
    """Turn ``anyOf: [X, null]`` into X: absence already means 'not set' in Kubernetes."""
    variants = node.get("anyOf")
    if not variants:
        return node
    typed = [v for v in variants if v.get("type") != "null"]
    if len(typed) != 1:
        raise ValueError(f"unions other than Optional are not structural: {node}")
    base = _inline(typed[0], definitions)
    merged = {**base, **{k: v for k, v in node.items() if k != "anyOf"}}
    return merged
