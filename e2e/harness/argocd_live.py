"""Argo CD's health evaluator pointed at live kubeinfer objects of the session's control plane.

Owns: reading an object as Argo CD's application controller reads it (the whole live object,
status included) and judging it with ``argocd admin settings resource-overrides health``, once
or until a wanted status, remembering each distinct answer on the way.
Must not: decide what the answer should be (tests do) or build argocd (``argocd`` does).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import yaml

from e2e.harness import argocd, waiting
from e2e.harness import cluster as cluster_setup


@dataclasses.dataclass(frozen=True)
class LiveJudge:
    """Argo CD's evaluator pointed at live kubeinfer objects of the session's control plane."""

    cluster: cluster_setup.Cluster
    binary: pathlib.Path
    argocd_cm: pathlib.Path
    scratch: pathlib.Path

    def judge(self, resource: dict[str, Any]) -> argocd.Health:
        """The live object's health, read as Argo CD's controller reads it (kept in ``scratch``)."""
        meta = resource["metadata"]
        ref = f"{resource['kind'].lower()}.kubeinfer.io/{meta['name']}"
        live = self.cluster.kubectl("get", ref, "-n", meta["namespace"], "-o", "yaml").stdout
        self.scratch.write_text(live, encoding="utf-8")
        return argocd.health(self.binary, self.scratch, self.argocd_cm)

    def watch(self, resource: dict[str, Any], until: str) -> list[argocd.Health]:
        """Apply ``resource``, judge it until the status is ``until``; return each distinct answer."""
        seen: list[argocd.Health] = []

        def reached() -> bool:
            found = self.judge(resource)
            if not seen or seen[-1] != found:
                seen.append(found)
            return found.status == until

        self.cluster.kubectl.apply(text=yaml.safe_dump(resource))
        waiting.until(
            reached,
            what=f"Argo CD to see {resource['metadata']['name']} {until}",
            timeout=90,
            interval=0.5,
            on_timeout=lambda: repr(seen),
        )
        return seen
