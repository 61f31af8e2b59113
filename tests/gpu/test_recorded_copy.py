"""The recorded real machines in the repository are the ones the team took from public reports.

Covers: every file of ``tests/gpu/fixtures/recorded`` has the SHA-256 that ``SHA256SUMS`` beside
it records, and no file was added or removed without it. The reference lives in the repository,
so the check runs everywhere (CI included) and never skips. A recording changed on purpose (a
re-synced or a new machine) updates the sums in the same commit:
``cd tests/gpu/fixtures/recorded && sha256sum $(ls | grep -v SHA256SUMS) > SHA256SUMS``.
"""

from __future__ import annotations

import hashlib

from tests.gpu import paths


def test_recordings_match_the_checksums_kept_beside_them() -> None:
    directory = paths.shared_recordings()
    recorded = {}
    for line in (directory / paths.CHECKSUMS).read_text(encoding="utf-8").splitlines():
        digest, name = line.split(maxsplit=1)
        recorded[name.lstrip("*")] = digest
    found = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != paths.CHECKSUMS
    }
    assert set(found) == set(recorded), "files added or removed without updating SHA256SUMS"
    changed = sorted(name for name in found if found[name] != recorded[name])
    assert not changed, f"recordings changed without updating SHA256SUMS: {changed}"
