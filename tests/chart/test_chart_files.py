"""The chart's files without running helm: its CRD templates are fresh (the same generator as
``crds/``) and render back to exactly those CRDs, no template uses a function whose output
changes between renders, the copies it carries of ``manifests/`` files are current, and
``values.yaml`` and ``values.schema.json`` describe the same keys, every object closed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeinfer.api import crds, kinds

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubeinfer"

#: Template functions whose result differs from one render to the next, or depends on the
#: cluster: each keeps an Argo CD application OutOfSync forever.
UNSTABLE = (
    "lookup",
    "now",
    "date",
    "dateModify",
    "unixEpoch",
    "randAlphaNum",
    "randAlpha",
    "randNumeric",
    "randAscii",
    "randBytes",
    "randInt",
    "uuidv4",
    "genCA",
    "genCAWithKey",
    "genPrivateKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
    "derivePassword",
    "shuffle",
)
_ACTION = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`')


def _templates() -> list[Path]:
    return sorted(p for p in (CHART / "templates").rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def chart_templates() -> dict[str, str]:
    """The generator's chart templates, rendered once (building the schemas takes a while)."""
    return crds.render_chart()


@pytest.fixture(scope="module")
def crd_files() -> dict[str, str]:
    """The generator's crds/ files, rendered once."""
    return crds.render_all()


def test_chart_crd_templates_match_the_models(chart_templates: dict[str, str]) -> None:
    expected = chart_templates
    on_disk = {
        str(p.relative_to(CHART)): p.read_text(encoding="utf-8")
        for p in (CHART / "templates" / "crds").glob("*.yaml")
    }
    assert on_disk == expected, "charts/kubeinfer/templates/crds/ is stale: run `make crds`"


def _as_helm_renders(template: str, *, install: bool, keep: bool) -> str:
    """What helm makes of a generated CRD template: its three actions, and escaped braces."""
    if not install:
        return ""
    text = template.replace('{{ "{{" }}', "\0open").replace('{{ "}}" }}', "\0close")
    keep_block = re.compile(
        r"\n\s*\{\{- if \.Values\.crds\.keep \}\}(\n.*?)\n\s*\{\{- else \}\}(\n.*?)"
        r"\n\s*\{\{- end \}\}",
        re.DOTALL,
    )
    text = keep_block.sub(lambda m: m.group(1) if keep else m.group(2), text)
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("{{-")]
    assert not any("{{" in line or "}}" in line for line in lines), "unexpected template action"
    return "\n".join(lines).replace("\0open", "{{").replace("\0close", "}}")


@pytest.mark.parametrize("keep", [True, False], ids=["crds.keep", "no crds.keep"])
@pytest.mark.parametrize("kind", kinds.ALL, ids=lambda k: k.kind)
def test_chart_crd_template_renders_the_crd_of_crds_dir(
    kind: kinds.Kind, keep: bool, chart_templates: dict[str, str], crd_files: dict[str, str]
) -> None:
    template = chart_templates[f"templates/crds/{crds.file_name(kind)}"]
    rendered = yaml.safe_load(_as_helm_renders(template, install=True, keep=keep))
    annotations = rendered["metadata"].pop("annotations")
    assert rendered == yaml.safe_load(crd_files[crds.file_name(kind)])
    expected = {
        "argocd.argoproj.io/sync-options": "ServerSideApply=true",
        "argocd.argoproj.io/sync-wave": "-1",
    }
    if keep:
        expected["helm.sh/resource-policy"] = "keep"
        expected["argocd.argoproj.io/sync-options"] += ",Prune=false,Delete=false"
    assert annotations == expected
    assert _as_helm_renders(template, install=False, keep=keep) == ""


def test_descriptions_with_braces_are_escaped_for_helm(chart_templates: dict[str, str]) -> None:
    template = chart_templates["templates/crds/kubeinfer.io_inferenceservices.yaml"]
    assert '{{ "{{" }} version {{ "}}" }}' in template


@pytest.mark.parametrize("path", _templates(), ids=lambda p: str(p.relative_to(CHART)))
def test_no_template_uses_an_unstable_function(path: Path) -> None:
    used: set[str] = set()
    for action in _ACTION.findall(path.read_text(encoding="utf-8")):
        if action.startswith("{{/*") or action.startswith("{{- /*"):
            continue
        used |= set(_WORD.findall(_STRING.sub("", action)))
    assert not used & set(UNSTABLE), f"{path.name} uses {sorted(used & set(UNSTABLE))}"


def test_the_unstable_function_check_sees_a_lookup() -> None:
    action = '{{ (lookup "v1" "Secret" .Release.Namespace "x").data }}'
    assert "lookup" in set(_WORD.findall(_STRING.sub("", _ACTION.findall(action)[0])))


def test_argocd_health_scripts_are_copies_of_manifests() -> None:
    cm = yaml.safe_load((ROOT / "manifests" / "argocd" / "argocd-cm.yaml").read_text())
    prefix = "resource.customizations.health."
    copies = {
        prefix + p.stem: p.read_text(encoding="utf-8")
        for p in (CHART / "files" / "argocd").glob("*.lua")
    }
    assert copies == cm["data"], "charts/kubeinfer/files/argocd/ is stale: run `make crds`"


def test_adapter_rules_are_a_copy_of_manifests() -> None:
    source = ROOT / "manifests" / "monitoring" / "adapter-rules.yaml"
    copy = CHART / "files" / "monitoring" / "adapter-rules.yaml"
    assert copy.read_text() == source.read_text(), "files/monitoring/ is stale: run `make crds`"


#: Values holding a Kubernetes object: their schema is the object's, not a list of defaults.
KUBERNETES_OBJECTS = ("resources", "affinity", "securityContext", "podSecurityContext", "Probe")


def _documented_keys(schema: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of the chart's own settings: schema properties down to Kubernetes objects."""
    out: set[str] = set()
    for key, child in schema.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        out.add(path)
        if "$ref" in child or key.endswith(KUBERNETES_OBJECTS):
            continue
        out |= _documented_keys(child, defs, path)
    return out


def _value_keys(values: dict[str, Any], schema_keys: set[str], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, child in values.items():
        path = f"{prefix}.{key}" if prefix else key
        out.add(path)
        if isinstance(child, dict) and any(k.startswith(path + ".") for k in schema_keys):
            out |= _value_keys(child, schema_keys, path)
    return out


def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return loaded


def test_values_yaml_and_the_schema_name_the_same_settings() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = _schema()
    in_schema = _documented_keys(schema, schema["definitions"]) - {"global"}
    assert _value_keys(values, in_schema) == in_schema


def _line_paths(lines: list[str]) -> list[tuple[int, str]]:
    """(line number, dotted path) of every mapping key line of a block-style YAML file."""
    stack: list[tuple[int, str]] = []
    out: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w.-]*):(\s|$)", line)
        if not match:
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        out.append((number, ".".join(k for _, k in stack)))
    return out


def test_every_setting_in_values_yaml_is_commented() -> None:
    schema = _schema()
    settings = _documented_keys(schema, schema["definitions"])
    lines = (CHART / "values.yaml").read_text().splitlines()
    uncommented = [
        path
        for number, path in _line_paths(lines)
        if path in settings
        and not any(s.startswith(path + ".") for s in settings)
        and not lines[number - 1].strip().startswith("#")
    ]
    assert uncommented == []


def _objects(node: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if "properties" in node:
            out.append((path, node))
        for key, child in node.items():
            out.extend(_objects(child, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            out.extend(_objects(child, f"{path}[{i}]"))
    return out


def test_every_schema_object_refuses_unknown_keys() -> None:
    schema = _schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    open_objects = [
        p for p, node in _objects(schema) if node.get("additionalProperties") is not False
    ]
    assert open_objects == []


def test_the_chart_readme_lists_every_setting() -> None:
    schema = _schema()
    readme = (CHART / "README.md").read_text()
    settings = _documented_keys(schema, schema["definitions"]) - {"global"}
    leaves = {p for p in settings if not any(s.startswith(p + ".") for s in settings)}
    missing = sorted(path for path in leaves if f"| `{path}` |" not in readme)
    assert missing == [], "add them to the Values table of charts/kubeinfer/README.md"
