"""The helm command, built from helm's Go module, and running it with no state outside a run.

Owns: building ``helm.sh/helm/v4/cmd/helm`` at the version ``versions.env`` pins with
``go install module@version`` (helm's go.mod has no replace directives, so no wrapper module is
needed; the build refuses a pinned version whose go.mod gains one), stamping the version the
way helm's Makefile does so ``helm version`` prints the pin, the per-machine binary cache, and
``Helm``: helm bound to a kubeconfig and to private cache/config/data directories, so a run
never reads or writes a user's repositories, plugins or registry logins.
Must not: write or decide the chart's content (``charts/kubeinfer``) or what a check expects
(``chart_check`` and the tests do).

The binary lands in ``${XDG_CACHE_HOME:-~/.cache}/kubeinfer/bin/helm-<version>/helm`` next to
``helm.key`` naming what built it; a binary whose key matches is reused. The directory has its
own lock, so a helm build never waits for a control-plane build or the other way round.

Command line::

    python -m e2e.harness.helm build     # build unless cached; print the path
    python -m e2e.harness.helm version   # build unless cached; print what `helm version` says
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from e2e.harness import gomodules, logfmt, toolchain, versions

log = logging.getLogger("e2e.harness.helm")  # not __name__: also run as __main__

MODULE = "helm.sh/helm/v4"
PACKAGE = f"{MODULE}/cmd/helm"
BINARY_NAME = "helm"
BUILD_PARALLELISM = "2"  # the machine is shared; `go build -p`
DEFAULT_TIMEOUT_SECONDS = 180.0


class HelmError(RuntimeError):
    """The build failed, the built helm reports another version, or a helm command failed.

    ``stderr`` holds helm's own message (empty for build errors), for tests to match on.
    """

    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


def ldflags(pinned: versions.Versions) -> str:
    """helm's Makefile stamps for a tagged, clean build: ``-w -s``, the tag and the tree state.

    ``gitCommit`` stays empty: a module zip from the proxy carries no commit.
    """
    stamp = f"{MODULE}/internal/version"
    return f"-w -s -X {stamp}.version={pinned.helm} -X {stamp}.gitTreeState=clean"


def cache_dir(pinned: versions.Versions | None = None) -> pathlib.Path:
    """``${XDG_CACHE_HOME:-~/.cache}/kubeinfer/bin/helm-<version>``."""
    pinned = pinned or versions.load()
    return toolchain.cache_dir(pinned).parent / f"helm-{pinned.helm}"


def _refuse_replaces(pinned: versions.Versions) -> None:
    """``go install module@version`` ignores nothing: it fails on replaces; say what to do."""
    go_mod = gomodules.module_dir(MODULE, pinned.helm) / "go.mod"
    edit = json.loads(toolchain._run_go(["mod", "edit", "-json", str(go_mod)], cwd=go_mod.parent))
    if edit.get("Replace"):
        raise HelmError(
            f"{MODULE}@{pinned.helm}'s go.mod has replace directives, which `go install` refuses; "
            "build it through a wrapper module like e2e/tools/argocd, or pin another version"
        )


def _build(pinned: versions.Versions, target: pathlib.Path) -> None:
    """``go install`` into a scratch GOBIN next to ``target``, then rename (atomic)."""
    _refuse_replaces(pinned)
    with tempfile.TemporaryDirectory(prefix=f".{BINARY_NAME}-", dir=target.parent) as scratch:
        toolchain._run_go(
            [
                "install",
                "-p",
                BUILD_PARALLELISM,
                "-ldflags",
                ldflags(pinned),
                f"{PACKAGE}@{pinned.helm}",
            ],
            cwd=pathlib.Path(scratch),
            env=gomodules.go_environ(GOBIN=scratch),
        )
        (pathlib.Path(scratch) / BINARY_NAME).replace(target)


def reported_version(binary: pathlib.Path) -> str:
    """What ``helm version`` prints as the version (``v4.3.2``)."""
    result = subprocess.run(
        [str(binary), "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise HelmError(f"{binary} version failed: {result.stderr}", stderr=result.stderr)
    return result.stdout.strip()


def ensure_binary(pinned: versions.Versions | None = None) -> pathlib.Path:
    """Build helm unless the cached one was built from the same module version and flags."""
    pinned = pinned or versions.load()
    directory = cache_dir(pinned)
    target = directory / BINARY_NAME
    key_file = directory / f"{BINARY_NAME}.key"
    key = f"{PACKAGE}@{pinned.helm} ldflags {ldflags(pinned)}"
    with toolchain._locked(directory):
        if toolchain._is_current(target, key_file, key):
            return target
        started = time.monotonic()
        with toolchain._progress(BINARY_NAME, 1, 1):
            _build(pinned, target)
        found = reported_version(target)
        if found != pinned.helm:
            target.unlink()
            raise HelmError(f"the built helm reports {found!r}, versions.env pins {pinned.helm}")
        key_file.write_text(key, encoding="utf-8")
        log.info(
            "Built helm",
            extra={"version": pinned.helm, "elapsed_s": round(time.monotonic() - started, 1)},
        )
    return target


@dataclasses.dataclass(frozen=True)
class Helm:
    """``helm`` with private state under ``home``; call it like the command: ``helm("lint", ...)``.

    Without a ``kubeconfig`` helm points at a file that does not exist, so a command that needs a
    cluster fails instead of reaching whatever ``$KUBECONFIG`` names.
    """

    binary: pathlib.Path
    home: pathlib.Path
    kubeconfig: pathlib.Path | None = None

    def environ(self) -> dict[str, str]:
        """The environment every call runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
        env.update(
            HELM_CACHE_HOME=str(self.home / "cache"),
            HELM_CONFIG_HOME=str(self.home / "config"),
            HELM_DATA_HOME=str(self.home / "data"),
            KUBECONFIG=str(self.kubeconfig or self.home / "no-cluster.kubeconfig"),
        )
        return env

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> subprocess.CompletedProcess[str]:
        """Run helm; raise ``HelmError`` (carrying helm's stderr) on failure unless ``check``."""
        self.home.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [str(self.binary), *args],
            input=stdin,
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        log.debug("Ran helm", extra={"args": " ".join(args), "status": result.returncode})
        if check and result.returncode != 0:
            raise HelmError(
                f"helm {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}",
                stderr=result.stderr,
            )
        return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``build`` (default) or ``version``."""
    parser = argparse.ArgumentParser(prog="python -m e2e.harness.helm", description=__doc__)
    parser.add_argument("command", nargs="?", default="build", choices=("build", "version"))
    args = parser.parse_args(argv)
    logfmt.setup()
    try:
        binary = ensure_binary()
        print(reported_version(binary) if args.command == "version" else binary)
    except (HelmError, toolchain.ToolchainError, gomodules.GoToolError) as err:
        log.error("helm step failed", extra={"error": str(err)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
