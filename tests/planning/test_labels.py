"""Every ``kubeinfer.io`` key is named once, in ``planning.labels``: the operator's code holds no
other string that spells one, so a key cannot drift between the writer and a reader."""

from __future__ import annotations

import ast
import pathlib
import re

import kubeinfer
from kubeinfer.planning import labels
from kubeinfer.planning.children import Owner

SOURCE = pathlib.Path(kubeinfer.__file__).parent
KEY = re.compile(r"kubeinfer\.io/|kubeinfer_io_")
#: Values that are not keys: the Events' reportingController.
NOT_KEYS = {("kube/events.py", "kubeinfer.io/operator")}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are docstrings (module, class, function, attribute)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                found.add(id(stmt.value))
    return found


def _spelt_keys() -> list[str]:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        rel = path.relative_to(SOURCE).as_posix()
        if rel == "planning/labels.py":
            continue
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
                and KEY.search(node.value)
                and (rel, node.value) not in NOT_KEYS
            ):
                found.append(f"{rel}:{node.lineno}: {node.value!r}")
    return found


def test_no_key_is_spelt_outside_labels() -> None:
    assert _spelt_keys() == []


def test_owner_label_is_the_kind_in_lower_case() -> None:
    owner = Owner(
        api_version="kubeinfer.io/v1alpha1", kind="LogPolicy", name="a", namespace="n", uid="u"
    )
    assert owner.label_key == "kubeinfer.io/logpolicy"
    assert labels.INFERENCE_SERVICE_LABEL == "kubeinfer.io/inferenceservice"


def test_series_labels_are_prometheus_names_of_the_pod_labels() -> None:
    assert labels.INFERENCE_SERVICE_SERIES == "kubeinfer_io_inferenceservice"
    assert labels.MODEL_VERSION_SERIES == "kubeinfer_io_model_version"
