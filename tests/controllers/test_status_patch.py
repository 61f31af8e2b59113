"""The status merge patch: what a reconcile sends to turn the last written status into the new one.

Covers: fields that became empty are cleared at every depth (a merge patch leaves absent keys as
they were), lists are replaced whole, unchanged and new fields pass through, and applying the
patch with RFC 7386 semantics gives exactly the new status.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubeinfer.controllers.reconcile import merge_patch


def _apply(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _apply(out.get(key), value)
    return out


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        ({"candidate": {"version": "v2"}}, {}, {"candidate": None}),
        (
            {"rollout": {"phase": "Promoted", "retired": {"version": "v1"}}},
            {"rollout": {"phase": "Idle"}},
            {"rollout": {"phase": "Idle", "retired": None}},
        ),
        ({"placement": [{"replica": 0}, {"replica": 1}]}, {"placement": []}, {"placement": []}),
        ({"replicas": 2}, {"replicas": 2, "url": "u"}, {"replicas": 2, "url": "u"}),
        ({"rollout": "text"}, {"rollout": {"phase": "Idle"}}, {"rollout": {"phase": "Idle"}}),
    ],
    ids=[
        "a top-level field that became empty is cleared",
        "a nested field that became empty is cleared",
        "lists are replaced whole",
        "unchanged and new fields pass through",
        "a field that changed shape is replaced",
    ],
)
def test_patch_turns_the_old_status_into_the_new(
    old: dict[str, Any], new: dict[str, Any], patch: dict[str, Any]
) -> None:
    assert merge_patch(old, new) == patch
    assert _apply(old, merge_patch(old, new)) == new
