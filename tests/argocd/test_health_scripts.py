"""The Argo CD health scripts in ``manifests/argocd``, judged by a Lua 5.1 interpreter.

Covers: the committed scripts and argocd-cm patch are what ``common.lua`` plus each kind's file
give; every kind has a script and fixtures; each fixture's status is a valid status of its kind
(the pydantic model parses it); and each fixture gets the health status and message its
annotations expect, with the script run as Argo CD runs it (gopher-lua is Lua 5.1; only the
base, table and package libraries are open, so a script that reaches for ``string`` or ``math``
fails here as it would there); and any reason kubeinfer defines, with Ready True, False or
Unknown and with or without a message, gets a valid Argo CD status and a message. ``e2e/tests/test_argocd_health.py`` runs the same fixtures
through Argo CD's own evaluator.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import pytest

from e2e.harness import health_fixtures
from kubeinfer import argocd_health
from kubeinfer.api import kinds
from kubeinfer.api.conditions import Reason

FIXTURES = health_fixtures.fixtures()
LAYOUT = health_fixtures.LAYOUT
ARGO_CD_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended"}
# What gopher-lua, as Argo CD configures it, does not open.
_CLOSED_LIBRARIES = "string = nil; math = nil; io = nil; debug = nil; os = nil; coroutine = nil"


@pytest.fixture(scope="module")
def lua51() -> ModuleType:
    """lupa's Lua 5.1 (a declared test dependency)."""
    return importlib.import_module("lupa.lua51")  # a declared test dependency: missing fails


def judge(lua51: ModuleType, script: str, resource: dict[str, Any]) -> tuple[str, str]:
    """Run ``script`` on ``resource`` in a fresh sandbox; return its (status, message)."""
    lua = lua51.LuaRuntime()
    lua.execute('getmetatable("").__index = nil; ' + _CLOSED_LIBRARIES)
    lua.globals().obj = lua.table_from(resource, recursive=True)
    result = lua.execute(script)
    return str(result["status"]), str(result["message"])


def test_committed_scripts_are_assembled_from_the_sources() -> None:
    argocd_health.check(LAYOUT)


def test_every_kind_has_a_script_and_fixtures() -> None:
    covered = {f.resource["kind"] for f in FIXTURES}
    assert covered == set(argocd_health.kind_names())
    for kind in argocd_health.kind_names():
        assert (LAYOUT.health_dir / argocd_health.script_name(kind)).is_file()


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.id)
def test_fixture_status_is_a_valid_status_of_its_kind(fixture: health_fixtures.Fixture) -> None:
    assert fixture.status in ARGO_CD_STATUSES
    status = fixture.resource.get("status")
    if status is not None:
        kinds.BY_KIND[fixture.resource["kind"]].status.model_validate(status)


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.id)
def test_script_gives_the_expected_health(
    lua51: ModuleType, fixture: health_fixtures.Fixture
) -> None:
    script = argocd_health.scripts(LAYOUT)[fixture.resource["kind"]]
    assert judge(lua51, script, fixture.resource) == (fixture.status, fixture.message)


@pytest.mark.parametrize("kind", argocd_health.kind_names())
def test_every_reason_and_ready_status_gets_a_health_and_a_message(
    lua51: ModuleType, kind: str
) -> None:
    script = argocd_health.scripts(LAYOUT)[kind]
    for reason in Reason:
        for status in ("True", "False", "Unknown"):
            for message in ("Something was observed.", None):
                ready = {"type": "Ready", "status": status, "reason": reason.value}
                if message is not None:
                    ready["message"] = message
                resource = {
                    "apiVersion": "kubeinfer.io/v1alpha1",
                    "kind": kind,
                    "metadata": {"name": "example", "generation": 1},
                    "status": {"observedGeneration": 1, "conditions": [ready]},
                }
                health, said = judge(lua51, script, resource)
                assert health in ARGO_CD_STATUSES, (reason, status)
                assert said, (reason, status, message)


def test_a_script_cannot_use_the_string_library(lua51: ModuleType) -> None:
    with pytest.raises(lua51.LuaError):
        judge(lua51, 'return {status = "Healthy", message = string.format("%d", 1)}', {})
