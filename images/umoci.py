"""umoci, built from its Go module and cached, and the few umoci verbs the image build uses.

Owns: building ``github.com/opencontainers/umoci`` at ``UMOCI_VERSION`` (``e2e/tools/versions.env``)
into ``${XDG_CACHE_HOME:-~/.cache}/kubeinfer/bin/umoci-<version>/`` keyed by that version, and
running it: create a layout, add a directory as a layer, set the image configuration, unpack.
Must not: decide what goes into an image (``images.build`` does) or pin a version itself.

umoci's go.mod carries a ``replace`` directive, which ``go install module/cmd@version`` refuses;
the module is therefore built in its own (read-only, downloaded) module directory, where it is
the main module and its replace applies.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import subprocess
import tempfile
from collections.abc import Mapping
from typing import Any

from e2e.harness import gomodules, toolchain, versions

log = logging.getLogger("images.umoci")

MODULE = "github.com/opencontainers/umoci"
PACKAGE = "./cmd/umoci"


class UmociError(RuntimeError):
    """umoci could not be built or one of its commands failed; the message carries its output."""


def cache_dir(version: str) -> pathlib.Path:
    """``${XDG_CACHE_HOME:-~/.cache}/kubeinfer/bin/umoci-<version>``."""
    return toolchain.cache_dir().parent / f"umoci-{version}"


def ensure_umoci() -> pathlib.Path:
    """Build umoci if the cached binary is missing or stale; return its path."""
    version = versions.load().umoci
    directory = cache_dir(version)
    target = directory / "umoci"
    key_file = directory / "umoci.key"
    key = f"{MODULE}@{version} {PACKAGE}"
    with toolchain._locked(directory):
        if target.is_file() and key_file.is_file() and key_file.read_text() == key:
            return target
        source = gomodules.module_dir(MODULE, version)
        with (
            toolchain._progress("umoci", 1, 1),
            tempfile.TemporaryDirectory(prefix=".umoci-", dir=directory) as scratch,
        ):
            built = pathlib.Path(scratch) / "umoci"
            result = subprocess.run(
                [gomodules.go_binary(), "build", "-ldflags", "-s -w", "-o", str(built), PACKAGE],
                cwd=source,
                env=gomodules.go_environ(),
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise UmociError(f"go build {MODULE}@{version} failed:\n{result.stderr[-4000:]}")
            built.replace(target)
        key_file.write_text(key, encoding="utf-8")
    return target


@dataclasses.dataclass(frozen=True)
class Config:
    """The image configuration fields ``make image`` sets (those a Dockerfile's final stage sets)."""

    user: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Layout:
    """One OCI image layout directory holding one tagged image, driven through umoci."""

    binary: pathlib.Path
    path: pathlib.Path
    tag: str

    @property
    def ref(self) -> str:
        """``<layout>:<tag>``, umoci's image reference."""
        return f"{self.path}:{self.tag}"

    def _umoci(self, *args: str) -> str:
        result = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise UmociError(f"umoci {' '.join(args[:2])} failed:\n{result.stderr[-4000:]}")
        return result.stdout

    def create(self) -> None:
        """A fresh layout with an empty image (no layers, default configuration) at ``tag``."""
        self._umoci("init", "--layout", str(self.path))
        self._umoci("new", "--image", self.ref)

    def add_layer(self, source: pathlib.Path, target: str, *, created_by: str) -> None:
        """Add ``source`` (a directory or file, owners and modes kept) at ``target`` as one layer."""
        self._umoci(
            "insert", "--image", self.ref, "--history.created_by", created_by, str(source), target
        )

    def configure(self, config: Config, *, created: str) -> None:
        """Set user, entrypoint, command, environment and labels; ``created`` is RFC 3339."""
        args = ["config", "--image", self.ref, "--created", created, "--history.created", created]
        args += ["--config.user", config.user, "--clear=config.entrypoint", "--clear=config.cmd"]
        args += [f"--config.entrypoint={part}" for part in config.entrypoint]
        args += [f"--config.cmd={part}" for part in config.cmd]
        args += [f"--config.env={key}={value}" for key, value in config.env.items()]
        args += [f"--config.label={key}={value}" for key, value in config.labels.items()]
        self._umoci(*args)
        self._umoci("gc", "--layout", str(self.path))

    def unpack(self, bundle: pathlib.Path) -> dict[str, object]:
        """Unpack into an OCI runtime bundle; return its runtime configuration (config.json)."""
        self._umoci("unpack", "--image", self.ref, str(bundle))
        spec: dict[str, object] = json.loads((bundle / "config.json").read_text(encoding="utf-8"))
        return spec

    def manifest(self) -> dict[str, Any]:
        """The tagged image's manifest (the layout holds one image)."""
        index = json.loads((self.path / "index.json").read_text(encoding="utf-8"))
        (entry,) = [m for m in index["manifests"] if _tag(m) == self.tag]
        manifest: dict[str, Any] = json.loads(self._blob(entry["digest"]).read_text())
        return manifest

    def image_config(self) -> dict[str, Any]:
        """The image configuration blob: ``config`` (user, entrypoint, ...), ``created``, ..."""
        digest = self.manifest()["config"]["digest"]
        config: dict[str, Any] = json.loads(self._blob(digest).read_text(encoding="utf-8"))
        return config

    def blobs(self) -> dict[str, int]:
        """Number of layers, their compressed size and the whole layout's size, in bytes."""
        layers = self.manifest()["layers"]
        total = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        compressed = sum(int(layer["size"]) for layer in layers)
        return {"layers": len(layers), "compressed_bytes": compressed, "layout_bytes": total}

    def _blob(self, digest: str) -> pathlib.Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.path / "blobs" / algorithm / hexdigest


def _tag(descriptor: dict[str, Any]) -> str | None:
    annotations: dict[str, str] = descriptor.get("annotations", {})
    return annotations.get("org.opencontainers.image.ref.name")
