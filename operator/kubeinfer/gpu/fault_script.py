"""Faults a test injects into a running fake NVML by appending lines to a file.

Owns :class:`ScriptedNvml`, a :class:`~kubeinfer.gpu.fake_nvml.FakeNvml` whose event wait
blocks like NVML's (up to ``timeoutms``, returning as soon as an event arrives) and which, while
waiting, applies new lines of a *fault script* file. One directive per line, GPU by index::

    xid <gpu> <n>        deliver XID n (nvmlEventTypeXidCriticalError)
    ecc <gpu>            deliver a double-bit ECC event and count one uncorrectable error
    lost <gpu>           the GPU falls off the bus (XID 79, then GPU_IS_LOST)
    memory <gpu> <MiB>   memory-info reports this much in use from now on

This is how the e2e suite makes an XID happen on a KWOK node's agent at a time it controls.
Blank lines and ``#`` comments are skipped; a bad line is reported once and skipped.

Must not: be used with a real GPU (it only wraps the fake), decide health.
"""

from __future__ import annotations

import logging
import pathlib
import time
from typing import Any

import pynvml

from kubeinfer.gpu import fake_nvml, recorded

log = logging.getLogger(__name__)
POLL_S = 0.05
MIB = 1024**2


class ScriptedNvml(fake_nvml.FakeNvml):
    """The fake NVML of ``machine``, fed faults from ``script`` (which may not exist yet)."""

    def __init__(self, machine: recorded.RecordedMachine, script: pathlib.Path | None) -> None:
        super().__init__(machine)
        self._script = script
        self._offset = 0

    def apply_new_directives(self) -> int:
        """Apply lines appended to the script since the last call; return how many."""
        if self._script is None or not self._script.exists():
            return 0
        with self._script.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        applied = 0
        for raw in complete.decode("utf-8", errors="replace").splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                self._apply(line.split())
                applied += 1
            except (ValueError, IndexError) as err:
                log.warning("Skipped fault script line %r: %s", raw, err)
        return applied

    def _apply(self, words: list[str]) -> None:
        verb, gpu = words[0], int(words[1])
        if not 0 <= gpu < len(self.machine.gpus):
            msg = f"no GPU {gpu}"
            raise ValueError(msg)
        if verb == "xid":
            xid = int(words[2])
            self.inject_event(
                recorded.RecordedEvent(gpu, pynvml.nvmlEventTypeXidCriticalError, xid)
            )
        elif verb == "ecc":
            count = self.machine.gpus[gpu].ecc_uncorrected_volatile + 1
            self.machine = recorded.with_gpu(self.machine, gpu, ecc_uncorrected_volatile=count)
            self.inject_event(recorded.RecordedEvent(gpu, pynvml.nvmlEventTypeDoubleBitEccError))
        elif verb == "lost":
            self.lose_gpu(gpu)
        elif verb == "memory":
            self.set_memory_used(gpu, int(float(words[2]) * MIB))
        else:
            msg = f"unknown directive {verb!r}"
            raise ValueError(msg)

    def nvmlEventSetWait(self, eventSet: fake_nvml.EventSet, timeoutms: int) -> Any:
        """Block up to ``timeoutms`` for an event, applying script lines meanwhile."""
        deadline = time.monotonic() + timeoutms / 1000
        while True:
            self.apply_new_directives()
            if eventSet.pending or eventSet.freed:
                return super().nvmlEventSetWait(eventSet, 0)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return super().nvmlEventSetWait(eventSet, 0)  # raises TIMEOUT, as NVML does
            time.sleep(min(POLL_S, remaining))
