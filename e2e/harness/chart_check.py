"""``make chart``: lint and render ``charts/kubeinfer`` for every CI values file, and check that
values files the schema must refuse are refused with a message naming the offending key.

Owns: which values files are linted (``charts/kubeinfer/ci/*-values.yaml``), which must be refused
(``e2e/chart-values/bad/*.yaml``, each naming in an ``# expect:`` line the text helm's error
must contain), the helm arguments of those checks (``--strict``, the Kubernetes version of the
e2e control plane) and a render-twice determinism check.
Must not: write the chart or its values (``charts/kubeinfer`` has its own owner) or talk to a
cluster (the e2e tests apply what this renders).

Bad values files live outside ``ci/``: ``helm lint`` over ``ci/`` must pass, these must fail.

Command line::

    python -m e2e.harness.chart_check   # every check; exit 1 naming each failure
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from e2e.harness import gomodules, helm, logfmt, toolchain, versions

log = logging.getLogger("e2e.harness.chart_check")  # not __name__: also run as __main__

CHART_DIR = versions.REPO_ROOT / "charts" / "kubeinfer"
BAD_VALUES_DIR = versions.REPO_ROOT / "e2e" / "chart-values" / "bad"
DEFAULT_RELEASE = "kubeinfer"
DEFAULT_NAMESPACE = "kubeinfer-system"
_EXPECT_PREFIX = "# expect:"


class ChartCheckError(RuntimeError):
    """A check failed; the message says which file and carries helm's own output."""


@dataclasses.dataclass(frozen=True)
class BadValues:
    """A values file the chart must refuse, and the text helm's refusal must contain."""

    path: pathlib.Path
    expect: str


def ci_values_files(chart: pathlib.Path = CHART_DIR) -> list[pathlib.Path]:
    """``ci/*-values.yaml`` of the chart, sorted; refuses a chart with none."""
    found = sorted((chart / "ci").glob("*-values.yaml"))
    if not found:
        raise ChartCheckError(f"{chart / 'ci'} holds no *-values.yaml to lint")
    return found


def bad_values_files(directory: pathlib.Path = BAD_VALUES_DIR) -> list[BadValues]:
    """Every ``*.yaml`` in ``directory`` with its ``# expect:`` text; refuses a file without one."""
    found = []
    for path in sorted(directory.glob("*.yaml")):
        expects = [
            line.removeprefix(_EXPECT_PREFIX).strip()
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith(_EXPECT_PREFIX)
        ]
        if len(expects) != 1 or not expects[0]:
            raise ChartCheckError(f"{path} needs exactly one non-empty '{_EXPECT_PREFIX}' line")
        found.append(BadValues(path=path, expect=expects[0]))
    if not found:
        raise ChartCheckError(f"{directory} holds no values file the schema must refuse")
    return found


def _kube_version() -> str:
    """Render for the Kubernetes release the e2e control plane runs."""
    return versions.load().kubernetes


def lint(helm_: helm.Helm, *, values: pathlib.Path, chart: pathlib.Path = CHART_DIR) -> str:
    """``helm lint --strict`` with one values file; its output, or ``ChartCheckError``."""
    result = helm_(
        "lint",
        "--strict",
        "--kube-version",
        _kube_version(),
        str(chart),
        "-f",
        str(values),
        check=False,
    )
    if result.returncode != 0:
        raise ChartCheckError(
            f"helm lint --strict -f {values.name} failed:\n{result.stdout}{result.stderr}"
        )
    return result.stdout


def template(
    helm_: helm.Helm,
    *,
    chart: pathlib.Path = CHART_DIR,
    values: Sequence[pathlib.Path] = (),
    set_values: Sequence[str] = (),
    release: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart as ``release`` in ``namespace``."""
    args = ["template", release, str(chart), "--namespace", namespace]
    args += ["--kube-version", _kube_version()]
    for path in values:
        args += ["-f", str(path)]
    for assignment in set_values:
        args += ["--set", assignment]
    return helm_(*args, check=check)


def objects(rendered: str) -> list[dict[str, Any]]:
    """The objects of a rendered chart (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(rendered) if isinstance(doc, dict)]


def check_renders(
    helm_: helm.Helm, *, values: pathlib.Path, chart: pathlib.Path = CHART_DIR
) -> list[dict[str, Any]]:
    """Render twice with ``values``: identical bytes, every object named; return the objects."""
    first = template(helm_, chart=chart, values=[values]).stdout
    second = template(helm_, chart=chart, values=[values]).stdout
    if first != second:
        raise ChartCheckError(f"two renders with {values.name} differ: the output is not stable")
    rendered = objects(first)
    if not rendered:
        raise ChartCheckError(f"helm template -f {values.name} rendered no objects")
    unnamed = [doc.get("kind") for doc in rendered if not doc.get("metadata", {}).get("name")]
    if unnamed:
        raise ChartCheckError(f"helm template -f {values.name} rendered unnamed {unnamed}")
    return rendered


def check_refused(helm_: helm.Helm, bad: BadValues, *, chart: pathlib.Path = CHART_DIR) -> str:
    """Template with a bad values file: it must fail naming ``bad.expect``; return the message."""
    result = template(helm_, chart=chart, values=[bad.path], check=False)
    if result.returncode == 0:
        raise ChartCheckError(f"{bad.path.name} was accepted; the schema must refuse it")
    if bad.expect not in result.stderr:
        raise ChartCheckError(
            f"{bad.path.name} was refused, but the message does not name {bad.expect!r}:\n"
            f"{result.stderr}"
        )
    return result.stderr.strip()


def run_all(helm_: helm.Helm, *, chart: pathlib.Path = CHART_DIR) -> list[str]:
    """Every check; the failures (empty when all passed). Logs each passed check."""
    steps: list[tuple[str, Callable[[], object]]] = []
    for values in ci_values_files(chart):
        steps.append(
            (f"lint {values.name}", functools.partial(lint, helm_, values=values, chart=chart))
        )
        steps.append(
            (
                f"template {values.name}",
                functools.partial(check_renders, helm_, values=values, chart=chart),
            )
        )
    for bad in bad_values_files():
        steps.append(
            (f"refuse {bad.path.name}", functools.partial(check_refused, helm_, bad, chart=chart))
        )
    failures: list[str] = []
    for name, step in steps:
        try:
            step()
        except (ChartCheckError, helm.HelmError) as err:
            failures.append(f"{name}: {err}")
            log.error("Chart check failed", extra={"check": name})
        else:
            log.info("Chart check passed", extra={"check": name})
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: run every check; print each failure; exit 1 if any."""
    parser = argparse.ArgumentParser(prog="python -m e2e.harness.chart_check", description=__doc__)
    parser.add_argument("--chart", type=pathlib.Path, default=CHART_DIR)
    args = parser.parse_args(argv)
    logfmt.setup()
    try:
        binary = helm.ensure_binary()
        with tempfile.TemporaryDirectory(prefix="kubeinfer-helm-") as home:
            failures = run_all(helm.Helm(binary=binary, home=pathlib.Path(home)), chart=args.chart)
    except (
        ChartCheckError,
        helm.HelmError,
        toolchain.ToolchainError,
        gomodules.GoToolError,
    ) as err:
        log.error("Chart check could not run", extra={"error": str(err)})
        return 1
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
