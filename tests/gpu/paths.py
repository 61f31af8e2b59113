"""Where the recorded topologies live, relative to the repository (no absolute paths).

``SHARED`` holds real machines' ``nvidia-smi topo -m`` recordings beside the repository
(``../shared/fixtures/topologies``); ``SYNTHETIC`` holds kubeinfer's own (16-GPU NVSwitch,
16-GPU PCIe pairs, MIG-enabled H100, a GPU that fell off the bus).
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "fixtures" / "topologies"
SYNTHETIC = Path(__file__).resolve().parent / "fixtures"


def shared_recordings() -> Path:
    """The shared recordings directory; fails (never skips) when it is not checked out beside."""
    if not SHARED.is_dir():
        pytest.fail(f"shared recordings not found at {SHARED.relative_to(REPO.parent)}")
    return SHARED
