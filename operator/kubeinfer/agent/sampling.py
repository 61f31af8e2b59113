"""The node agent's GPU memory sample window, one bounded series per GPU.

Owns :class:`MemoryWindow`: samples ``(seconds, used MiB)`` taken at the pool's sample interval
are kept for the prediction window, and :meth:`MemoryWindow.trends` fits each series with
``planning.gpu.oom.fit`` (the operator judges the trend against each workload's budget).

Must not: call NVML (``run`` samples), judge risk.
"""

from __future__ import annotations

from collections import deque

from kubeinfer.api import node_inventory as inv
from kubeinfer.planning.gpu import oom


class MemoryWindow:
    """Per-GPU memory samples over the last ``window_s`` seconds."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._series: dict[int, deque[tuple[float, float]]] = {}

    def add(self, index: int, at_s: float, used_mib: float) -> None:
        """Record one sample and drop those older than the window."""
        series = self._series.setdefault(index, deque())
        series.append((at_s, used_mib))
        while series and at_s - series[0][0] > self.window_s:
            series.popleft()

    def forget(self, index: int) -> None:
        """Drop a GPU's series (it was lost)."""
        self._series.pop(index, None)

    def trends(self) -> dict[int, inv.MemoryTrend]:
        """The fitted trend of every GPU with at least two samples."""
        out: dict[int, inv.MemoryTrend] = {}
        for index, series in self._series.items():
            trend = oom.fit(list(series))
            if trend is not None:
                out[index] = trend
        return out
