"""Run the harness-built kubectl against one kubeconfig.

Owns: argv, environment and error reporting for kubectl calls, and server-side apply of files,
directories, kustomizations or YAML text. Must not: decide what to apply.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import subprocess

log = logging.getLogger(__name__)

FIELD_MANAGER = "kubeinfer-e2e"


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message carries the command and its stderr."""


@dataclasses.dataclass(frozen=True)
class Kubectl:
    """``kubectl`` bound to a kubeconfig. Call it like the command: ``kubectl("get", "nodes")``."""

    binary: pathlib.Path
    kubeconfig: pathlib.Path

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl; raise ``KubectlError`` on failure unless ``check`` is false."""
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        argv = [str(self.binary), *args]
        result = subprocess.run(
            argv,
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        log.debug("Ran kubectl", extra={"args": " ".join(args), "status": result.returncode})
        if check and result.returncode != 0:
            raise KubectlError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}"
            )
        return result

    def apply(self, *paths: pathlib.Path, text: str | None = None) -> str:
        """Server-side apply files, directories of YAML, kustomization directories, or ``text``."""
        args = ["apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}"]
        for path in paths:
            is_kustomization = path.is_dir() and (path / "kustomization.yaml").is_file()
            args += ["-k" if is_kustomization else "-f", str(path)]
        if text is not None:
            args += ["-f", "-"]
        if len(args) == 4:
            raise ValueError("apply needs at least one path or text")
        return self(*args, stdin=text).stdout

    def kustomize(self, directory: pathlib.Path) -> str:
        """Render a kustomization with kubectl's built-in kustomize."""
        return self("kustomize", str(directory)).stdout
