"""``kubeinfer crds --chart-dir``: one run writes crds/ and the chart's CRD templates, and a
directory that is not a chart is refused with a message rather than filled."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeinfer import cli
from kubeinfer.api import crds


def test_one_run_writes_crds_and_the_chart_templates(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: kubeinfer\nversion: 0.1.0\n")
    out = tmp_path / "crds"
    assert cli.main(["crds", "--output-dir", str(out), "--chart-dir", str(chart)]) == 0
    assert {p.name: p.read_text() for p in out.iterdir()} == crds.render_all()
    written = {str(p.relative_to(chart)): p.read_text() for p in chart.rglob("*.yaml")}
    assert written.pop("Chart.yaml")
    assert written == crds.render_chart()


def test_a_directory_without_chart_yaml_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["crds", "--chart-dir", str(tmp_path)]) == 1
    assert "is not a Helm chart (no Chart.yaml)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
