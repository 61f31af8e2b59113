"""Parser of ``nvidia-smi topo -m`` matrices, as recorded from real machines.

Owns turning the printed matrix into a frozen :class:`TopoMatrix`: device columns (GPUs and
NICs), the link cell of every pair, CPU / NUMA affinity per GPU and the NIC legend. Tolerates
what nvidia-smi and copy-paste produce: tab- or space-separated columns, comment and prompt
lines, legends, NIC columns named ``NICn`` or ``mlx5_n``, an empty CPU affinity (the GPU sits
outside the caller's cgroup), and a trailing ``GPU NUMA ID`` column.

Must not do: any inference beyond what the matrix says (PCIe levels hidden behind NV# cells are
inferred in ``fake_nvml``), file-system access (callers pass text).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Link cell spellings, including the older names nvidia-smi used (SOC for SYS, CPU for NODE).
PCIE_CELLS: Mapping[str, str] = {
    "PIX": "PIX",
    "PXB": "PXB",
    "PHB": "PHB",
    "NODE": "NODE",
    "CPU": "NODE",
    "SYS": "SYS",
    "SOC": "SYS",
}
_NV_CELL = re.compile(r"^NV(\d+)$")
_CPU_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
_DEVICE_LABEL = re.compile(r"^(GPU\d+|NIC\d+|mlx\d+_\d+|[a-z]+\d*_\d+)$")
_TRAILING = ("CPU Affinity", "NUMA Affinity", "GPU NUMA ID")


class TopoParseError(ValueError):
    """The text is not an ``nvidia-smi topo -m`` matrix."""


@dataclass(frozen=True)
class TopoMatrix:
    """One ``nvidia-smi topo -m`` matrix."""

    title: str
    """First comment line of the recording (machine description), or empty."""
    columns: tuple[str, ...]
    """Device columns in printed order: ``GPU0``… then NICs (``NIC0`` or ``mlx5_0``)."""
    cells: Mapping[tuple[str, str], str] = field(hash=False)
    """Normalised cell per (row, column): ``X``, ``NV12``, ``PIX``, ``PXB``, ``PHB``, ``NODE``,
    ``SYS``."""
    cpu_affinity: Mapping[str, tuple[int, ...] | None] = field(hash=False)
    """CPUs per GPU row; None when the column is empty (outside the caller's cgroup)."""
    numa_affinity: Mapping[str, int | None] = field(hash=False)
    """NUMA node per GPU row; None for N/A."""
    nic_names: Mapping[str, str] = field(hash=False)
    """``NICn`` → device name from the NIC legend (``mlx5_0``); mlx-named columns map to self."""

    @property
    def gpus(self) -> tuple[str, ...]:
        """GPU column labels in index order."""
        return tuple(c for c in self.columns if c.startswith("GPU"))

    @property
    def nics(self) -> tuple[str, ...]:
        """NIC column labels in printed order."""
        return tuple(c for c in self.columns if not c.startswith("GPU"))

    def cell(self, row: str, column: str) -> str:
        """The normalised cell at ``row``/``column``."""
        return self.cells[(row, column)]

    def nvlinks(self, row: str, column: str) -> int:
        """NV# count of a cell, 0 when it is a PCIe level."""
        match = _NV_CELL.match(self.cells[(row, column)])
        return int(match.group(1)) if match else 0


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """``0-23,48-71`` → the CPUs it names."""
    cpus: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    return tuple(cpus)


def _normalise_cell(raw: str) -> str:
    cell = raw.strip().upper()
    if cell == "X" or _NV_CELL.match(cell):
        return cell
    if cell in PCIE_CELLS:
        return PCIE_CELLS[cell]
    msg = f"unknown topology cell {raw!r}"
    raise TopoParseError(msg)


def _split(line: str) -> list[str]:
    """Cells of a line: tab-separated when it has tabs, else whitespace-separated."""
    if "\t" in line:
        return [part.strip() for part in line.split("\t") if part.strip()]
    return line.split()


def _split_header(line: str) -> list[str]:
    """Header cells: multi-word headers (``CPU Affinity``) are separated by 2+ spaces or tabs."""
    return [part for part in re.split(r"\t+|\s{2,}", line.strip()) if part]


def _is_skipped(line: str) -> bool:
    stripped = line.strip()
    return (
        not stripped
        or stripped.startswith(("#", "$"))
        or stripped.endswith("Legend:")
        or " = " in stripped
    )


def parse(text: str) -> TopoMatrix:
    """Parse one recorded ``nvidia-smi topo -m`` output."""
    lines = text.splitlines()
    title = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("#")), "")
    header_at = next(
        (i for i, ln in enumerate(lines) if not _is_skipped(ln) and _split(ln)[:1] == ["GPU0"]),
        None,
    )
    if header_at is None:
        msg = "no header row starting with GPU0"
        raise TopoParseError(msg)
    header = _split_header(lines[header_at])
    columns = tuple(h for h in header if _DEVICE_LABEL.match(h))
    trailing = tuple(h for h in header[len(columns) :] if h in _TRAILING)
    nic_names = _nic_legend(lines)

    cells: dict[tuple[str, str], str] = {}
    cpu_affinity: dict[str, tuple[int, ...] | None] = {}
    numa_affinity: dict[str, int | None] = {}
    for line in lines[header_at + 1 :]:
        if _is_skipped(line):
            continue
        parts = _split(line)
        label = parts[0]
        if label not in columns:
            continue
        row = parts[1 : 1 + len(columns)]
        if len(row) != len(columns):
            msg = f"row {label} has {len(row)} cells for {len(columns)} columns"
            raise TopoParseError(msg)
        for column, raw in zip(columns, row, strict=True):
            cells[(label, column)] = _normalise_cell(raw)
        if label.startswith("GPU"):
            extra = _trailing_fields(parts[1 + len(columns) :], trailing)
            cpus = extra.get("CPU Affinity", "")
            cpu_affinity[label] = parse_cpu_list(cpus) if _CPU_LIST.match(cpus) else None
            numa = extra.get("NUMA Affinity", "N/A")
            numa_affinity[label] = int(numa) if numa.isdigit() else None
    _check_square(columns, cells)
    for column in columns:
        if not column.startswith("GPU"):
            nic_names.setdefault(column, column)
    return TopoMatrix(
        title=title,
        columns=columns,
        cells=cells,
        cpu_affinity=cpu_affinity,
        numa_affinity=numa_affinity,
        nic_names=nic_names,
    )


def _trailing_fields(values: list[str], names: tuple[str, ...]) -> dict[str, str]:
    """Map the cells after the device columns onto their headers.

    When fewer values than headers are printed the leading ones are the empty ones (an empty
    CPU affinity is the only column nvidia-smi leaves blank), so values align to the right.
    """
    if len(values) > len(names):
        msg = f"{len(values)} trailing cells for headers {names}"
        raise TopoParseError(msg)
    offset = len(names) - len(values)
    return dict(zip(names[offset:], values, strict=True))


def _nic_legend(lines: list[str]) -> dict[str, str]:
    legend: dict[str, str] = {}
    for line in lines:
        match = re.match(r"^\s*(NIC\d+):\s*(\S+)\s*$", line)
        if match:
            legend[match.group(1)] = match.group(2)
    return legend


def _check_square(columns: tuple[str, ...], cells: Mapping[tuple[str, str], str]) -> None:
    for row in columns:
        if not row.startswith("GPU"):
            continue
        for column in columns:
            if (row, column) not in cells:
                msg = f"matrix has no cell for ({row}, {column})"
                raise TopoParseError(msg)
            if (row == column) != (cells[(row, column)] == "X"):
                msg = f"cell ({row}, {column}) is {cells[(row, column)]!r}"
                raise TopoParseError(msg)
            mirror = cells.get((column, row))
            if mirror is not None and mirror != cells[(row, column)]:
                msg = f"matrix is not symmetric at ({row}, {column})"
                raise TopoParseError(msg)
