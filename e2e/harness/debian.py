"""Commands the e2e suite takes from Debian's packages (Prometheus, Redis), installed on first use.

Owns: finding a command on PATH and, when it is missing and the harness runs as root on a
machine with apt-get, installing its package non-interactively.
Must not: start what it installs (``prometheus`` and ``argocd_core`` do).
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import subprocess

log = logging.getLogger(__name__)

INSTALL_TIMEOUT_SECONDS = 900.0


class DebianError(RuntimeError):
    """The command is missing and its package cannot be installed here."""


def command(name: str, *, package: str, hint: str = "") -> pathlib.Path:
    """Path of ``name``; installs Debian's ``package`` first when missing and root."""
    found = shutil.which(name)
    if found:
        return pathlib.Path(found)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise DebianError(
            f"{name} is not installed; run `apt-get install -y {package}` as root{hint}, then rerun"
        )
    log.info("Installing Debian package", extra={"package": package})
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", package],
    ):
        done = subprocess.run(
            argv,
            env=env,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise DebianError(f"{' '.join(argv)} failed: {done.stderr[-2000:]}")
    found = shutil.which(name)
    if not found:
        raise DebianError(f"apt-get installed {package} but no {name} is on PATH")
    return pathlib.Path(found)
