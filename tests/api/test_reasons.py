"""Every Reason and condition type is set by some code path or explicitly reserved, and every
Event the operator posts names a Reason member: a reason documented but never set, or set but
spelt as a bare string, fails here (``make unit``)."""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator

import kubeinfer
from kubeinfer.api.conditions import (
    RESERVED_CONDITION_TYPES,
    RESERVED_REASONS,
    ConditionType,
    Reason,
)

SOURCE = pathlib.Path(kubeinfer.__file__).parent
DEFINED_IN = "api/conditions.py"


def _trees() -> Iterator[tuple[str, ast.AST]]:
    for path in sorted(SOURCE.rglob("*.py")):
        rel = path.relative_to(SOURCE).as_posix()
        if rel != DEFINED_IN:
            yield rel, ast.parse(path.read_text())


def _members_used(enum_name: str) -> set[str]:
    """Names of ``enum_name``'s members that operator code refers to (``Reason.X``, through an
    import alias too)."""
    used: set[str] = set()
    for _, tree in _trees():
        aliases = {enum_name}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                aliases |= {a.asname for a in node.names if a.name == enum_name and a.asname}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and (
                (isinstance(node.value, ast.Name) and node.value.id in aliases)
                or (isinstance(node.value, ast.Attribute) and node.value.attr == enum_name)
            ):
                used.add(node.attr)
    return used


def test_every_reason_is_set_somewhere_or_reserved() -> None:
    used = _members_used("Reason")
    unset = {r.name for r in Reason} - used - {r.name for r in RESERVED_REASONS}
    assert unset == set(), "set these reasons somewhere or list them in RESERVED_REASONS"


def test_no_reserved_reason_is_set() -> None:
    assert _members_used("Reason") & {r.name for r in RESERVED_REASONS} == set()


def test_every_condition_type_is_observed_somewhere_or_reserved() -> None:
    used = _members_used("ConditionType")
    reserved = {t.name for t in RESERVED_CONDITION_TYPES}
    assert {t.name for t in ConditionType} - used - reserved == set()
    assert used & reserved == set()


def test_every_member_is_documented() -> None:
    assert [m for m in (*Reason, *ConditionType) if not m.doc] == []


def test_events_name_a_reason_member() -> None:
    """No call passes ``reason=`` a string literal: Events and conditions take Reason members
    (mypy holds the types; this catches a literal that a ``str`` parameter would let through)."""
    literal = [
        f"{rel}:{node.lineno}"
        for rel, tree in _trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.keyword)
        and node.arg == "reason"
        and isinstance(node.value, ast.Constant)
    ]
    assert literal == []
