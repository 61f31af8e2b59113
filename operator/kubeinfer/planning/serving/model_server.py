"""The children that run one model version: its Deployment and Service, and the service-wide
PodDisruptionBudget and ServiceMonitor that cover every version's pods.

The Deployment carries what a model server needs on GPUs: the runtime's command and batching
settings, the placement (node pinning, the DRA claim template, NCCL environment), ``/dev/shm``
sized from ``resources.sharedMemory``, a startup probe that waits out the model's load time, a
preStop that lets in-flight requests finish, and collector sidecars for LogPolicies. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kubeinfer.api import base
from kubeinfer.api import inference_service as api
from kubeinfer.planning import children
from kubeinfer.planning.gpu import replica_placement
from kubeinfer.planning.labels import MODEL_VERSION_LABEL
from kubeinfer.planning.logs import sidecar as log_sidecar
from kubeinfer.planning.rollout import analysis
from kubeinfer.planning.serving import runtimes, tiers, traffic

SERVER_CONTAINER = "server"
"""Name of the model server's container in every pod."""
HTTP_PORT = traffic.HTTP_PORT
SHM_PATH = "/dev/shm"  # noqa: S108 - the in-memory volume NCCL and PyTorch workers expect


def version_name(owner: children.Owner, version: str) -> str:
    """Name of a version's Deployment and Service."""
    return children.dns_name(owner.name, version)


def pod_labels(owner: children.Owner, version: str) -> dict[str, str]:
    """Labels of the model server pods of ``version``."""
    return children.child_labels(owner, {MODEL_VERSION_LABEL: version})


def pool_name(owner: children.Owner) -> str:
    """Name of the one Deployment of an in-place service (its pods change version in place)."""
    return owner.name


def launch_of(spec: api.InferenceServiceSpec) -> runtimes.Launch:
    """What the runtime is started (and an in-place load is sent) with for this spec."""
    tier = tiers.TIERS[spec.sla.tier]
    return runtimes.Launch(
        model=spec.model,
        source=runtimes.model_source(spec.model.uri),
        gpus=spec.resources.gpus,
        max_batch_size=spec.batching.max_batch_size or tier.max_batch_size,
        max_batch_latency_ms=(
            spec.batching.max_latency_ms
            if spec.batching.max_latency_ms is not None
            else tier.max_batch_latency_ms
        ),
        log_dir=spec.logging.directory if spec.logging.mode == "file" else None,
    )


def build_deployment(
    owner: children.Owner,
    spec: api.InferenceServiceSpec,
    gpus: replica_placement.Enforcement | None = None,
    claim_template: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    *,
    log_policies: Sequence[log_sidecar.Policy] = (),
    in_place: bool = False,
) -> children.Manifest:
    """Return the Deployment of the spec's model version.

    ``replicas`` is left out on purpose: the autoscaler owns it, so neither Git nor a
    server-side apply of this manifest ever fights the autoscaler over it. A server logging to
    files gets a collector sidecar for each of ``log_policies`` that selects its pods.

    ``in_place`` renders the service's one Deployment instead (:mod:`kubeinfer.planning.rollout.in_place`):
    named after the service, no version in its selector, labels or environment, and no load at
    start, so a new version never changes the template; the operator loads the version into
    each server and labels the pod with it.
    """
    runtime = runtimes.RUNTIMES[spec.model.runtime]
    tier = tiers.TIERS[spec.sla.tier]
    launch = launch_of(spec)
    source = launch.source
    versioned = {} if in_place else {MODEL_VERSION_LABEL: spec.model.version}
    name = pool_name(owner) if in_place else version_name(owner, spec.model.version)
    labels = children.child_labels(owner, versioned)
    selector = {owner.label_key: owner.name, **versioned}
    env = runtime.env(launch)
    if in_place:
        del env["KUBEINFER_MODEL_VERSION"]
    limits: dict[str, str] = {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    if spec.resources.gpus:
        limits["nvidia.com/gpu"] = str(spec.resources.gpus)
    load_s = base.duration_seconds(spec.model.load_timeout)
    container: children.Manifest = {
        "name": SERVER_CONTAINER,
        "image": spec.model.image or runtime.image,
        "args": runtime.args(launch),
        "env": [{"name": k, "value": v} for k, v in sorted({**env, **(extra_env or {})}.items())],
        "ports": [{"name": "http", "containerPort": runtime.port, "protocol": "TCP"}]
        + (
            [{"name": "metrics", "containerPort": runtime.metrics_port, "protocol": "TCP"}]
            if runtime.metrics_port != runtime.port
            else []
        ),
        "resources": {"requests": dict(limits), "limits": dict(limits)},
        "startupProbe": {
            "httpGet": {"path": runtime.health_path, "port": runtime.port},
            "periodSeconds": 10,
            "failureThreshold": max(int(load_s // 10), 1),
        },
        "readinessProbe": {
            "httpGet": {"path": runtime.ready_path, "port": runtime.port},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": runtime.health_path, "port": runtime.port},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "lifecycle": {"preStop": {"sleep": {"seconds": 15}}},
        "volumeMounts": [{"name": "dshm", "mountPath": SHM_PATH}, *source.mounts],
    }
    hook = None if in_place else runtime.post_start(launch)
    if hook is not None:
        container["lifecycle"]["postStart"] = {"exec": {"command": hook}}
    pod_spec: children.Manifest = {
        "priorityClassName": tier.priority_class,
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": [
            {
                "name": "dshm",
                "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.shared_memory},
            },
            *source.volumes,
        ],
    }
    if spec.placement.node_selector:
        pod_spec["nodeSelector"] = dict(sorted(spec.placement.node_selector.items()))
    if spec.placement.tolerations:
        pod_spec["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in spec.placement.tolerations
        ]
    if gpus is not None:
        replica_placement.constrain_pod(pod_spec, container, gpus, claim_template=claim_template)
    elif spec.resources.gpus:
        replica_placement.hold_pod(pod_spec)
    template: children.Manifest = {"metadata": {"labels": labels}, "spec": pod_spec}
    log_sidecar.add_to_pod(
        template,
        container,
        owner=owner,
        logging=spec.logging,
        policies=log_sidecar.selecting(log_policies, owner.name, labels),
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": children.metadata(owner, name, labels=versioned),
        "spec": {
            "selector": {"matchLabels": selector},
            "progressDeadlineSeconds": int(load_s) + 300,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": template,
        },
    }


def build_service(
    owner: children.Owner, name: str, selector: dict[str, str], target_port: int
) -> children.Manifest:
    """Return a ClusterIP Service named ``name`` over the pods ``selector`` matches."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": children.metadata(owner, name),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(sorted(selector.items())),
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": target_port, "protocol": "TCP"}
            ],
        },
    }


def build_pdb(owner: children.Owner, spec: api.InferenceServiceSpec) -> children.Manifest:
    """Return the PodDisruptionBudget protecting the tier's share of replicas."""
    tier = tiers.TIERS[spec.sla.tier]
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": children.metadata(owner, owner.name),
        "spec": {
            "minAvailable": f"{tier.min_available_percent}%",
            "selector": {"matchLabels": {owner.label_key: owner.name}},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def build_service_monitor(
    owner: children.Owner, spec: api.InferenceServiceSpec
) -> children.Manifest:
    """Return the ServiceMonitor scraping every version's model servers, each pod once.

    It selects only the per-version Services (they carry the version label): the front Service
    reaches the same pods, and selecting it too would scrape every pod twice and double rates.
    """
    runtime = runtimes.RUNTIMES[spec.model.runtime]
    port = "metrics" if runtime.metrics_port != runtime.port else "http"
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": children.metadata(owner, owner.name),
        "spec": {
            "selector": {
                "matchLabels": {owner.label_key: owner.name},
                "matchExpressions": [{"key": MODEL_VERSION_LABEL, "operator": "Exists"}],
            },
            "podTargetLabels": [owner.label_key, MODEL_VERSION_LABEL],
            "endpoints": [
                {
                    "port": port,
                    "path": runtime.metrics_path,
                    "interval": f"{analysis.SCRAPE_INTERVAL_SECONDS}s",
                }
            ],
        },
    }


def version_service(owner: children.Owner, spec: api.InferenceServiceSpec) -> children.Manifest:
    """A version's own Service (routes and the ServiceMonitor select it), with its metrics port."""
    runtime = runtimes.RUNTIMES[spec.model.runtime]
    svc = build_service(
        owner,
        version_name(owner, spec.model.version),
        {owner.label_key: owner.name, MODEL_VERSION_LABEL: spec.model.version},
        runtime.port,
    )
    if runtime.metrics_port != runtime.port:
        svc["spec"]["ports"].append(
            {
                "name": "metrics",
                "port": runtime.metrics_port,
                "targetPort": runtime.metrics_port,
                "protocol": "TCP",
            }
        )
    svc["metadata"]["labels"][MODEL_VERSION_LABEL] = spec.model.version
    return svc
