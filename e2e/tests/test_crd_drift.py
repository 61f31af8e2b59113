"""The API server keeps every field a GitOps tool sets on kubeinfer's kinds exactly as set.

Covers: each example in ``manifests/examples/`` applied server-side (dry run) comes back with
every field of its spec, labels and annotations unchanged (no pruning of an unknown field, no
rewritten value): the CRD defaults only add fields Git does not set, which Argo CD's diff leaves
alone, so the generated schemas cannot hold an Application OutOfSync. A field the schema does not
know is the counter-case: server-side apply refuses it, and a write without field validation has
it pruned, the drift this check catches.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import versions

pytestmark = pytest.mark.e2e
EXAMPLES = sorted((versions.REPO_ROOT / "manifests" / "examples").glob("*.yaml"))


def _changed(path: str, wanted: Any, stored: Any) -> list[str]:
    """Paths where ``stored`` does not hold ``wanted``; fields only in ``stored`` are fine."""
    if isinstance(wanted, dict):
        if not isinstance(stored, dict):
            return [f"{path}: set {wanted!r}, stored {stored!r}"]
        return [
            line
            for key, value in wanted.items()
            for line in _changed(f"{path}.{key}", value, stored.get(key))
        ]
    if isinstance(wanted, list):
        if not isinstance(stored, list) or len(stored) != len(wanted):
            return [f"{path}: set {wanted!r}, stored {stored!r}"]
        return [
            line
            for index, (a, b) in enumerate(zip(wanted, stored, strict=True))
            for line in _changed(f"{path}[{index}]", a, b)
        ]
    return [] if wanted == stored else [f"{path}: set {wanted!r}, stored {stored!r}"]


def _dry_run(
    cluster: cluster_setup.Cluster,
    namespace: str,
    doc: dict[str, Any],
    verb: tuple[str, ...] = ("apply", "--server-side", "--field-manager=argocd-controller"),
) -> Any:
    """What the API server would store for ``doc`` (server-side apply, as Argo CD syncs)."""
    doc = {**doc, "metadata": {**doc["metadata"], "namespace": namespace}}
    return yaml.safe_load(
        cluster.kubectl(
            *verb, "--dry-run=server", "-o", "yaml", "-f", "-", stdin=yaml.safe_dump(doc)
        ).stdout
    )


def test_every_field_an_example_sets_is_stored_as_set(
    cluster: cluster_setup.Cluster, kubeinfer_crds: tuple[str, ...], namespace: str
) -> None:
    problems: list[str] = []
    checked = 0
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not doc:
                continue
            stored = _dry_run(cluster, namespace, doc)
            for part in ("spec", "metadata.labels", "metadata.annotations"):
                wanted, kept = doc, stored
                for key in part.split("."):
                    wanted, kept = (wanted or {}).get(key), (kept or {}).get(key)
                where = f"{path.name} {doc['kind']}/{doc['metadata']['name']} {part}"
                problems += _changed(where, wanted, kept) if wanted is not None else []
            checked += 1
    assert checked >= len(EXAMPLES)
    assert problems == []


def test_the_check_sees_a_pruned_field(
    cluster: cluster_setup.Cluster, kubeinfer_crds: tuple[str, ...], namespace: str
) -> None:
    doc = yaml.safe_load((versions.REPO_ROOT / "manifests/examples/01-gpupool.yaml").read_text())
    doc["spec"]["notInTheSchema"] = "pruned"
    # Server-side apply refuses an undeclared field outright (the error Argo CD shows); a plain
    # create without field validation stores the object with the field pruned.
    stored = _dry_run(cluster, namespace, doc, ("create", "--validate=false"))
    assert _changed("spec", doc["spec"], stored["spec"]) == [
        "spec.notInTheSchema: set 'pruned', stored None"
    ]
