"""The Argo CD health fixtures both judges check, and where the repository keeps the scripts.

Owns: reading ``tests/argocd/fixtures/<kind>/*.yaml``, each a resource whose annotations name the
health status and message its script must give, and ``LAYOUT``, the repository's
``manifests/argocd`` as :mod:`kubeinfer.argocd_health` sees it.
Must not: assemble or judge the scripts (``kubeinfer.argocd_health`` assembles them, the Lua
interpreter of ``tests/argocd`` and ``argocd`` judge them).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import yaml

from e2e.harness import versions
from kubeinfer import argocd_health

LAYOUT = argocd_health.Layout(versions.REPO_ROOT / "manifests" / "argocd")
FIXTURES_DIR = versions.REPO_ROOT / "tests" / "argocd" / "fixtures"
EXPECTED_STATUS = "health.test.kubeinfer.io/status"
EXPECTED_MESSAGE = "health.test.kubeinfer.io/message"


@dataclasses.dataclass(frozen=True)
class Fixture:
    """A resource in some state and the health Argo CD must report for it."""

    path: pathlib.Path
    resource: dict[str, Any]
    status: str
    message: str

    @property
    def id(self) -> str:
        """``inference_service/paused-rollout-is-suspended``: reads as the case it covers."""
        return f"{self.path.parent.name}/{self.path.stem}"


def fixtures() -> list[Fixture]:
    """Every status fixture, sorted by kind directory and name."""
    out = []
    for path in sorted(FIXTURES_DIR.glob("*/*.yaml")):
        resource = yaml.safe_load(path.read_text(encoding="utf-8"))
        annotations = resource["metadata"]["annotations"]
        out.append(
            Fixture(path, resource, annotations[EXPECTED_STATUS], annotations[EXPECTED_MESSAGE])
        )
    return out
