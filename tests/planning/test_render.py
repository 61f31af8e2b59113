"""Rendering children: every example renders, output is equal to the golden files and
byte-for-byte the same in interpreters with other hash seeds (``PYTHONHASHSEED``, so an order taken
from a set or a hash shows), children are GitOps-clean, invalid manifests name the field, and a
LogPolicy rendered with a file-logging InferenceService of its namespace gives it a sidecar."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubeinfer import cli
from kubeinfer.api import inference_service as isvc_api
from kubeinfer.planning import children, inference_service, render
from kubeinfer.planning.labels import APPLIED_HASH_ANNOTATION

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "manifests" / "examples").glob("*.yaml"))
GOLDEN = Path(__file__).parent / "golden"


def _render(path: Path) -> str:
    docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    return render.dump(render.render_documents(docs, source=path.name))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_renders_to_its_golden_file(example: Path) -> None:
    text = _render(example)
    golden = GOLDEN / example.name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), "run `UPDATE_GOLDEN=1 make test` and review"


def _render_in_a_fresh_interpreter(seed: str) -> bytes:
    """``kubeinfer render`` of every example in a new interpreter with ``PYTHONHASHSEED=seed``."""
    command = [sys.executable, "-m", "kubeinfer", "render", *(str(p) for p in EXAMPLES)]
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_rendering_under_other_hash_seeds_gives_identical_bytes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["render", *(str(p) for p in EXAMPLES)]) == 0
    here = capsys.readouterr().out.encode()
    assert here
    for seed in ("0", "1"):
        assert _render_in_a_fresh_interpreter(seed) == here, f"PYTHONHASHSEED={seed} differs"


def test_there_is_an_example_of_every_kind_with_children() -> None:
    kinds_seen = set()
    for example in EXAMPLES:
        docs = list(yaml.safe_load_all(example.read_text(encoding="utf-8")))
        for item in render.render_documents(docs):
            if item.children:
                kinds_seen.add(item.kind)
    assert kinds_seen == {"InferenceService", "GPUPool", "ChaosExperiment", "LogPolicy"}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_objsnever_carry_argocd_tracking_and_are_owned(example: Path) -> None:
    docs = list(yaml.safe_load_all(example.read_text(encoding="utf-8")))
    for doc in docs:
        doc.setdefault("metadata", {}).setdefault("labels", {})[children.ARGOCD_TRACKING_LABEL] = (
            "app"
        )
        doc["metadata"].setdefault("annotations", {})[children.ARGOCD_TRACKING_ANNOTATION] = "x"
    for item in render.render_documents(docs):
        for child in item.children:
            meta = child["metadata"]
            assert children.ARGOCD_TRACKING_LABEL not in meta.get("labels", {})
            assert children.ARGOCD_TRACKING_ANNOTATION not in meta.get("annotations", {})
            assert meta["ownerReferences"][0]["controller"] is True
            assert meta["annotations"][APPLIED_HASH_ANNOTATION]


def test_deployment_leaves_replicas_to_the_autoscaler() -> None:
    docs = list(
        yaml.safe_load_all((ROOT / "manifests/examples/03-inferenceservice-gpu.yaml").read_text())
    )
    (item,) = render.render_documents(docs)
    deployment = next(c for c in item.children if c["kind"] == "Deployment")
    assert "replicas" not in deployment["spec"]
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][
            "nvidia.com/gpu"
        ]
        == "2"
    )


@pytest.mark.parametrize(
    ("tier", "engine", "metric"),
    [
        ("gold", "hpa", "kubeinfer_request_latency_p95_milliseconds"),
        ("silver", "hpa", "kubeinfer_requests_per_second"),
        ("bronze", "hpa", "cpu"),
        ("gold", "keda", "prometheus"),
        ("bronze", "keda", "cpu"),
    ],
)
def test_each_tier_compiles_to_its_scaling_signal(tier: str, engine: str, metric: str) -> None:
    spec = isvc_api.InferenceServiceSpec.model_validate(
        {
            "model": {"name": "m", "version": "v1", "uri": "hf://m"},
            "resources": {"gpus": 0},
            "sla": {"tier": tier, "latencyP95Ms": 300},
            "autoscaling": {"engine": engine},
            "traffic": {"provider": "none"},
        }
    )
    owner = children.Owner("kubeinfer.io/v1alpha1", "InferenceService", "m", "ns", "u")
    scaler = next(
        c
        for c in inference_service.render(owner, spec)
        if c["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
    )
    if engine == "hpa":
        found = scaler["spec"]["metrics"][0]
        name = (
            found["resource"]["name"]
            if found["type"] == "Resource"
            else found["pods"]["metric"]["name"]
        )
    else:
        name = scaler["spec"]["triggers"][0]["type"]
    assert name == metric


def test_invalid_manifest_names_the_field() -> None:
    doc = {
        "apiVersion": "kubeinfer.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "bad"},
        "spec": {
            "model": {"name": "m", "version": "v1", "uri": "hf://m"},
            "resources": {"gpus": 99},
        },
    }
    with pytest.raises(
        render.RenderError, match=r"spec\.resources\.gpus: Input should be less than or equal to 16"
    ):
        render.render_documents([doc])


def test_non_kubeinfer_documents_are_skipped() -> None:
    assert render.render_documents([{"apiVersion": "v1", "kind": "ConfigMap"}, None]) == []


def test_priority_classes_shipped_match_the_tiers() -> None:
    from kubeinfer.planning.serving import tiers

    docs = list(yaml.safe_load_all((ROOT / "manifests/priority-classes.yaml").read_text()))
    shipped = {d["metadata"]["name"]: d["value"] for d in docs}
    assert shipped == tiers.PRIORITY_VALUES
    assert {t.priority_class for t in tiers.TIERS.values()} == set(shipped)


def test_a_log_policy_in_the_same_change_gives_a_file_logging_service_its_sidecar() -> None:
    isvc = yaml.safe_load((ROOT / "manifests/examples/02-inferenceservice-cpu.yaml").read_text())
    isvc["spec"]["logging"] = {"mode": "file"}
    outputs = [{"name": "out", "type": "stdout"}]
    policies = [
        {
            "apiVersion": "kubeinfer.io/v1alpha1",
            "kind": "LogPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"inferenceService": "tiny-embedder", "outputs": outputs},
        }
        for name, namespace in (("embedder-logs", "default"), ("elsewhere", "other"))
    ]
    rendered = render.render_documents([isvc, *policies])
    objs = next(r for r in rendered if r.kind == "InferenceService").children
    deployment = next(c for c in objs if c["kind"] == "Deployment")
    sidecars = deployment["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in sidecars] == ["kubeinfer-log-embedder-logs"], "same namespace only"
    assert any(c["kind"] == "ConfigMap" for c in objs)
