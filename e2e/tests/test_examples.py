"""Every numbered example in ``manifests/examples/`` is reconciled by the real operator.

Covers: the operator starts as its ServiceAccount (exactly ``manifests/`` RBAC) with the
generated CRDs, and for each example writes status the way GitOps tools read it:
``status.observedGeneration`` equal to ``metadata.generation`` and a ``Ready`` condition.
"""

from __future__ import annotations

import functools
import json
import pathlib
from typing import Any

import pytest
import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import objects, operator_process, versions, waiting

pytestmark = pytest.mark.e2e

EXAMPLES = sorted((versions.REPO_ROOT / "manifests" / "examples").glob("*.yaml"))


def _documents(path: pathlib.Path, namespace: str) -> list[dict[str, Any]]:
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    for document in documents:
        document["metadata"]["namespace"] = namespace
    return documents


def _reports_ready(
    cluster: cluster_setup.Cluster, ref: str, namespace: str, observed: dict[str, Any]
) -> bool:
    """Read ``ref`` into ``observed``; true once Ready is reported for the current generation."""
    observed.update(objects.get(cluster, ref, namespace=namespace))
    status = observed.get("status") or {}
    ready = objects.condition(status, "Ready")
    return bool(ready) and status.get("observedGeneration") == observed["metadata"]["generation"]


def _status_text(observed: dict[str, Any]) -> str:
    return json.dumps(observed.get("status"), indent=1)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_example_gets_ready_condition_for_its_generation(
    cluster: cluster_setup.Cluster,
    operator: operator_process.RunningOperator,
    namespace: str,
    example: pathlib.Path,
) -> None:
    documents = _documents(example, namespace)
    cluster.kubectl.apply(text=yaml.safe_dump_all(documents))
    for document in documents:
        ref = f"{document['kind'].lower()}.{document['apiVersion'].split('/')[0]}"
        name = document["metadata"]["name"]
        observed: dict[str, Any] = {}
        waiting.until(
            functools.partial(_reports_ready, cluster, f"{ref}/{name}", namespace, observed),
            what=f"{ref}/{name} to report Ready for its generation",
            timeout=60,
            interval=0.5,
            on_timeout=functools.partial(_status_text, observed),
        )
