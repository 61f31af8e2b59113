"""Pinned third-party versions, read from ``e2e/tools/versions.env``.

Owns: parsing that file into a frozen ``Versions`` and the repo paths the harness is anchored on.
Must not: pin a version anywhere else. ``e2e/tools/go.mod`` is generated from these values
(``python -m e2e.harness.toolchain sync``) and the build refuses a stale one.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import re

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOLS_DIR = REPO_ROOT / "e2e" / "tools"
VERSIONS_FILE = TOOLS_DIR / "versions.env"

_SEMVER = re.compile(r"^v(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)$")


class VersionsError(ValueError):
    """``versions.env`` is missing a key or holds a value that is not ``vMAJOR.MINOR.PATCH``."""


@dataclasses.dataclass(frozen=True)
class Versions:
    """Every pinned version; field names are the lower-cased keys of ``versions.env``."""

    kubernetes: str
    etcd: str
    kwok: str
    gateway_api: str
    prometheus_operator: str
    keda: str
    prometheus_adapter: str
    argocd: str
    umoci: str
    helm: str

    @property
    def kubernetes_minor(self) -> tuple[int, int]:
        """``(1, 34)`` for ``v1.34.4``."""
        match = _SEMVER.match(self.kubernetes)
        assert match is not None  # checked in load()
        return int(match["major"]), int(match["minor"])

    @property
    def staging(self) -> str:
        """Version of the ``k8s.io/<staging>`` modules that ship with this Kubernetes: ``v0.34.4``."""
        return "v0" + self.kubernetes.removeprefix("v1")


def parse(text: str) -> Versions:
    """Parse ``KEY=value`` lines (``#`` comments and blank lines allowed) into ``Versions``."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise VersionsError(f"versions.env line {number}: expected KEY=value, got {raw!r}")
        values[key.strip().lower().removesuffix("_version")] = value.strip()
    fields = [field.name for field in dataclasses.fields(Versions)]
    missing = [name for name in fields if name not in values]
    if missing:
        raise VersionsError(
            f"versions.env misses {', '.join(n.upper() + '_VERSION' for n in missing)}"
        )
    for name in fields:
        if not _SEMVER.match(values[name]):
            raise VersionsError(
                f"versions.env: {name.upper()}_VERSION={values[name]!r} is not vX.Y.Z"
            )
    return Versions(**{name: values[name] for name in fields})


@functools.cache
def load() -> Versions:
    """The versions pinned in this checkout."""
    return parse(VERSIONS_FILE.read_text(encoding="utf-8"))
