"""The kubeinfer command: version, crds to a directory, argocd-health write and check, render of
examples and of bad input."""

from __future__ import annotations

import shutil
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


def test_argocd_health_writes_the_scripts_then_finds_them_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(ROOT / "manifests/argocd/src", tmp_path / "src")
    assert cli.main(["argocd-health", "check", "--dir", str(tmp_path)]) == 1
    assert "stale:" in capsys.readouterr().err
    assert cli.main(["argocd-health", "write", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "health" / "kubeinfer.io_InferenceService.lua").is_file()
    assert cli.main(["argocd-health", "check", "--dir", str(tmp_path)]) == 0


def test_argocd_health_names_a_missing_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["argocd-health", "write", "--dir", str(tmp_path)]) == 1
    assert f"missing Lua source {tmp_path / 'src' / 'common.lua'}" in capsys.readouterr().err
