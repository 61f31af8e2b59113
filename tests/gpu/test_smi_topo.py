"""The nvidia-smi topo -m parser reads every recorded machine as printed.

Covers: tab and space forms, NIC columns named NICn or mlx5_n with their legend, the empty CPU
affinity of a GPU outside the caller's cgroup, a missing NUMA column, old cell spellings, and
refusal of text that is not a matrix.
"""

from __future__ import annotations

import pytest

from kubeinfer.gpu import smi_topo
from tests.gpu import paths


def _shared(name: str) -> smi_topo.TopoMatrix:
    return smi_topo.parse((paths.shared_recordings() / name).read_text())


def test_every_recording_parses_into_a_symmetric_matrix_with_one_row_per_gpu() -> None:
    files = sorted(paths.shared_recordings().glob("*.txt")) + sorted(paths.SYNTHETIC.glob("*.txt"))
    assert len(files) >= 13
    for path in files:
        matrix = smi_topo.parse(path.read_text())
        assert matrix.gpus == tuple(f"GPU{i}" for i in range(len(matrix.gpus))), path.name
        for a in matrix.gpus:
            assert set(matrix.cpu_affinity) == set(matrix.gpus)
            for b in matrix.gpus:
                assert matrix.cell(a, b) == matrix.cell(b, a)


def test_tab_separated_form_keeps_numa_and_nic_cells() -> None:
    matrix = _shared("pcie-8x-all-sys-2socket.txt")
    assert matrix.nics == ("NIC0", "NIC1")
    assert matrix.cell("GPU6", "NIC0") == "PHB"
    assert [matrix.numa_affinity[g] for g in matrix.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert matrix.cpu_affinity["GPU7"] == tuple(range(56, 112)) + tuple(range(168, 224))


def test_empty_cpu_affinity_is_none_and_numa_still_read() -> None:
    matrix = _shared("pcie-a100x8-nvlink-pairs.txt")
    assert matrix.cpu_affinity["GPU4"] is None
    assert matrix.numa_affinity["GPU4"] == 1
    assert matrix.cpu_affinity["GPU0"] == tuple(range(16)) + tuple(range(56, 72))
    assert matrix.nvlinks("GPU6", "GPU7") == 12
    assert matrix.cell("GPU6", "NIC0") == "PHB"


def test_single_space_between_numa_and_gpu_numa_id_is_tolerated() -> None:
    matrix = _shared("gke-a4-b200.txt")
    assert [matrix.numa_affinity[g] for g in matrix.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert matrix.nic_names["NIC7"] == "mlx5_7"
    assert matrix.nvlinks("GPU0", "GPU7") == 18


def test_mlx_named_nic_columns_and_missing_numa_column() -> None:
    matrix = _shared("dgx1-v100.txt")
    assert matrix.nics == ("mlx5_0",)
    assert matrix.numa_affinity["GPU0"] is None
    assert matrix.nvlinks("GPU0", "GPU3") == 2
    assert matrix.cell("GPU0", "GPU5") == "SYS"


def test_old_cell_names_are_normalised() -> None:
    text = "\tGPU0\tGPU1\tCPU Affinity\nGPU0\t X \tSOC\t0-3\nGPU1\tSOC\t X \t4-7\n"
    assert smi_topo.parse(text).cell("GPU0", "GPU1") == "SYS"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello\n", "no header"),
        ("\tGPU0\tGPU1\nGPU0\t X \tFOO\nGPU1\tFOO\t X \n", "unknown topology cell"),
        ("\tGPU0\tGPU1\nGPU0\t X \tSYS\nGPU1\tPIX\t X \n", "not symmetric"),
    ],
    ids=["text without a header", "an unknown cell", "an asymmetric matrix"],
)
def test_text_that_is_not_a_matrix_is_refused(text: str, message: str) -> None:
    with pytest.raises(smi_topo.TopoParseError, match=message):
        smi_topo.parse(text)
