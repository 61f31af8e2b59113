"""The kubeinfer command: version, crds to a directory, render of examples and of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeinfer import __version__, cli

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


def test_crds_writes_four_files(tmp_path: Path) -> None:
    assert cli.main(["crds", "--output-dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "kubeinfer.io_chaosexperiments.yaml",
        "kubeinfer.io_gpupools.yaml",
        "kubeinfer.io_inferenceservices.yaml",
        "kubeinfer.io_logpolicies.yaml",
    ]


def test_render_prints_children(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["render", str(ROOT / "manifests/examples/02-inferenceservice-cpu.yaml")]) == 0
    out = capsys.readouterr().out
    assert "kind: Deployment" in out and "kind: HorizontalPodAutoscaler" in out


def test_render_rejects_bad_input_with_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: kubeinfer.io/v1alpha1\nkind: GPUPool\nmetadata: {name: p}\n"
        "spec: {sharing: {mode: magic}}\n"
    )
    assert cli.main(["render", str(bad)]) == 1
    assert "spec.sharing.mode" in capsys.readouterr().err
