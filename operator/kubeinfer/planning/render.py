"""Offline rendering: the children the operator would create for a manifest, without a cluster.

This is the GitOps preview a reviewer runs on a pull request (``kubeinfer render``). Every
kind's planner runs against an empty observation, so the output is exactly the children a
first reconcile applies. Validation errors name the field, as the API server would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from kubeinfer.api import kinds
from kubeinfer.api import log_policy as log_api
from kubeinfer.planning import chaos_experiment, children, gpu_pool, inference_service, log_policy
from kubeinfer.planning.logs import sidecar as log_sidecar

PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"
"""Offline stand-in for the uid the API server assigns; ownerReferences show it."""

_PLANNERS: dict[str, tuple[Callable[..., Any], Any]] = {
    kinds.INFERENCE_SERVICE.kind: (inference_service.plan, inference_service.Observed(pool=None)),
    kinds.GPU_POOL.kind: (gpu_pool.plan, gpu_pool.Observed()),
    kinds.CHAOS_EXPERIMENT.kind: (
        chaos_experiment.plan,
        chaos_experiment.Observed(
            pods=(
                chaos_experiment.PodView(name="target-0", ready=True),
                chaos_experiment.PodView(name="target-1", ready=True),
            )
        ),
    ),
    kinds.LOG_POLICY.kind: (log_policy.plan, log_policy.Observed()),
}


class RenderError(ValueError):
    """A manifest cannot be rendered; the message names the document and the field."""


@dataclass(frozen=True)
class Rendered:
    """The children of one custom resource."""

    kind: str
    name: str
    children: tuple[children.Manifest, ...]


def render_documents(docs: Iterable[Any], *, source: str = "<input>") -> list[Rendered]:
    """Render every kubeinfer document in ``docs``; other kinds are skipped.

    LogPolicies in ``docs`` are what an InferenceService of their namespace sees, so a server
    logging to files shows the sidecars a policy of the same change gives it.
    """
    parsed: list[tuple[kinds.Kind, children.Owner, BaseModel]] = []
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict):
            continue
        try:
            kind = kinds.lookup(str(doc.get("apiVersion")), str(doc.get("kind")))
        except KeyError:
            continue
        meta = doc.get("metadata") or {}
        name = meta.get("name")
        where = f"{source}: document {index + 1} ({kind.kind} {name or '<unnamed>'})"
        if not name:
            raise RenderError(f"{where}: metadata.name is required")
        spec = _validate(kind.spec, doc.get("spec"), where)
        owner = children.Owner(
            api_version=kind.api_version,
            kind=kind.kind,
            name=str(name),
            namespace=str(meta.get("namespace") or "default"),
            uid=PLACEHOLDER_UID,
            generation=1,
            labels=dict(meta.get("labels") or {}),
        )
        parsed.append((kind, owner, spec))
    policies = tuple(
        log_sidecar.Policy(owner, spec)
        for kind, owner, spec in parsed
        if kind is kinds.LOG_POLICY and isinstance(spec, log_api.LogPolicySpec)
    )
    out: list[Rendered] = []
    for kind, owner, spec in parsed:
        plan_fn, observed = _PLANNERS[kind.kind]
        if kind is kinds.INFERENCE_SERVICE:
            observed = inference_service.Observed(
                pool=None,
                log_policies=tuple(p for p in policies if p.owner.namespace == owner.namespace),
            )
        out.append(Rendered(kind.kind, owner.name, tuple(plan_fn(owner, spec, observed).children)))
    return out


def _validate(model: type[BaseModel], spec: Any, where: str) -> BaseModel:
    if spec is None:
        raise RenderError(f"{where}: spec is required")
    try:
        return model.model_validate(spec)
    except ValidationError as err:
        lines = [
            f"{where}: spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        ]
        raise RenderError("\n".join(lines)) from err


def dump(rendered: Iterable[Rendered]) -> str:
    """Serialise rendered children as a multi-document YAML stream, byte-for-byte stable."""
    parts = []
    for item in rendered:
        for child in item.children:
            parts.append(
                f"# {item.kind} {item.name} → {child['kind']} {child['metadata']['name']}\n"
                + yaml.safe_dump(child, sort_keys=True, width=100, allow_unicode=True)
            )
    return "---\n".join(parts)
