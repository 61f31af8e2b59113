"""NCCL environment from placed GPU sets: NVLink-only sets pin peer-to-peer to NVLink, PCIe sets
use the farthest in-NUMA distance they span, NUMA-crossing sets keep NCCL's default, single-GPU
replicas get nothing, and the weakest set of a Deployment decides."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeinfer.api import inference_service as api
from kubeinfer.gpu import recordings
from kubeinfer.planning.gpu import nccl

FIXTURES = Path(__file__).resolve().parents[1] / "gpu" / "fixtures"
PAIRS = recordings.topology_of(recordings.load(FIXTURES / "pcie-a100x8-nvlink-pairs-2socket.txt"))
NVSWITCH = recordings.topology_of(recordings.load(FIXTURES / "hgx2-v100x16-nvswitch.txt"))


def _placed(node: str, gpus: list[int], numa: list[int]) -> api.ReplicaPlacement:
    return api.ReplicaPlacement(replica=0, node=node, gpus=gpus, numa_nodes=numa)


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        pytest.param(
            [_placed("pairs", [0, 1], [0])],
            {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "NCCL_P2P_LEVEL": "NVL", "NCCL_CROSS_NIC": "0"},
            id="an NVLink pair uses NVLink only",
        ),
        pytest.param(
            [_placed("nvswitch", [0, 5, 9, 14], [0, 1])],
            {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "NCCL_P2P_LEVEL": "NVL"},
            id="NVSwitch sets count as NVLink",
        ),
        pytest.param(
            [_placed("pairs", [0, 1, 2, 3], [0])],
            {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "NCCL_P2P_LEVEL": "PIX", "NCCL_CROSS_NIC": "0"},
            id="two pairs behind one switch use P2P through it",
        ),
        pytest.param(
            [_placed("pairs", [0, 4], [0, 1])],
            {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
            id="a set across NUMA nodes keeps NCCL's default",
        ),
        pytest.param(
            [_placed("pairs", [0, 1], [0]), _placed("pairs", [2, 3, 4, 5], [0, 1])],
            {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
            id="the weakest replica decides the shared pod template",
        ),
        pytest.param([_placed("pairs", [3], [0])], {}, id="single-GPU replicas need nothing"),
        pytest.param([_placed("unknown", [0, 1], [0])], {}, id="an unknown node adds nothing"),
    ],
)
def test_environment(sets: list[api.ReplicaPlacement], expected: dict[str, str]) -> None:
    assert nccl.environment(sets, {"pairs": PAIRS, "nvswitch": NVSWITCH}) == expected
