"""What prometheus-operator would scrape for a ServiceMonitor, aimed at the simulators.

Owns: turning a ServiceMonitor and the Services, EndpointSlices and Pods it reaches into
Prometheus file-discovery target groups with the labels prometheus-operator gives them
(``namespace``, ``service``, ``pod``, ``container``, ``endpoint``, ``job``, and each
``podTargetLabels`` entry sanitised, e.g. ``kubeinfer_io_inferenceservice``), the endpoint's path
and interval; and ``Follower``, a thread that keeps a simulator fleet and the target file in step
with the pods the Deployment really runs (re-reading pods every interval, so a pod relabelled
in place shows its new labels in the next target file). Each pod's address is replaced by its
simulator's: KWOK pod IPs are API fields only, nothing listens there.

Where the pods come from (``Follower(endpoints=...)``):

- ``"slices"`` (default): the EndpointSlices the endpointslice controller wrote; simulators take
  free 127.0.0.x addresses.
- ``"selector"``: for pods on a node with a loopback ``podCIDR`` (``gpu_nodes.GpuNodeSpec``),
  whose IPs are 127.x. The API server refuses loopback addresses in EndpointSlices, so the
  endpointslice controller writes none for them; the Follower plays that controller instead
  (``selector_slices``: pods matching each Service's ``spec.selector`` that have an IP, are not
  terminating and have not finished) and has each simulator listen on its pod's own IP and the
  fleet's port, so a caller that reads pod IPs from the API server reaches it. It also plays the
  kubelet there: every running pod with an IP gets its simulator, whether a Service selects it
  or not (an in-place server is in no Service until the operator has loaded a model into it);
  the target file still lists only the Services' endpoints.

Must not: write to the API server, or scrape anything itself (Prometheus does).
"""

from __future__ import annotations

import logging
import re
import threading
import types
from collections.abc import Mapping, Sequence
from typing import Any

import kubernetes

from e2e.harness import prometheus
from e2e.simulator import fleet, server

log = logging.getLogger(__name__)

FOLLOW_INTERVAL_SECONDS = 1.0
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ENDPOINT_SOURCES = ("slices", "selector")
_FINISHED_PHASES = ("Succeeded", "Failed")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def sanitize(label: str) -> str:
    """Prometheus' label-name sanitising, as prometheus-operator applies to podTargetLabels."""
    return _INVALID_LABEL_CHARS.sub("_", label)


def _matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """``matchLabels`` and ``matchExpressions`` (In, NotIn, Exists, DoesNotExist)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        present = key in labels
        if (
            (operator == "In" and labels.get(key) not in values)
            or (operator == "NotIn" and present and labels[key] in values)
            or (operator == "Exists" and not present)
            or (operator == "DoesNotExist" and present)
        ):
            return False
    return True


def _port_of(service: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    ports = service.get("spec", {}).get("ports") or []
    return next((dict(p) for p in ports if p.get("name") == name), None)


def target_groups(
    monitor: Mapping[str, Any],
    *,
    services: Sequence[Mapping[str, Any]],
    slices: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    addresses: Mapping[str, str],
) -> list[dict[str, Any]]:
    """File-discovery groups for every (endpoint, Service, pod) the ServiceMonitor reaches whose
    pod has a simulator in ``addresses`` (pod name -> ``host:port``)."""
    namespace = monitor["metadata"]["namespace"]
    spec = monitor["spec"]
    pods_by_name = {p["metadata"]["name"]: p for p in pods}
    selected = [
        s
        for s in services
        if s["metadata"]["namespace"] == namespace
        and _matches(spec.get("selector") or {}, s["metadata"].get("labels") or {})
    ]
    groups: list[dict[str, Any]] = []
    for endpoint in spec.get("endpoints") or []:
        interval = endpoint.get("interval", "30s")
        for service in sorted(selected, key=lambda s: s["metadata"]["name"]):
            service_name = service["metadata"]["name"]
            if _port_of(service, endpoint["port"]) is None:
                continue
            for pod_name in sorted(_slice_pods(slices, service_name)):
                pod = pods_by_name.get(pod_name)
                if pod is None or pod_name not in addresses:
                    continue
                labels = {
                    "__metrics_path__": endpoint.get("path", "/metrics"),
                    "__scrape_interval__": interval,
                    "__scrape_timeout__": endpoint.get("scrapeTimeout", interval),
                    "namespace": namespace,
                    "service": service_name,
                    "pod": pod_name,
                    "container": _container_with_port(pod, endpoint["port"]),
                    "endpoint": endpoint["port"],
                    "job": service_name,
                }
                pod_labels = pod["metadata"].get("labels") or {}
                for key in spec.get("podTargetLabels") or []:
                    if key in pod_labels:
                        labels[sanitize(key)] = pod_labels[key]
                groups.append({"targets": [addresses[pod_name]], "labels": labels})
    return groups


def _slice_pods(slices: Sequence[Mapping[str, Any]], service: str) -> set[str]:
    names: set[str] = set()
    for endpoint_slice in slices:
        if (endpoint_slice["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) != service:
            continue
        for endpoint in endpoint_slice.get("endpoints") or []:
            ref = endpoint.get("targetRef") or {}
            if ref.get("kind") == "Pod":
                names.add(ref["name"])
    return names


def _running_ip(pod: Mapping[str, Any]) -> str | None:
    """The IP of a pod that has one, is not terminating and has not finished, else None."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp") or status.get("phase") in _FINISHED_PHASES:
        return None
    ip: str | None = status.get("podIP") or None
    return ip


def selector_slices(
    services: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The EndpointSlices the endpointslice controller would write: per Service with a
    ``spec.selector``, one endpoint per pod whose labels match it, that has an IP, is not
    terminating and has not finished (phase Succeeded or Failed)."""
    slices = []
    for service in services:
        selector = service.get("spec", {}).get("selector") or {}
        if not selector:
            continue  # a Service without a selector has its endpoints written by hand
        endpoints = [
            {
                "addresses": [ip],
                "targetRef": {
                    "kind": "Pod",
                    "name": pod["metadata"]["name"],
                    "namespace": pod["metadata"].get("namespace"),
                },
            }
            for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"]))
            if _matches({"matchLabels": selector}, pod["metadata"].get("labels") or {})
            and (ip := _running_ip(pod))
        ]
        name = service["metadata"]["name"]
        slices.append(
            {
                "metadata": {"name": name, "labels": {SERVICE_NAME_LABEL: name}},
                "endpoints": endpoints,
            }
        )
    return slices


def _container_with_port(pod: Mapping[str, Any], port_name: str) -> str:
    for container in pod.get("spec", {}).get("containers") or []:
        if any(p.get("name") == port_name for p in container.get("ports") or []):
            return str(container["name"])
    return ""


class Follower:
    """Keeps ``fleet`` serving one simulator per pod the ServiceMonitor reaches, and Prometheus'
    target file naming them, until stopped. ``with Follower(...):`` runs it in a thread.
    ``endpoints``: ``"slices"`` or ``"selector"`` (see the module docstring)."""

    def __init__(
        self,
        api: Any,
        *,
        namespace: str,
        monitor_name: str,
        simulators: fleet.Fleet,
        scraper: prometheus.Prometheus,
        endpoints: str = "slices",
    ) -> None:
        if endpoints not in ENDPOINT_SOURCES:
            raise ValueError(f"endpoints must be one of {ENDPOINT_SOURCES}, got {endpoints!r}")
        self.endpoints = endpoints
        self._core: Any = kubernetes.client.CoreV1Api(api)
        self._discovery: Any = kubernetes.client.DiscoveryV1Api(api)
        self._custom: Any = kubernetes.client.CustomObjectsApi(api)
        self._api = api
        self.namespace = namespace
        self.monitor_name = monitor_name
        self.simulators = simulators
        self.scraper = scraper
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scrape-follower", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Follower:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.scraper.write_targets(self._file_name, [])  # its simulators are about to stop

    @property
    def _file_name(self) -> str:
        return f"{self.namespace}-{self.monitor_name}"

    def _as_dicts(self, listing: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._api.sanitize_for_serialization(listing)["items"]
        return items

    def step(self) -> int:
        """Read the cluster once, sync the fleet and the target file; the number of targets."""
        try:
            monitor = self._custom.get_namespaced_custom_object(
                "monitoring.coreos.com", "v1", self.namespace, "servicemonitors", self.monitor_name
            )
        except kubernetes.client.ApiException as err:
            if err.status == 404:
                return 0
            raise
        services = self._as_dicts(self._core.list_namespaced_service(self.namespace))
        pods = [
            p
            for p in self._as_dicts(self._core.list_namespaced_pod(self.namespace))
            if not p["metadata"].get("deletionTimestamp")
        ]
        hosts: dict[str, str] | None = None
        if self.endpoints == "selector":
            slices = selector_slices(services, pods)
            # the kubelet's part: every running pod runs its server, in a Service or not (a
            # server that serves no model yet is in none until something loads one into it)
            hosts = {p["metadata"]["name"]: ip for p in pods if (ip := _running_ip(p))}
            served = set(hosts)
        else:
            slices = self._as_dicts(self._discovery.list_namespaced_endpoint_slice(self.namespace))
            served = set().union(
                *(_slice_pods(slices, s["metadata"]["name"]) for s in services)
            ) & {p["metadata"]["name"] for p in pods}
        self.simulators.sync(served, hosts=hosts)
        groups = target_groups(
            monitor,
            services=services,
            slices=slices,
            pods=pods,
            addresses=self.simulators.addresses(),
        )
        self.scraper.write_targets(self._file_name, groups)
        return len(groups)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except (
                kubernetes.client.ApiException,
                OSError,
                fleet.FleetError,
                server.AddressError,
            ) as err:
                self.error = err
                log.warning("Scrape follower step failed", extra={"error": str(err)})
            self._stop.wait(FOLLOW_INTERVAL_SECONDS)
