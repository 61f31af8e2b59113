"""Where the recorded topologies live, relative to the repository (no absolute paths).

``SHARED`` holds real machines' ``nvidia-smi topo -m`` recordings, copied from public reports (each
file names its machine and source). They are kept in the repository so a fresh clone tests
itself, with their SHA-256 sums in ``SHA256SUMS`` beside them (``test_recorded_copy``).
``SYNTHETIC`` holds kubeinfer's own (16-GPU NVSwitch, 16-GPU
PCIe pairs, MIG-enabled H100, a GPU that fell off the bus).
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYNTHETIC = Path(__file__).resolve().parent / "fixtures"
SHARED = SYNTHETIC / "recorded"
CHECKSUMS = "SHA256SUMS"


def shared_recordings() -> Path:
    """The recorded real machines; fails (never skips) when the directory is missing."""
    if not SHARED.is_dir():
        pytest.fail(f"recordings not found at {SHARED.relative_to(REPO)}")
    return SHARED
