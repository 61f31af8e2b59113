"""The SLA autoscaling loop for real: simulators -> Prometheus -> prometheus-adapter -> HPA.

Covers, on the real control plane with the operator running as its ServiceAccount:

- a gold InferenceService reports ``MetricsAvailable=False`` (MetricsApiMissing) while no
  APIService serves custom metrics, and ``True`` once prometheus-adapter (built from its Go module,
  serving ``manifests/monitoring/adapter-rules.yaml``) is registered and Available;
- one simulator per pod the Deployment really runs (on 127.0.0.x, scraped by Debian's Prometheus
  with the labels prometheus-operator would derive from the operator's ServiceMonitor) feeds
  the custom metric the operator's HPA names, read through the aggregated API; the HPA reports
  ``ScalingActive`` with ``ValidMetricFound``;
- KEDA's PromQL from ``planning/serving/autoscaling.py`` evaluates on that Prometheus below the target too;
- when the simulators' latency crosses the gold target, kube-controller-manager's HPA scales the
  Deployment up; when it falls, the Deployment returns to the tier's minimum after the
  (overridden, short) scale-down stabilisation;
- closed loop: simulators that serve one request at a time get more load than two pods can
  take; their latency climbs past the target, the HPA adds a replica, and with the same load
  spread over three pods p95 falls back under the target.

The measured times are printed (``pytest -s`` shows them; e2e/README.md records them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import pathlib
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import pytest
import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import (
    operator_process,
    processes,
    prometheus,
    prometheus_adapter,
    scrape_targets,
    waiting,
)
from e2e.simulator import behaviour, fleet, load, server
from kubeinfer.api import conditions
from kubeinfer.planning.serving import autoscaling

pytestmark = pytest.mark.e2e

NAME = "chat"
TARGET_MS = 200
MAX_REPLICAS = 3
LOW_LATENCY_MS = 20.0
HIGH_LATENCY_MS = 400.0
STEADY_LOAD = load.Limits(rate=20.0, duration_s=600.0, max_requests=12_000, concurrency=64)
SPIKE_LOAD = load.Limits(rate=40.0, duration_s=300.0, max_requests=12_000, concurrency=128)
SERVICE_MS = 60.0
"""Closed loop: one request at a time, 60 ms each, is 16.7 requests/s per pod. The spike's
20 requests/s per pod on two pods queue up; 13.3 per pod on three do not."""
POLL_SECONDS = 0.5


@dataclasses.dataclass
class Monitoring:
    """Prometheus for the module, and prometheus-adapter once a test asks for it."""

    cluster: cluster_setup.Cluster
    supervisor: processes.Supervisor
    scraper: prometheus.Prometheus
    run_dir: pathlib.Path
    adapter: prometheus_adapter.Adapter | None = None

    def start_adapter(self) -> prometheus_adapter.Adapter:
        """Start the adapter (building it if needed) unless it is running; do not register it."""
        if self.adapter is None:
            self.adapter = prometheus_adapter.start(
                self.supervisor,
                self.cluster.kubectl,
                run_dir=self.run_dir / "adapter",
                prometheus_url=self.scraper.url,
                register_now=False,
            )
        return self.adapter

    def register_adapter(self) -> None:
        """Register the (started) adapter; wait until its APIService is Available."""
        adapter = self.start_adapter()
        prometheus_adapter.register(self.supervisor, self.cluster.kubectl, adapter)

    def unregister_adapter(self) -> None:
        """Remove the APIService, so nothing serves custom metrics."""
        prometheus_adapter.unregister(self.cluster.kubectl)


@pytest.fixture(scope="module")
def monitoring(
    cluster: cluster_setup.Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Monitoring]:
    """Prometheus on loopback for this module; tests register the adapter when they need it."""
    run_dir = tmp_path_factory.mktemp("monitoring")
    with processes.Supervisor() as supervisor:
        scraper = prometheus.start(supervisor, run_dir)
        try:
            yield Monitoring(cluster, supervisor, scraper, run_dir)
        finally:
            # A registered APIService whose server is gone breaks discovery for later tests.
            prometheus_adapter.unregister(cluster.kubectl)


def _inference_service(namespace: str, *, scale_down_stabilization: str | None) -> str:
    overrides = (
        {"scaleDownStabilization": scale_down_stabilization} if scale_down_stabilization else {}
    )
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
                "autoscaling": {"overrides": overrides},
            },
        }
    )


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


def _average(values: dict[str, float]) -> float:
    return sum(values.values()) / len(values) if values else 0.0


@contextlib.contextmanager
def _simulated_pods(
    api: Any, namespace: str, scraper: prometheus.Prometheus, initial: behaviour.Behaviour
) -> Iterator[fleet.Fleet]:
    """A simulator for each pod of the InferenceService, scraped by Prometheus, until exit."""
    identity = server.Identity(runtime="vllm", model="chat")
    with (
        fleet.Fleet(identity, initial) as simulators,
        scrape_targets.Follower(
            api, namespace=namespace, monitor_name=NAME, simulators=simulators, scraper=scraper
        ),
    ):
        waiting.first(
            lambda: len(simulators.addresses()) >= 2,
            timeout=60,
            what="a simulator for each running pod",
            interval=POLL_SECONDS,
        )
        yield simulators


@contextlib.contextmanager
def _load(simulators: fleet.Fleet, limits: load.Limits) -> Iterator[Callable[[], load.Report]]:
    """Load on the fleet until exit; yields a function that ends it and returns its report."""
    run, stop = simulators.start_load(limits)

    def finish() -> load.Report:
        stop()
        return run.result(timeout=60)

    try:
        yield finish
    finally:
        stop()


def _ready_to_scale(view: _View, figures: dict[str, float]) -> None:
    """Wait until the HPA reads its metric for every pod and may scale up at once."""
    waiting.first(
        lambda: (m := view.custom_metric()) and len(m) >= 2 and m,
        timeout=120,
        what="the latency metric for every pod through custom.metrics.k8s.io",
        interval=POLL_SECONDS,
    )
    active = waiting.first(
        lambda: (
            view.hpa_condition("ScalingActive").get("status") == "True"
            and view.hpa_condition("ScalingActive")
        ),
        timeout=30,
        what="the HPA to read its metric",
        interval=POLL_SECONDS,
    )
    assert active["reason"] == "ValidMetricFound", active
    # The HPA's own first scale (1 -> 2 replicas at creation) opened a scale-up policy period;
    # let it pass so the figures measure the metrics pipeline, not that rate limit.
    waiting.first(
        view.scale_up_period_passed,
        timeout=view.scale_up_period_s() + 30,
        what="the HPA's scale-up policy period to pass",
        interval=POLL_SECONDS,
    )
    figures["replicas_before"] = view.replicas()[0]


def test_gold_latency_scales_the_deployment_up_and_back_down(
    cluster: cluster_setup.Cluster,
    api: Any,
    namespace: str,
    operator: operator_process.RunningOperator,
    monitoring: Monitoring,
) -> None:
    monitoring.unregister_adapter()
    view = _View(cluster, api, namespace)
    spec = _inference_service(namespace, scale_down_stabilization="20s")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=spec)
    waiting.first(
        lambda: view.replicas()[1] >= 2,
        timeout=120,
        what="the gold tier's 2 replicas",
        interval=POLL_SECONDS,
    )
    missing = waiting.first(
        lambda: (
            view.condition("MetricsAvailable").get("status") == "False"
            and view.condition("MetricsAvailable")
        ),
        timeout=60,
        what="MetricsAvailable=False before any custom metrics API exists",
        interval=POLL_SECONDS,
    )
    assert missing["reason"] == conditions.Reason.METRICS_API_MISSING.value, missing

    figures: dict[str, float] = {}
    initial = behaviour.Behaviour(latency_ms=LOW_LATENCY_MS)
    with (
        _simulated_pods(api, namespace, monitoring.scraper, initial) as simulators,
        _load(simulators, STEADY_LOAD) as finish_load,
    ):
        monitoring.start_adapter()
        registered = time.monotonic()
        monitoring.register_adapter()
        figures["apiservice_available_s"] = _seconds(registered)
        available = waiting.first(
            lambda: (
                view.condition("MetricsAvailable").get("status") == "True"
                and view.condition("MetricsAvailable")
            ),
            timeout=90,
            what="MetricsAvailable=True once the APIService is Available",
            interval=POLL_SECONDS,
        )
        figures["metrics_available_s"] = _seconds(registered)
        assert available["reason"] == conditions.Reason.AS_EXPECTED.value, available
        assert prometheus_adapter.API_SERVICE in available["message"]

        _ready_to_scale(view, figures)
        assert figures["replicas_before"] == 2
        low = view.custom_metric()
        assert all(value < TARGET_MS for value in low.values()), low
        keda = monitoring.scraper.query(
            autoscaling.promql("latency-p95", namespace=namespace, name=NAME)
        )
        assert keda and float(keda[0]["value"][1]) < TARGET_MS, keda
        # Silver's metric from the same pipeline (load has run for over a rate window by now),
        # and how many targets each pod got: prometheus-operator semantics, shown not judged.
        rates = view.custom_metric(autoscaling.RPS_METRIC)
        figures["load_rps_per_pod"] = STEADY_LOAD.rate / len(rates)
        figures["adapter_rps_per_pod"] = round(_average(rates), 2)
        pods = [t["labels"]["pod"] for t in monitoring.scraper.active_targets()]
        figures["scrape_targets_per_pod"] = len(pods) / len(set(pods))

        simulators.set_behaviour({"latencyMs": HIGH_LATENCY_MS})
        switched = time.monotonic()
        waiting.first(
            lambda: _average(view.custom_metric()) > TARGET_MS,
            timeout=120,
            what="the pods' average of the custom metric (what the HPA compares) to cross the target",
            interval=POLL_SECONDS,
        )
        crossed = time.monotonic()
        figures["switch_to_crossing_s"] = _seconds(switched)
        waiting.first(
            lambda: view.replicas()[0] > 2,
            timeout=120,
            what="the HPA to scale up",
            interval=POLL_SECONDS,
        )
        figures["crossing_to_scale_up_s"] = _seconds(crossed)
        waiting.first(
            lambda: view.replicas()[1] > 2,
            timeout=120,
            what="the new replica ready",
            interval=POLL_SECONDS,
        )
        figures["crossing_to_ready_s"] = _seconds(crossed)
        figures["replicas_after_scale_up"] = view.replicas()[0]

        simulators.set_behaviour({"latencyMs": LOW_LATENCY_MS})
        lowered = time.monotonic()
        waiting.first(
            lambda: (m := view.custom_metric()) and all(v < TARGET_MS for v in m.values()),
            timeout=180,
            what="the custom metric to fall below the target",
            interval=POLL_SECONDS,
        )
        figures["lowering_to_below_target_s"] = _seconds(lowered)
        waiting.first(
            lambda: view.replicas()[0] == 2,
            timeout=240,
            what="the HPA to scale down",
            interval=POLL_SECONDS,
        )
        figures["lowering_to_scale_down_s"] = _seconds(lowered)
        report = finish_load()
    print(f"\nautoscaling loop figures: {json.dumps(figures)}\nload: {report}")
    assert report.by_status.get(200, 0) > 0
    assert set(report.by_status) <= {200}, report


def test_more_replicas_bring_a_load_spikes_latency_back_under_the_target(
    cluster: cluster_setup.Cluster,
    api: Any,
    namespace: str,
    operator: operator_process.RunningOperator,
    monitoring: Monitoring,
) -> None:
    monitoring.register_adapter()
    view = _View(cluster, api, namespace)
    # The tier's own 300 s scale-down stabilisation: a latency target is not proportional to
    # load, so a short window would hand the third replica back as soon as latency recovers.
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=_inference_service(namespace, scale_down_stabilization=None),
    )
    waiting.first(
        lambda: view.replicas()[1] >= 2,
        timeout=120,
        what="the gold tier's 2 replicas",
        interval=POLL_SECONDS,
    )
    figures: dict[str, float] = {}
    queueing = behaviour.Behaviour(latency_ms=SERVICE_MS, concurrency=1)
    with _simulated_pods(api, namespace, monitoring.scraper, queueing) as simulators:
        with _load(simulators, STEADY_LOAD) as finish_steady:
            _ready_to_scale(view, figures)
            steady = view.custom_metric()
            assert _average(steady) < TARGET_MS, steady
            steady_report = finish_steady()
        with _load(simulators, SPIKE_LOAD) as finish_spike:
            spiked = time.monotonic()
            waiting.first(
                lambda: _average(view.custom_metric()) > TARGET_MS,
                timeout=120,
                what="the spike's queueing to push p95 past the target",
                interval=POLL_SECONDS,
            )
            figures["spike_to_crossing_s"] = _seconds(spiked)
            crossed = time.monotonic()
            waiting.first(
                lambda: view.replicas()[0] > 2,
                timeout=120,
                what="the HPA to scale up",
                interval=POLL_SECONDS,
            )
            figures["crossing_to_scale_up_s"] = _seconds(crossed)
            waiting.first(
                lambda: view.replicas()[1] > 2,
                timeout=120,
                what="the new replica ready",
                interval=POLL_SECONDS,
            )
            figures["replicas_after_scale_up"] = view.replicas()[0]
            scaled = time.monotonic()
            recovered: dict[str, float] = waiting.first(
                lambda: (
                    (m := view.custom_metric()) and len(m) > 2 and _average(m) < TARGET_MS and m
                ),
                timeout=240,
                what="p95 back under the target with the same load on more replicas",
                interval=POLL_SECONDS,
            )
            figures["scale_up_to_recovered_s"] = _seconds(scaled)
            figures["p95_recovered_ms"] = round(_average(recovered), 1)
            assert view.replicas()[0] == figures["replicas_after_scale_up"]
            spike_report = finish_spike()
    print(
        f"\nclosed loop figures: {json.dumps(figures)}\n"
        f"steady load: {steady_report}\nspike load: {spike_report}"
    )
    assert set(steady_report.by_status) <= {200}, steady_report
    assert set(spike_report.by_status) <= {200}, spike_report
