"""Pods with loopback IPs: simulators listening on them, called and scraped by pod IP.

Covers: a KWOK node with a 127.x ``podCIDR`` gives the pods bound to it IPs in that range; the
Follower in selector mode (the API server refuses loopback EndpointSlice addresses, so the
endpointslice controller writes none) serves each pod's simulator on the pod's own IP and
Triton's port, where Triton's model-control API answers as an operator calling pods by IP would
see it; the module's Prometheus scrapes each pod at its IP with the pod's labels, and a pod
relabelled in place (as an in-place reload does) carries the new label in the next target file,
in Prometheus' targets and on its series, with Triton's counters labelled by the loaded version.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.request
from typing import Any

import kubernetes
import pytest
import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import gpu_nodes, prometheus, scrape_targets, waiting
from e2e.simulator import fleet, server
from kubeinfer.planning.labels import MODEL_VERSION_LABEL
from kubeinfer.planning.serving import runtimes

pytestmark = pytest.mark.e2e

NAME = "chat"
PORT = runtimes.RUNTIMES["triton"].port


def _objects(node: str) -> list[dict[str, Any]]:
    """A two-replica Deployment on ``node``, its Service and a ServiceMonitor for it."""
    selector = {"app": NAME}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": NAME},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": {**selector, MODEL_VERSION_LABEL: "1"}},
                    "spec": {
                        "nodeSelector": {"kubernetes.io/hostname": node},
                        "tolerations": [{**gpu_nodes.LOOPBACK_TAINT, "operator": "Equal"}],
                        "containers": [
                            {
                                "name": "server",
                                "image": "registry.invalid/tritonserver:1",
                                "ports": [{"name": "http", "containerPort": PORT}],
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": NAME, "labels": selector},
            "spec": {"selector": selector, "ports": [{"name": "http", "port": PORT}]},
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": NAME},
            "spec": {
                "selector": {"matchLabels": selector},
                "podTargetLabels": [MODEL_VERSION_LABEL],
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "5s"}],
            },
        },
    ]


def _post(url: str, body: dict[str, Any] | None = None) -> int:
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def _targets(scraper: prometheus.Prometheus) -> dict[str, dict[str, Any]]:
    """Prometheus' active targets of this test, by pod."""
    return {t["labels"]["pod"]: t for t in scraper.active_targets() if "pod" in t["labels"]}


def test_pods_on_a_loopback_pod_cidr_are_served_called_and_scraped_at_their_ips(
    cluster: cluster_setup.Cluster,
    api: Any,
    namespace: str,
    scraper: prometheus.Prometheus,
    loopback_node: gpu_nodes.GpuNodeSpec,
) -> None:
    node, network = loopback_node.name, ipaddress.ip_network(str(loopback_node.pod_cidr))
    core: Any = kubernetes.client.CoreV1Api(api)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(_objects(node)))

    def pod_ips() -> dict[str, str] | None:
        pods = core.list_namespaced_pod(namespace, label_selector=f"app={NAME}").items
        ips = {p.metadata.name: p.status.pod_ip for p in pods if p.status.pod_ip}
        return ips if len(ips) == 2 else None

    ips: dict[str, str] = waiting.first(pod_ips, what="two pods with IPs", timeout=90)
    assert all(ipaddress.ip_address(ip) in network for ip in ips.values()), ips
    assert len(set(ips.values())) == len(ips), f"one IP per pod: {ips}"

    identity = server.Identity("triton", NAME, versions=(1, 2), default_version=1)
    with (
        fleet.Fleet(identity, port=PORT) as simulators,
        scrape_targets.Follower(
            api,
            namespace=namespace,
            monitor_name=NAME,
            simulators=simulators,
            scraper=scraper,
            endpoints="selector",
        ) as follower,
    ):
        waiting.until(
            lambda: simulators.addresses() == {pod: f"{ip}:{PORT}" for pod, ip in ips.items()},
            what="a simulator on each pod's IP",
            timeout=60,
            on_timeout=lambda: f"{simulators.addresses()} (follower error {follower.error!r})",
        )
        reloaded, kept = sorted(ips)
        # What an operator reloading in place does: load by pod IP, then relabel the pod.
        load = {"version_policy": {"specific": {"versions": [2]}}}
        base = f"http://{ips[reloaded]}:{PORT}"
        assert (
            _post(
                f"{base}/v2/repository/models/{NAME}/load",
                {"parameters": {"config": json.dumps(load)}},
            )
            == 200
        )
        with urllib.request.urlopen(f"{base}/v2/models/{NAME}/versions/2/ready", timeout=10) as r:
            assert r.status == 200
        completion = {"model": NAME, "prompt": "x", "max_tokens": 1}
        for ip in ips.values():
            assert _post(f"http://{ip}:{PORT}/v1/completions", completion) == 200
        core.patch_namespaced_pod(
            reloaded, namespace, {"metadata": {"labels": {MODEL_VERSION_LABEL: "2"}}}
        )

        target_file = scraper.targets_dir / f"{namespace}-{NAME}.json"

        def relabelled_in_file() -> bool:
            groups = json.loads(target_file.read_text(encoding="utf-8"))
            versions = {
                g["labels"]["pod"]: g["labels"]["kubeinfer_io_model_version"] for g in groups
            }
            return versions == {reloaded: "2", kept: "1"}

        waiting.until(relabelled_in_file, what="the new label in the target file", timeout=30)

        def scraped_with_new_label() -> bool:
            targets = _targets(scraper)
            return set(targets) == set(ips) and all(
                t["health"] == "up"
                and t["scrapeUrl"] == f"http://{ips[pod]}:{PORT}/metrics"
                and t["labels"]["kubeinfer_io_model_version"] == ("2" if pod == reloaded else "1")
                for pod, t in targets.items()
            )

        waiting.until(
            scraped_with_new_label,
            what="Prometheus scraping each pod at its IP with its current label",
            timeout=90,
            interval=1.0,
            on_timeout=lambda: json.dumps(_targets(scraper), indent=1),
        )

        def counted_by_version() -> set[tuple[str, str, str]]:
            series = scraper.query(f'nv_inference_count{{namespace="{namespace}"}}')
            return {
                (
                    s["metric"]["pod"],
                    s["metric"]["version"],
                    s["metric"]["kubeinfer_io_model_version"],
                )
                for s in series
            }

        found = waiting.first(
            lambda: (
                counted_by_version() >= {(reloaded, "2", "2"), (kept, "1", "1")}
                and counted_by_version()
            ),
            what="Triton's counter labelled with the loaded version and the pod's label",
            timeout=60,
            interval=1.0,
        )
        assert (reloaded, "1", "2") not in found, "the reloaded pod answered only as version 2"
        assert simulators.loads()[reloaded] == [
            {"version": 1, "outcome": "Loaded", "via": "startup", "error": None, "config": None},
            {"version": 2, "outcome": "Loaded", "via": "api", "error": None, "config": load},
        ]
