"""Build and cache the log agent: an OpenTelemetry Collector from ``collector/builder-config.yaml``.

Owns: reading the collector version out of the builder manifest (the manifest is the one place
that pins the collector's components; every ``gomod`` line carries the same version), installing
the collector's builder (``go.opentelemetry.io/collector/cmd/builder``) at that version, running
it, and caching the binary per machine keyed by the manifest's content.
Must not: start a collector (tests do) or pin a version anywhere else.

Binaries land in ``${XDG_CACHE_HOME:-~/.cache}/kubeinfer/bin/otelcol-<version>/`` next to a
``.key`` file holding the manifest digest; a binary whose key matches is reused.

Command line::

    python -m e2e.harness.otelcol build   # build if missing or stale, print the binary's path
    python -m e2e.harness.otelcol check   # fail if the manifest's versions disagree
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import yaml

from e2e.harness import gomodules, logfmt, toolchain, versions

log = logging.getLogger("e2e.harness.otelcol")  # not __name__: also run as __main__

OTELCOL_DIR = versions.REPO_ROOT / "collector"
MANIFEST = OTELCOL_DIR / "builder-config.yaml"
BUILDER_MODULE = "go.opentelemetry.io/collector/cmd/builder"
BINARY_NAME = "otelcol-kubeinfer"
_COMPONENT_KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")
_GOMOD = re.compile(r"^(?P<module>\S+) (?P<version>v\d+\.\d+\.\d+)$")


class OtelcolError(RuntimeError):
    """The builder manifest is inconsistent or the collector build failed."""


def _components(manifest: dict[str, object]) -> list[tuple[str, str, str | None]]:
    """``(module, version, local path or None)`` of every component the manifest lists."""
    found: list[tuple[str, str, str | None]] = []
    for kind in _COMPONENT_KINDS:
        for entry in manifest.get(kind) or []:  # type: ignore[attr-defined]
            match = _GOMOD.match(str(entry["gomod"]))
            if match is None:
                raise OtelcolError(f"{kind} entry {entry['gomod']!r} is not 'module vX.Y.Z'")
            found.append((match["module"], match["version"], entry.get("path")))
    return found


def collector_version(manifest_path: pathlib.Path = MANIFEST) -> str:
    """The one collector release every upstream component in the manifest is pinned at."""
    manifest = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    upstream = {version for _, version, path in _components(manifest) if path is None}
    if len(upstream) != 1:
        raise OtelcolError(
            f"{manifest_path.name} pins several collector releases {sorted(upstream)}; use one"
        )
    (version,) = upstream
    return version


def manifest_digest() -> str:
    """Changes whenever the manifest or a local component module's source changes."""
    digest = hashlib.sha256(MANIFEST.read_bytes())
    for source in sorted(OTELCOL_DIR.glob("*/**/*")):
        built = source.suffix in {".go", ".mod", ".sum"} and not source.name.endswith("_test.go")
        if source.is_file() and built:
            digest.update(str(source.relative_to(OTELCOL_DIR)).encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def cache_dir(version: str | None = None) -> pathlib.Path:
    """``${XDG_CACHE_HOME:-~/.cache}/kubeinfer/bin/otelcol-<version>``."""
    version = version or collector_version()
    return toolchain.cache_dir().parent / f"otelcol-{version}"


def _run(argv: Sequence[str], *, cwd: pathlib.Path, env: dict[str, str]) -> None:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        raise OtelcolError(f"{' '.join(argv[:3])} failed:\n{output}")


def _build(version: str, target: pathlib.Path) -> None:
    """Install the builder, generate the collector's sources and compile them into ``target``."""
    with tempfile.TemporaryDirectory(prefix=".otelcol-", dir=target.parent) as scratch:
        work = pathlib.Path(scratch)
        env = gomodules.go_environ(GOBIN=str(work))
        _run([gomodules.go_binary(), "install", f"{BUILDER_MODULE}@{version}"], cwd=work, env=env)
        manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
        manifest["dist"]["output_path"] = str(work / "build")
        for kind in _COMPONENT_KINDS:  # local components: paths are relative to the manifest
            for entry in manifest.get(kind) or []:
                if entry.get("path"):
                    entry["path"] = str((OTELCOL_DIR / entry["path"]).resolve())
        config = work / "builder-config.yaml"
        config.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
        _run(
            [str(work / "builder"), "--config", str(config), "--ldflags", "-s -w"],
            cwd=work,
            env=env,
        )
        (work / "build" / BINARY_NAME).replace(target)


def ensure_collector() -> pathlib.Path:
    """Build the collector if the cached one is missing or stale; return its path."""
    version = collector_version()
    directory = cache_dir(version)
    target = directory / BINARY_NAME
    key_file = directory / f"{BINARY_NAME}.key"
    key = f"{BUILDER_MODULE}@{version} manifest {manifest_digest()}"
    with toolchain._locked(directory):
        if target.is_file() and key_file.is_file() and key_file.read_text() == key:
            return target
        started = time.monotonic()
        with toolchain._progress(BINARY_NAME, 1, 1):
            _build(version, target)
        key_file.write_text(key, encoding="utf-8")
        log.info(
            "Built the log agent",
            extra={"version": version, "elapsed_s": round(time.monotonic() - started, 1)},
        )
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``build`` (default) or ``check``."""
    parser = argparse.ArgumentParser(prog="python -m e2e.harness.otelcol", description=__doc__)
    parser.add_argument("command", nargs="?", default="build", choices=("build", "check"))
    args = parser.parse_args(argv)
    logfmt.setup()
    try:
        if args.command == "check":
            print(collector_version())
        else:
            print(ensure_collector())
    except (OtelcolError, gomodules.GoToolError) as err:
        log.error("Log agent step failed", extra={"error": str(err)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
