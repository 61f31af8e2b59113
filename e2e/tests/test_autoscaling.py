"""The SLA autoscaling loop for real: simulators -> Prometheus -> prometheus-adapter -> HPA.

Covers, on the real control plane with the operator running as its ServiceAccount:

- a gold InferenceService reports ``MetricsAvailable=False`` (MetricsApiMissing) while no
  APIService serves custom metrics, and ``True`` once prometheus-adapter (built from its Go module,
  serving ``manifests/monitoring/adapter-rules.yaml``) is registered and Available;
- one simulator per pod the Deployment really runs (on 127.0.0.x, scraped by Debian's Prometheus
  with the labels prometheus-operator would derive from the operator's ServiceMonitor) feeds
  the custom metric the operator's HPA names, read through the aggregated API;
- KEDA's PromQL from ``planning/autoscaling.py`` evaluates on that Prometheus to the same p95;
- when the simulators' latency crosses the gold target, kube-controller-manager's HPA scales the
  Deployment up; when it falls, the Deployment returns to the tier's minimum after the
  (overridden, short) scale-down stabilisation. The times are printed (``-s`` shows them).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import pytest
import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import operator_process, processes, prometheus, prometheus_adapter, scrape_targets
from e2e.simulator import behaviour, fleet, load, server
from kubeinfer.api import conditions
from kubeinfer.planning import autoscaling

pytestmark = pytest.mark.e2e

NAME = "chat"
TARGET_MS = 200
MAX_REPLICAS = 3
LOW_LATENCY_MS = 20.0
HIGH_LATENCY_MS = 400.0
LOAD = load.Limits(rate=20.0, duration_s=600.0, max_requests=12_000, concurrency=64)
POLL_SECONDS = 0.5


@pytest.fixture(scope="module")
def monitoring(
    cluster: cluster_setup.Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[processes.Supervisor, prometheus.Prometheus]]:
    """Prometheus on loopback for this module; the adapter is started (and registered) by the
    test, so the test can watch MetricsAvailable change."""
    run_dir = tmp_path_factory.mktemp("monitoring")
    with processes.Supervisor() as supervisor:
        scraper = prometheus.start(supervisor, run_dir)
        try:
            yield supervisor, scraper
        finally:
            # A registered APIService whose server is gone breaks discovery for later tests.
            prometheus_adapter.unregister(cluster.kubectl)


def _inference_service(namespace: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kubeinfer.io/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": NAME, "namespace": namespace},
            "spec": {
                "model": {
                    "name": "chat",
                    "version": "v1",
                    "uri": "s3://models/chat/v1",
                    "runtime": "vllm",
                },
                "resources": {"gpus": 0, "cpu": "1", "memory": "2Gi", "sharedMemory": "256Mi"},
                "replicas": {"min": 1, "max": MAX_REPLICAS},
                "sla": {"tier": "gold", "latencyP95Ms": TARGET_MS},
                "traffic": {"provider": "none"},
                "autoscaling": {"overrides": {"scaleDownStabilization": "20s"}},
            },
        }
    )


def _eventually(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(POLL_SECONDS)


class _View:
    """Read-only looks at the objects the test follows."""

    def __init__(self, cluster: cluster_setup.Cluster, api: Any, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.apps: Any = kubernetes.client.AppsV1Api(api)
        self.custom: Any = kubernetes.client.CustomObjectsApi(api)
        self.autoscaling: Any = kubernetes.client.AutoscalingV2Api(api)

    def condition(self, kind: str) -> dict[str, Any]:
        body = self.custom.get_namespaced_custom_object(
            "kubeinfer.io", "v1alpha1", self.namespace, "inferenceservices", NAME
        )
        conditions = (body.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == kind), {})

    def replicas(self) -> tuple[int, int]:
        """Deployment ``spec.replicas`` (what the HPA chose) and ``status.readyReplicas``."""
        try:
            dep = self.apps.read_namespaced_deployment(f"{NAME}-v1", self.namespace)
        except kubernetes.client.ApiException as err:
            if err.status == 404:  # the operator has not applied it yet
                return 0, 0
            raise
        return int(dep.spec.replicas or 0), int(dep.status.ready_replicas or 0)

    def _hpa(self) -> Any:
        return self.autoscaling.read_namespaced_horizontal_pod_autoscaler(NAME, self.namespace)

    def hpa_condition(self, kind: str) -> dict[str, Any]:
        """One of the HPA's status conditions, as plain data."""
        for condition in self._hpa().status.conditions or []:
            if condition.type == kind:
                return {"status": condition.status, "reason": condition.reason}
        return {}

    def scale_up_period_s(self) -> int:
        """The longest period of the HPA's scale-up policies, read from the rendered object."""
        policies = self._hpa().spec.behavior.scale_up.policies or []
        return max((int(p.period_seconds) for p in policies), default=0)

    def scale_up_period_passed(self) -> bool:
        """Whether the HPA last scaled longer ago than its scale-up policy period."""
        last = self._hpa().status.last_scale_time
        if last is None:
            return True
        age = datetime.datetime.now(datetime.UTC) - last
        return bool(age.total_seconds() > self.scale_up_period_s())

    def custom_metric(self, metric: str = autoscaling.LATENCY_METRIC) -> dict[str, float]:
        """A Pods metric per pod (default: latency), as the HPA reads it through the aggregator."""
        selector = urllib.parse.quote(f"kubeinfer.io/inferenceservice={NAME}")
        path = (
            f"/apis/custom.metrics.k8s.io/v1beta1/namespaces/{self.namespace}/pods/*/"
            f"{metric}?labelSelector={selector}"
        )
        result = self.cluster.kubectl("get", "--raw", path, check=False)
        if result.returncode != 0:
            return {}
        items = json.loads(result.stdout).get("items") or []
        return {
            i["describedObject"]["name"]: float(kubernetes.utils.parse_quantity(i["value"]))  # type: ignore[no-untyped-call]
            for i in items
        }


def _seconds(since: float) -> float:
    return round(time.monotonic() - since, 1)


def test_gold_latency_scales_the_deployment_up_and_back_down(
    cluster: cluster_setup.Cluster,
    api: Any,
    namespace: str,
    operator: operator_process.RunningOperator,
    monitoring: tuple[processes.Supervisor, prometheus.Prometheus],
) -> None:
    supervisor, scraper = monitoring
    view = _View(cluster, api, namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=_inference_service(namespace))
    _eventually(lambda: view.replicas()[1] >= 2, timeout=120, what="the gold tier's 2 replicas")
    missing = _eventually(
        lambda: (
            view.condition("MetricsAvailable").get("status") == "False"
            and view.condition("MetricsAvailable")
        ),
        timeout=60,
        what="MetricsAvailable=False before any custom metrics API exists",
    )
    assert missing["reason"] == conditions.Reason.METRICS_API_MISSING.value, missing

    identity = server.Identity(runtime="vllm", model="chat")
    figures: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        simulators = stack.enter_context(
            fleet.Fleet(identity, behaviour.Behaviour(latency_ms=LOW_LATENCY_MS))
        )
        stack.enter_context(
            scrape_targets.Follower(
                api,
                namespace=namespace,
                monitor_name=NAME,
                simulators=simulators,
                scraper=scraper,
            )
        )
        load_run, stop_load = simulators.start_load(LOAD)
        stack.callback(stop_load)
        _eventually(
            lambda: len(simulators.addresses()) >= 2,
            timeout=60,
            what="a simulator for each running pod",
        )

        registered = time.monotonic()
        prometheus_adapter.start(
            supervisor,
            cluster.kubectl,
            run_dir=scraper.targets_dir.parent / "adapter",
            prometheus_url=scraper.url,
        )
        figures["apiservice_available_s"] = _seconds(registered)
        available = _eventually(
            lambda: (
                view.condition("MetricsAvailable").get("status") == "True"
                and view.condition("MetricsAvailable")
            ),
            timeout=90,
            what="MetricsAvailable=True once the APIService is Available",
        )
        figures["metrics_available_s"] = _seconds(registered)
        assert available["reason"] == conditions.Reason.AS_EXPECTED.value, available
        assert prometheus_adapter.API_SERVICE in available["message"]

        low = _eventually(
            lambda: (m := view.custom_metric()) and len(m) >= 2 and m,
            timeout=120,
            what="the latency metric for every pod through custom.metrics.k8s.io",
        )
        assert all(value < TARGET_MS for value in low.values()), low
        keda = scraper.query(autoscaling.promql("latency-p95", namespace=namespace, name=NAME))
        assert keda and float(keda[0]["value"][1]) < TARGET_MS, keda
        assert view.replicas()[0] == 2
        active = _eventually(
            lambda: (
                view.hpa_condition("ScalingActive").get("status") == "True"
                and view.hpa_condition("ScalingActive")
            ),
            timeout=30,
            what="the HPA to read its metric",
        )
        assert active["reason"] == "ValidMetricFound", active
        # The HPA's own first scale (1 -> 2 replicas at creation) opened a scale-up policy period;
        # let it pass so the figure below measures the metrics pipeline, not that rate limit.
        _eventually(
            view.scale_up_period_passed,
            timeout=view.scale_up_period_s() + 30,
            what="the HPA's scale-up policy period to pass",
        )
        # Silver's metric from the same pipeline (load has run for over a rate window by now),
        # and how many targets each pod got: prometheus-operator semantics, shown not judged.
        rates = view.custom_metric(autoscaling.RPS_METRIC)
        figures["load_rps_per_pod"] = LOAD.rate / len(rates)
        figures["adapter_rps_per_pod"] = round(sum(rates.values()) / len(rates), 2)
        pods = [t["labels"]["pod"] for t in scraper.active_targets()]
        figures["scrape_targets_per_pod"] = len(pods) / len(set(pods))

        simulators.set_behaviour({"latencyMs": HIGH_LATENCY_MS})
        switched = time.monotonic()
        _eventually(
            lambda: (m := view.custom_metric()) and sum(m.values()) / len(m) > TARGET_MS,
            timeout=120,
            what="the pods' average of the custom metric (what the HPA compares) to cross the target",
        )
        crossed = time.monotonic()
        figures["switch_to_crossing_s"] = _seconds(switched)
        _eventually(lambda: view.replicas()[0] > 2, timeout=120, what="the HPA to scale up")
        figures["crossing_to_scale_up_s"] = _seconds(crossed)
        _eventually(lambda: view.replicas()[1] > 2, timeout=120, what="the new replica ready")
        figures["crossing_to_ready_s"] = _seconds(crossed)
        figures["replicas_after_scale_up"] = view.replicas()[0]
        _eventually(
            lambda: len(simulators.addresses()) == view.replicas()[1],
            timeout=60,
            what="a simulator for the new pod",
        )

        simulators.set_behaviour({"latencyMs": LOW_LATENCY_MS})
        lowered = time.monotonic()
        _eventually(
            lambda: (m := view.custom_metric()) and all(v < TARGET_MS for v in m.values()),
            timeout=180,
            what="the custom metric to fall below the target",
        )
        figures["lowering_to_below_target_s"] = _seconds(lowered)
        _eventually(lambda: view.replicas()[0] == 2, timeout=240, what="the HPA to scale down")
        figures["lowering_to_scale_down_s"] = _seconds(lowered)

        stop_load()
        report = load_run.result(timeout=60)
    print(f"\nautoscaling loop figures: {json.dumps(figures)}\nload: {report}")
    assert report.by_status.get(200, 0) > 0
    assert set(report.by_status) <= {200}, report
