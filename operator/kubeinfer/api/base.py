"""Shared building blocks of the API models: the model base class and common value types.

Owns the camelCase wire convention, strictness (unknown fields are errors), the regular
expressions for durations and quantities, and the small Kubernetes types (label selectors,
tolerations, object references) that several kinds embed. Must not import any other layer.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
"""Go-style durations as Kubernetes users write them: ``30s``, ``1m30s``, ``500ms``, ``2h``."""

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
"""Kubernetes resource quantities in their common forms: ``500m``, ``16Gi``, ``2``."""

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""RFC 1123 label, the shape of object names that become part of child names."""

Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=32, examples=["30s", "5m"]),
]
Quantity = Annotated[
    str,
    Field(pattern=QUANTITY_PATTERN, max_length=32, examples=["16Gi", "500m"]),
]
Percent = Annotated[float, Field(ge=0, le=100)]
Fraction = Annotated[float, Field(ge=0, le=1)]

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_QUANTITY_UNITS = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def duration_seconds(value: str) -> float:
    """Return the number of seconds a Go-style duration such as ``1m30s`` stands for."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"{value!r} is not a duration such as 30s, 5m or 1h30m")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(value))


def quantity_value(value: str) -> float:
    """Return the plain number a Kubernetes quantity such as ``16Gi`` or ``500m`` stands for."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)", value)
    if match is None or match.group(2) not in _QUANTITY_UNITS:
        raise ValueError(f"{value!r} is not a quantity such as 16Gi or 500m")
    return float(match.group(1)) * _QUANTITY_UNITS[match.group(2)]


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields rejected, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
        validate_default=True,
    )


class LabelSelectorRequirement(ApiModel):
    """One set-based requirement of a label selector."""

    key: str = Field(min_length=1, max_length=317)
    """The label key the requirement applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the key relates to the values."""
    values: list[str] = Field(default_factory=list, max_length=64)
    """Values for In and NotIn; empty for Exists and DoesNotExist."""


class LabelSelector(ApiModel):
    """A Kubernetes label selector: equality terms and set-based expressions, ANDed."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    """Labels that must all be present with these values."""
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=32)
    """Set-based requirements that must all hold."""

    def matches(self, labels: dict[str, str]) -> bool:
        """Return whether an object carrying ``labels`` is selected."""
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
            if req.operator == "In" and labels.get(req.key) not in req.values:
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
        return True


class Toleration(ApiModel):
    """A pod toleration, copied onto the model server pods."""

    key: str | None = None
    """Taint key the toleration matches; empty with operator Exists matches every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Exists matches any value; Equal matches ``value``."""
    value: str | None = None
    """Taint value to match when operator is Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; empty matches all effects."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """How long a NoExecute taint is tolerated before eviction."""


class LocalObjectReference(ApiModel):
    """A reference to an object of a known kind in the same namespace."""

    name: str = Field(min_length=1, max_length=253)
    """Name of the referenced object."""


def with_rules(rules: list[dict[str, str]]) -> ConfigDict:
    """Return a model config that adds CEL ``x-kubernetes-validations`` to the model's schema.

    The API server evaluates these rules at apply time, so a broken cross-field rule is refused
    with ``message`` naming the field, before the operator ever sees the object.
    """
    return ConfigDict(
        **ApiModel.model_config,
        json_schema_extra={"x-kubernetes-validations": list(rules)},  # type: ignore[arg-type]
    )
