"""A local Git repository that a test commits to and Argo CD pulls from over ``file://``.

Owns: ``git init`` of a repository in a scratch directory (branch ``main``, a fixed author, no
hooks or global configuration of the machine), writing and removing files there, committing,
``git revert``, and the ``file://`` URL Argo CD's repo-server clones.
Must not: know what the files mean (tests and ``argocd_core`` do) or talk to Argo CD.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import shutil
import subprocess

log = logging.getLogger(__name__)

BRANCH = "main"
GIT_TIMEOUT_SECONDS = 60.0
_IDENTITY = {
    "GIT_AUTHOR_NAME": "kubeinfer e2e",
    "GIT_AUTHOR_EMAIL": "e2e@kubeinfer.invalid",
    "GIT_COMMITTER_NAME": "kubeinfer e2e",
    "GIT_COMMITTER_EMAIL": "e2e@kubeinfer.invalid",
}


class GitError(RuntimeError):
    """git exited non-zero; the message carries the command and its output."""


@dataclasses.dataclass(frozen=True)
class Repository:
    """A work tree whose commits Argo CD reads through ``url``."""

    path: pathlib.Path

    @property
    def url(self) -> str:
        """The ``file://`` URL of the repository."""
        return self.path.resolve().as_uri()

    def git(self, *args: str) -> str:
        """Run git in the work tree, isolated from the machine's configuration; its stdout."""
        env = dict(
            os.environ,
            **_IDENTITY,
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_CONFIG_NOSYSTEM="1",
            GIT_TERMINAL_PROMPT="0",
        )
        result = subprocess.run(
            ["git", *args],
            cwd=self.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
        if result.returncode != 0:
            raise GitError(f"git {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result.stdout

    def write(self, relative: str, text: str) -> None:
        """Write ``text`` to ``relative`` (parents created); staged by the next ``commit``."""
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def copy_tree(self, source: pathlib.Path, relative: str) -> None:
        """Copy the directory ``source`` to ``relative``, replacing what was there."""
        target = self.path / relative
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target)

    def remove(self, relative: str) -> None:
        """Delete a file or directory from the work tree."""
        target = self.path / relative
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()

    def commit(self, message: str) -> str:
        """Stage everything and commit; the new commit's SHA."""
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        sha = self.head()
        log.info("Committed", extra={"sha": sha[:10], "message": message})
        return sha

    def revert(self, sha: str) -> str:
        """``git revert`` one commit; the SHA of the revert commit."""
        self.git("revert", "--no-edit", sha)
        reverted = self.head()
        log.info("Reverted", extra={"sha": reverted[:10], "reverted": sha[:10]})
        return reverted

    def head(self) -> str:
        """The SHA ``main`` points at."""
        return self.git("rev-parse", "HEAD").strip()


def init(path: pathlib.Path) -> Repository:
    """A new, empty repository on branch ``main`` at ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    repository = Repository(path)
    repository.git("init", "--quiet", f"--initial-branch={BRANCH}")
    return repository
