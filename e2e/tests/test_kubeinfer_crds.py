"""kubeinfer's generated CRDs (``crds/``) are accepted by a real API server.

Covers: every kind installs and becomes Established, so structural-schema, default and CEL
mistakes in the generator surface here rather than at a user's ``kubectl apply``.
"""

from __future__ import annotations

import pytest

from e2e.harness import cluster as cluster_setup
from e2e.harness import crds

pytestmark = pytest.mark.e2e


def test_every_generated_crd_is_established(cluster: cluster_setup.Cluster) -> None:
    expected = crds.crd_names(crds.repo_files())
    assert expected, "crds/ is empty: run `make crds`"
    assert sorted(cluster.kubeinfer_crds) == sorted(expected)
