"""Child processes that never outlive the harness.

Owns: starting a command in its own process group with output in a log file; stopping it
(SIGTERM to the group, then SIGKILL); a ``Supervisor`` that stops everything it started in
reverse order, from ``with``, ``atexit`` and SIGTERM/SIGHUP; waiting for a condition while
watching that the processes are still alive; picking free loopback ports.
Must not: know what the processes are (``control_plane`` and ``operator`` do).

Belt and braces on Linux: each child also gets ``PR_SET_PDEATHSIG=SIGKILL``, so even a harness
killed with SIGKILL takes its children with it. Start processes from the main thread: the
kernel ties that signal to the thread that forked.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import types
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

from e2e.harness import waiting

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1


class ProcessError(RuntimeError):
    """A supervised process exited early; the message has its log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Process:
    """One running command, alone in its process group, its stdout+stderr in ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: pathlib.Path,
        env: Mapping[str, str] | None = None,
        cwd: pathlib.Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        with log_path.open("ab") as sink:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl(2)
            )
        self.pid = self._popen.pid
        self._stopped = False
        log.info(
            "Started process", extra={"component": name, "pid": self.pid, "log": str(log_path)}
        )

    @property
    def returncode(self) -> int | None:
        """Exit status, or None while running."""
        return self._popen.poll()

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def ensure_running(self) -> None:
        """Raise ``ProcessError`` with the log tail if the process has exited."""
        code = self.returncode
        if code is not None:
            raise ProcessError(f"{self.name} exited with status {code}; log tail:\n{self.tail()}")

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; idempotent."""
        if self._stopped:  # never signal a group id the kernel may have handed out again
            return
        self._stopped = True
        self._signal_group(signal.SIGTERM)
        try:
            self._popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("Killed process after grace period", extra={"component": self.name})
        # Whatever else lives in the group (grandchildren) goes too.
        self._signal_group(signal.SIGKILL)
        self._popen.wait()
        log.info(
            "Stopped process", extra={"component": self.name, "status": self._popen.returncode}
        )

    def _signal_group(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)


class Supervisor:
    """Owns processes; stops them in reverse start order on ``stop()``, exit or SIGTERM."""

    _live: ClassVar[weakref.WeakSet[Supervisor]] = weakref.WeakSet()
    _hooks_installed: ClassVar[bool] = False
    _hooks_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._processes: list[Process] = []
        self._install_hooks()
        Supervisor._live.add(self)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: pathlib.Path,
        env: Mapping[str, str] | None = None,
        cwd: pathlib.Path | None = None,
    ) -> Process:
        """Start ``argv`` under supervision."""
        process = Process(name, argv, log_path=log_path, env=env, cwd=cwd)
        self._processes.append(process)
        return process

    @property
    def processes(self) -> tuple[Process, ...]:
        """Everything started and not yet stopped, in start order."""
        return tuple(self._processes)

    def stop(self) -> None:
        """Stop every process, newest first; idempotent."""
        while self._processes:
            self._processes.pop().stop()

    def wait_until(
        self,
        condition: Callable[[], bool],
        *,
        what: str,
        timeout: float,
        interval: float = 0.1,
    ) -> None:
        """Poll ``condition`` until true; fail fast if a supervised process dies meanwhile."""

        def alive_and_true() -> bool:
            for process in self._processes:
                process.ensure_running()
            return condition()

        def tails() -> str:
            return "\n".join(f"--- {p.name}:\n{p.tail(15)}" for p in self._processes)

        waiting.until(
            alive_and_true, what=what, timeout=timeout, interval=interval, on_timeout=tails
        )

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    @classmethod
    def stop_all(cls) -> None:
        """Stop every live supervisor's processes (``atexit`` and signal path)."""
        for supervisor in list(cls._live):
            supervisor.stop()

    @classmethod
    def _install_hooks(cls) -> None:
        with cls._hooks_lock:
            if cls._hooks_installed:
                return
            cls._hooks_installed = True
        atexit.register(cls.stop_all)
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous = signal.getsignal(signum)
            signal.signal(signum, _exit_on_signal(previous))


def _exit_on_signal(
    previous: Callable[[int, types.FrameType | None], object] | int | None,
) -> Callable[[int, types.FrameType | None], None]:
    """A handler that stops all processes, then defers to ``previous`` or exits 128+signum."""

    def handler(signum: int, frame: types.FrameType | None) -> None:
        log.warning("Received signal; stopping processes", extra={"signal": signum})
        Supervisor.stop_all()
        if callable(previous):
            previous(signum, frame)
        raise SystemExit(128 + signum)

    return handler
