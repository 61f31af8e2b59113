"""The recordings kept in the repository stay identical to the team's shared set."""

from __future__ import annotations

import pytest

from tests.gpu import paths


def test_repository_copy_matches_the_shared_recordings() -> None:
    if not paths.UPSTREAM.is_dir():
        pytest.skip("no shared set beside this clone to compare with (the copy is the source)")
    upstream = {p.name: p.read_bytes() for p in paths.UPSTREAM.iterdir() if p.is_file()}
    kept = {p.name: p.read_bytes() for p in paths.SHARED.iterdir() if p.is_file()}
    assert kept == upstream
