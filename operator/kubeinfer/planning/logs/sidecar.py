"""The collector sidecars of InferenceService pods whose model server logs to files.

Owns: which LogPolicies select a pod (by InferenceService name or label selector; a policy
failing its checks runs no agent anywhere), and what the InferenceService renderer adds to the
pod for them: one native sidecar per policy (an init container with ``restartPolicy: Always``,
so it starts before the server and stops after it), the ``emptyDir`` the server writes its
``*.log`` files into, the sidecars' state, the ConfigMap holding each policy's sidecar
configuration, and the pod annotation naming the configuration hashes, so a changed policy
rolls the pods; and how far the Deployments running a policy's sidecar have rolled.
Must not: render collector configuration (``planning.logs.collector`` does) or read LogPolicies
(the InferenceService controller does).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubeinfer.api import base
from kubeinfer.api import inference_service as isvc_api
from kubeinfer.api import log_policy as api
from kubeinfer.planning import children
from kubeinfer.planning.labels import LOG_CONFIG_HASH_ANNOTATION, LOG_POLICIES_ANNOTATION
from kubeinfer.planning.logs import collector

LOG_VOLUME = "server-logs"
STATE_VOLUME = "log-collector-state"
CONFIG_VOLUME = "log-collector-config"
CONFIG_DIR = "/etc/kubeinfer/log-collector"


@dataclass(frozen=True)
class Policy:
    """A LogPolicy of the InferenceService's namespace."""

    owner: children.Owner
    spec: api.LogPolicySpec

    @functools.cached_property
    def config_text(self) -> str:
        """The sidecar configuration this policy renders (the same for every pod it selects)."""
        return collector.sidecar_config_text(self.owner, self.spec)


def selecting(
    policies: Sequence[Policy], service: str, pod_labels: Mapping[str, str]
) -> tuple[Policy, ...]:
    """The policies that cover ``service``'s pods carrying ``pod_labels``, by name."""

    def covers(policy: Policy) -> bool:
        if policy.spec.inference_service is not None:
            return policy.spec.inference_service == service
        return (policy.spec.selector or base.LabelSelector()).matches(dict(pod_labels))

    chosen = (p for p in policies if covers(p) and collector.passes_checks(p.spec))
    return tuple(sorted(chosen, key=lambda p: p.owner.name))


def config_map_name(owner: children.Owner) -> str:
    """Name of the InferenceService's ConfigMap of sidecar configurations."""
    return children.dns_name(owner.name, "log-collector")


def _config_key(policy: Policy) -> str:
    return f"{policy.owner.name}.yaml"


def build_config_map(owner: children.Owner, policies: Sequence[Policy]) -> children.Manifest:
    """The ConfigMap holding each selecting policy's sidecar configuration."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": children.metadata(owner, config_map_name(owner)),
        "data": {_config_key(p): p.config_text for p in sorted(policies, key=_config_key)},
    }


def _sidecar(index: int, policy: Policy) -> children.Manifest:
    prefix = f"log{index}"
    container = collector.collector_container(
        policy.spec,
        name=children.dns_name(collector.SIDECAR_CONTAINER_PREFIX + policy.owner.name),
        config_path=f"{CONFIG_DIR}/{_config_key(policy)}",
        mounts=[
            {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": LOG_VOLUME, "mountPath": collector.SIDECAR_LOGS, "readOnly": True},
            {
                "name": STATE_VOLUME,
                "mountPath": collector.SIDECAR_STATE,
                "subPath": policy.owner.name,
            },
            *collector.file_output_volumes(policy.spec, prefix)[1],
        ],
        identity={collector.POD_NAME_ENV: "metadata.name"},
    )
    return {**container, "restartPolicy": "Always"}


def policies_of(annotations: Mapping[str, str]) -> dict[str, str]:
    """``{policy: sidecar config hash}`` a pod template's annotations say its sidecars run."""
    names = [n for n in annotations.get(LOG_POLICIES_ANNOTATION, "").split(",") if n]
    hashes = annotations.get(LOG_CONFIG_HASH_ANNOTATION, "").split(",")
    return dict(zip(names, hashes, strict=False)) if len(names) == len(hashes) else {}


def template_annotations(deployment: Mapping[str, Any]) -> Mapping[str, str]:
    """The pod template annotations of a Deployment body."""
    template = (deployment.get("spec") or {}).get("template") or {}
    annotations: Mapping[str, str] = (template.get("metadata") or {}).get("annotations") or {}
    return annotations


def rollout(
    deployments: Iterable[Mapping[str, Any]], *, owner: children.Owner, digest: str
) -> tuple[int, int]:
    """``(pods, updated)``: pods of the Deployments of the policy ``owner``'s namespace whose
    template runs its sidecar, and of those the pods of a template running ``digest``."""
    pods = updated = 0
    for deployment in deployments:
        running = policies_of(template_annotations(deployment))
        if deployment["metadata"].get("namespace") != owner.namespace or owner.name not in running:
            continue
        status = deployment.get("status") or {}
        pods += int(status.get("replicas", 0))
        if running[owner.name] == digest:
            updated += int(status.get("updatedReplicas", 0))
    return pods, updated


def add_to_pod(
    template: children.Manifest,
    server: children.Manifest,
    *,
    owner: children.Owner,
    logging: isvc_api.Logging,
    policies: Sequence[Policy],
) -> None:
    """Give a pod template whose server logs to files its shared log volume and one sidecar per
    policy in ``policies`` (already selected); edits ``template`` and ``server`` in place."""
    if logging.mode != "file":
        return
    pod = template["spec"]
    server.setdefault("volumeMounts", []).append(
        {"name": LOG_VOLUME, "mountPath": logging.directory}
    )
    pod.setdefault("volumes", []).append(
        {"name": LOG_VOLUME, "emptyDir": {"sizeLimit": logging.size_limit}}
    )
    if not policies:
        return
    pod["initContainers"] = [
        *pod.get("initContainers", []),
        *(_sidecar(i, p) for i, p in enumerate(policies)),
    ]
    pod["volumes"] += [
        {"name": STATE_VOLUME, "emptyDir": {}},
        {"name": CONFIG_VOLUME, "configMap": {"name": config_map_name(owner)}},
        collector.report_token_volume(),
        *(
            volume
            for i, p in enumerate(policies)
            for volume in collector.file_output_volumes(p.spec, f"log{i}")[0]
        ),
    ]
    annotations = template["metadata"].setdefault("annotations", {})
    annotations[LOG_CONFIG_HASH_ANNOTATION] = ",".join(
        children.content_hash(p.config_text) for p in policies
    )
    annotations[LOG_POLICIES_ANNOTATION] = ",".join(p.owner.name for p in policies)
    template["metadata"]["annotations"] = dict(sorted(annotations.items()))
