"""Compile an InferenceService's SLA tier into an autoscaler: HPA v2 or a KEDA ScaledObject.

gold scales on p95 latency, silver on requests/s per replica (both custom metrics served by
prometheus-adapter for the HPA, or a Prometheus trigger for KEDA), bronze on CPU utilisation.
The metric names here and the adapter rules shipped in ``manifests/monitoring`` must agree: a
test renders both and compares them.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeinfer.api import base
from kubeinfer.api import inference_service as api
from kubeinfer.planning import children
from kubeinfer.planning.labels import INFERENCE_SERVICE_SERIES
from kubeinfer.planning.serving import tiers

LATENCY_METRIC = "kubeinfer_request_latency_p95_milliseconds"
"""Pods metric served by prometheus-adapter: p95 request latency per pod over 1 minute."""
RPS_METRIC = "kubeinfer_requests_per_second"
"""Pods metric served by prometheus-adapter: request rate per pod over 1 minute."""
LATENCY_SERIES = "kubeinfer_request_duration_seconds_bucket"
"""Histogram buckets the model servers export; the source of LATENCY_METRIC."""
RPS_SERIES = "kubeinfer_requests_total"
"""Request counter the model servers export; the source of RPS_METRIC."""
RATE_WINDOW = "1m"
"""Range of every ``rate()`` over those series, in the adapter rules and KEDA's PromQL alike."""
LATENCY_QUANTILE = 0.95
"""The quantile LATENCY_METRIC reports (p95), in the adapter rules and KEDA's PromQL alike."""

METRICS_API = {
    "hpa-custom": "v1beta1.custom.metrics.k8s.io",
    "hpa-resource": "v1beta1.metrics.k8s.io",
    "keda": "v1beta1.external.metrics.k8s.io",
}
"""APIService each scaling path needs, so the preflight can tell MetricsAvailable truthfully."""


@dataclass(frozen=True)
class Scaling:
    """The resolved scaling policy of one InferenceService."""

    tier: tiers.TierPolicy
    target: float
    min_replicas: int
    max_replicas: int
    scale_up_stabilization_s: int
    scale_down_stabilization_s: int
    scale_up_percent: int

    @property
    def metrics_api(self) -> str:
        return (
            METRICS_API["hpa-resource"] if self.tier.signal == "cpu" else METRICS_API["hpa-custom"]
        )


def resolve(spec: api.InferenceServiceSpec) -> Scaling:
    """Return the tier's policy with the spec's targets and overrides applied."""
    tier = tiers.TIERS[spec.sla.tier]
    over = spec.autoscaling.overrides
    target = over.target_value or _spec_target(spec) or tier.default_target
    low = max(spec.replicas.min, min(tier.min_replicas, spec.replicas.max))
    if spec.replicas.desired is not None:
        low = max(low, min(spec.replicas.desired, spec.replicas.max))
    return Scaling(
        tier=tier,
        target=target,
        min_replicas=low,
        max_replicas=spec.replicas.max,
        scale_up_stabilization_s=_seconds(
            over.scale_up_stabilization, tier.scale_up_stabilization_s
        ),
        scale_down_stabilization_s=_seconds(
            over.scale_down_stabilization, tier.scale_down_stabilization_s
        ),
        scale_up_percent=over.scale_up_percent or tier.scale_up_percent,
    )


def _spec_target(spec: api.InferenceServiceSpec) -> float | None:
    if spec.sla.tier == "gold":
        return float(spec.sla.latency_p95_ms) if spec.sla.latency_p95_ms else None
    if spec.sla.tier == "silver":
        return spec.sla.requests_per_second
    return None


def _seconds(value: str | None, default: int) -> int:
    return default if value is None else int(base.duration_seconds(value))


def metrics_api_for(spec: api.InferenceServiceSpec) -> str:
    """Return the APIService the autoscaler of ``spec`` reads its metric from."""
    if spec.autoscaling.engine == "keda":
        return METRICS_API["keda"]
    return resolve(spec).metrics_api


def build_hpa(
    owner: children.Owner, spec: api.InferenceServiceSpec, target: str
) -> children.Manifest:
    """Return the autoscaling/v2 HorizontalPodAutoscaler scaling Deployment ``target``."""
    scaling = resolve(spec)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": children.metadata(owner, owner.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": max(scaling.min_replicas, 1),
            "maxReplicas": scaling.max_replicas,
            "metrics": [_hpa_metric(scaling)],
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": scaling.scale_up_stabilization_s,
                    "selectPolicy": "Max",
                    "policies": [
                        {"type": "Percent", "value": scaling.scale_up_percent, "periodSeconds": 60},
                        {"type": "Pods", "value": 1, "periodSeconds": 60},
                    ],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": scaling.scale_down_stabilization_s,
                    "selectPolicy": "Min",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                },
            },
        },
    }


def _hpa_metric(scaling: Scaling) -> children.Manifest:
    if scaling.tier.signal == "cpu":
        return {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": int(scaling.target)},
            },
        }
    name = LATENCY_METRIC if scaling.tier.signal == "latency-p95" else RPS_METRIC
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": name},
            "target": {"type": "AverageValue", "averageValue": _quantity(scaling.target)},
        },
    }


def _quantity(value: float) -> str:
    """Render a target as a Kubernetes quantity, exact to the milli-unit."""
    millis = round(value * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def promql(signal: tiers.Signal, *, namespace: str, name: str) -> str:
    """Return the PromQL a KEDA trigger evaluates for ``signal`` over the service's pods."""
    match = f'namespace="{namespace}",{INFERENCE_SERVICE_SERIES}="{name}"'
    if signal == "latency-p95":
        return (
            f"histogram_quantile({LATENCY_QUANTILE}, sum by (le) (rate("
            f"{LATENCY_SERIES}{{{match}}}[{RATE_WINDOW}]))) * 1000"
        )
    if signal == "requests-per-second":
        return f"sum(rate({RPS_SERIES}{{{match}}}[{RATE_WINDOW}]))"
    return f'sum(rate(container_cpu_usage_seconds_total{{{match},container!=""}}[{RATE_WINDOW}]))'


def build_scaled_object(
    owner: children.Owner, spec: api.InferenceServiceSpec, target: str
) -> children.Manifest:
    """Return the KEDA ScaledObject scaling Deployment ``target`` on a Prometheus trigger."""
    scaling = resolve(spec)
    trigger: children.Manifest
    if scaling.tier.signal == "cpu":
        trigger = {
            "type": "cpu",
            "metricType": "Utilization",
            "metadata": {"value": str(int(scaling.target))},
        }
    else:
        trigger = {
            "type": "prometheus",
            "metadata": {
                "serverAddress": spec.autoscaling.prometheus_address,
                "query": promql(scaling.tier.signal, namespace=owner.namespace, name=owner.name),
                "threshold": _quantity(scaling.target),
            },
        }
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": children.metadata(owner, owner.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": scaling.scale_down_stabilization_s,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": {
                            "stabilizationWindowSeconds": scaling.scale_up_stabilization_s,
                        },
                        "scaleDown": {
                            "stabilizationWindowSeconds": scaling.scale_down_stabilization_s,
                        },
                    }
                }
            },
            "triggers": [trigger],
        },
    }
