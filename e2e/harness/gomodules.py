"""Locate a pinned Go module's files on disk.

Owns: ``go mod download -json`` and the ``go`` environment the harness runs it with.
Must not: build anything (``toolchain`` does) or choose versions (``versions`` does).
The module cache is Go's own (``GOMODCACHE``); files there are read-only and shared per machine.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import pathlib
import shutil
import subprocess
import tempfile

log = logging.getLogger(__name__)


class GoToolError(RuntimeError):
    """The ``go`` command is missing or a ``go`` invocation failed; the message carries its stderr."""


def go_binary() -> str:
    """Path of the ``go`` command, or ``GoToolError`` naming what to install."""
    found = shutil.which("go")
    if found is None:
        raise GoToolError(
            "the go command is not on PATH; install Go >= 1.24 to build the e2e tools"
        )
    return found


def go_environ(**extra: str) -> dict[str, str]:
    """Environment for ``go``: static, trimmed builds; the default build and module caches."""
    env = dict(os.environ)
    env.update({"CGO_ENABLED": "0", "GOFLAGS": "-trimpath", "GO111MODULE": "on"})
    env.update(extra)
    return env


@functools.cache
def module_dir(path: str, version: str) -> pathlib.Path:
    """Directory holding ``path@version`` extracted from its module zip (downloaded if needed)."""
    with tempfile.TemporaryDirectory(prefix="kubeinfer-gomod-") as empty:
        # An empty working directory: no surrounding go.mod gets consulted or edited.
        result = subprocess.run(
            [go_binary(), "mod", "download", "-json", f"{path}@{version}"],
            cwd=empty,
            env=go_environ(),
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise GoToolError(
            f"go mod download {path}@{version} failed: {result.stdout}{result.stderr}"
        )
    info = json.loads(result.stdout)
    if "Error" in info:
        raise GoToolError(f"go mod download {path}@{version} failed: {info['Error']}")
    directory = pathlib.Path(info["Dir"])
    log.debug(
        "Located Go module", extra={"module": path, "version": version, "dir": str(directory)}
    )
    return directory
