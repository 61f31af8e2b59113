"""The chart's PrometheusRule, evaluated by Prometheus' own rule tester (``promtool test rules``)
over synthetic series shaped like the operator's: the operator-down alert fires when its target
is down or gone, the reconcile-error alert only after errors persist, the rollback alert on a
counted ``RolledBack`` Event and not on other condition Events, and the GPU alerts at the
configured OOM risk level and exhaustion horizon.

Needs the pinned helm and promtool (Debian's ``prometheus`` package), which ``make tools``
installs before ``make e2e``; fails, never skips, without them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.harness import helm

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubeinfer"
JOB = 'job="kubeinfer-operator"'
OPERATOR = f'{JOB}, namespace="kubeinfer-system"'


def _helm() -> Path:
    return helm.cache_dir() / helm.BINARY_NAME


PROMTOOL = shutil.which("promtool")


@pytest.fixture(scope="module", autouse=True)
def _tools_present() -> None:
    if not _helm().is_file():
        pytest.fail("helm is not built; run `make tools`")
    if PROMTOOL is None:
        pytest.fail("promtool is missing; run `make tools`")


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PrometheusRule's groups as a Prometheus rule file."""
    work = tmp_path_factory.mktemp("alerts")
    done = subprocess.run(
        [
            str(_helm()),
            "template",
            "kubeinfer",
            str(CHART),
            "--namespace",
            "kubeinfer-system",
            "--set",
            "monitoring.prometheusRule.enabled=true",
            "--show-only",
            "templates/prometheusrule.yaml",
        ],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(work)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rule = yaml.safe_load(done.stdout)
    path = work / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def _promtool(rules_file: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    test_file = rules_file.parent / "test.yaml"
    test_file.write_text(
        yaml.safe_dump(
            {"rule_files": [rules_file.name], "evaluation_interval": "1m", "tests": tests}
        )
    )
    return subprocess.run(
        [str(PROMTOOL), "test", "rules", test_file.name],
        cwd=rules_file.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_rules_are_valid_promql(rules_file: Path) -> None:
    done = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _alert(
    name: str, at: str, labels: dict[str, str] | None = None, **annotations: str
) -> dict[str, Any]:
    """Expect alert ``name`` at ``at``: firing with these labels and annotations, or not at all."""
    expected = [] if labels is None else [{"exp_labels": labels, "exp_annotations": annotations}]
    return {"eval_time": at, "alertname": name, "exp_alerts": expected}


def test_the_alerts_fire_on_the_series_the_operator_exports(rules_file: Path) -> None:
    operator_series = [
        {"series": f"up{{{OPERATOR}}}", "values": "1 1 0x10"},
        {
            "series": f'kubeinfer_reconcile_total{{{OPERATOR}, kind="GPUPool", result="error"}}',
            "values": "0+5x30",
        },
        {
            "series": f'kubeinfer_reconcile_total{{{OPERATOR}, kind="GPUPool", result="ok"}}',
            "values": "0+5x30",
        },
    ]
    events = f'kubeinfer_condition_events_total{{{JOB}, kind="InferenceService", namespace="models"'
    gpu = f'{JOB}, namespace="models", pool="a100", node="n1"'
    service_and_gpu_series = [
        {
            "series": f'{events}, type="RolledBack", status="True", reason="AnalysisFailed"}}',
            "values": "0 0 1 1 1",
        },
        {
            "series": f'{events}, type="Ready", status="False", reason="Progressing"}}',
            "values": "0 1 2 3 4",
        },
        {"series": f'kubeinfer_gpu_oom_risk{{{gpu}, gpu="0"}}', "values": "1 2 3 3 3 3 3 3 3 3"},
        {
            "series": f'kubeinfer_gpu_seconds_to_exhaustion{{{gpu}, gpu="1"}}',
            "values": "3000 2000 900 500 400 300 200",
        },
    ]
    gpu_labels = {"namespace": "models", "pool": "a100", "node": "n1"}
    tests = [
        {
            "interval": "1m",
            "input_series": operator_series,
            "alert_rule_test": [
                _alert("KubeinferOperatorDown", "4m"),
                _alert(
                    "KubeinferOperatorDown",
                    "9m",
                    {"severity": "critical"},
                    summary="The kubeinfer operator is down or not scraped.",
                    description=(
                        "No kubeinfer operator in kubeinfer-system has answered a scrape for 5"
                        " minutes: no InferenceService is being reconciled, rolled out or rolled"
                        " back."
                    ),
                ),
                _alert("KubeinferReconcileErrors", "10m"),
                _alert(
                    "KubeinferReconcileErrors",
                    "25m",
                    {"severity": "warning", "kind": "GPUPool"},
                    summary="kubeinfer reconciles of GPUPool keep failing.",
                    description=(
                        "Reconciles of kind GPUPool have ended in an error for 15 minutes"
                        " (0.08/s). The operator's log and the objects' Events name the cause."
                    ),
                ),
            ],
        },
        {
            "interval": "1m",
            "input_series": service_and_gpu_series,
            "alert_rule_test": [
                _alert("KubeinferRolledBack", "1m"),
                _alert(
                    "KubeinferRolledBack",
                    "3m",
                    {"severity": "warning", "namespace": "models", "reason": "AnalysisFailed"},
                    summary="An InferenceService in models rolled back a new version.",
                    description=(
                        "1 rollout(s) in namespace models rolled back (AnalysisFailed) within 30m."
                        " The services keep serving their previous version; each one's RolledBack"
                        " condition and Events name the version and the failed check."
                    ),
                ),
                _alert("KubeinferGPUOOMRisk", "4m"),
                _alert(
                    "KubeinferGPUOOMRisk",
                    "8m",
                    {"severity": "warning", "gpu": "0", **gpu_labels},
                    summary="GPU 0 on n1 risks running out of memory.",
                    description=(
                        "GPUPool models/a100 predicts OOM risk level 3 (3 High, 4 Critical) for"
                        " GPU 0 on node n1."
                    ),
                ),
                _alert("KubeinferGPUMemoryExhaustionSoon", "3m"),
                _alert(
                    "KubeinferGPUMemoryExhaustionSoon",
                    "5m",
                    {"severity": "critical", "gpu": "1", **gpu_labels},
                    summary="GPU 1 on n1 reaches its memory budget soon.",
                    description=(
                        "At the current growth GPU 1 on node n1 (GPUPool models/a100) reaches its"
                        " workload's memory budget in 5m 0s."
                    ),
                ),
            ],
        },
    ]
    done = _promtool(rules_file, tests)
    assert done.returncode == 0, done.stdout + done.stderr
