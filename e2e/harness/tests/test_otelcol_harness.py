"""The log agent build: one collector release pinned in the manifest, mixed releases refused,
the cached binary reused, and every component the renderer uses present in the binary."""

from __future__ import annotations

import pathlib
import re
import subprocess
import time

import pytest

from e2e.harness import otelcol


def test_the_manifest_pins_one_collector_release() -> None:
    assert re.fullmatch(r"v0\.\d+\.\d+", otelcol.collector_version())


def test_a_manifest_mixing_releases_is_refused(tmp_path: pathlib.Path) -> None:
    text = otelcol.MANIFEST.read_text(encoding="utf-8")
    mixed = text.replace("batchprocessor v0.", "batchprocessor v9.", 1)
    assert mixed != text
    path = tmp_path / "builder-config.yaml"
    path.write_text(mixed, encoding="utf-8")
    with pytest.raises(otelcol.OtelcolError, match="several collector releases"):
        otelcol.collector_version(path)


def test_the_built_collector_is_cached_and_has_every_component() -> None:
    binary = otelcol.ensure_collector()
    started = time.monotonic()
    assert otelcol.ensure_collector() == binary
    assert time.monotonic() - started < 5, "a cached collector is not rebuilt"
    listed = subprocess.run(
        [str(binary), "components"], capture_output=True, text=True, check=True
    ).stdout
    for name in ("kubeinfer_ratelimit", "kubeinfer_failover", "probabilistic_sampler"):
        assert f"name: {name}" in listed
