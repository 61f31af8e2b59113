"""Benchmark: N InferenceServices applied at once converge to Ready on the real control plane.

Starts the e2e control plane with enough KWOK nodes for the pods, runs the operator as its
ServiceAccount, applies N CPU InferenceServices in one server-side apply, and reports the time
until every one is Ready for its generation, the operator's peak RSS, and the API requests it
sent per object (from its own ``kubeinfer_api_requests_total``). The issue's target is 1,000 in
under 120 s on a 2-core machine.

    python e2e/bench_scale.py --count 1000
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import re
import sys
import tempfile
import time
import urllib.request
from typing import Any

import kubernetes
import yaml

sys.path[:0] = [
    str(pathlib.Path(__file__).resolve().parents[1]),
    str(pathlib.Path(__file__).resolve().parents[1] / "operator"),
]

from e2e.harness import cluster as cluster_setup  # noqa: E402
from e2e.harness import gpu_nodes, operator_process, processes  # noqa: E402

PODS_PER_NODE = 250
NAMESPACE = "bench"


def manifests(count: int) -> str:
    """N small CPU InferenceServices (Service-only traffic, bronze tier).

    Their autoscaler is a KEDA ScaledObject, inert here (no KEDA operator runs): with the HPA
    engine, 1,000 HPAs failing to read metrics every 5 s (the harness's short HPA sync period)
    would load the API server more than the operator does, and measure the cluster instead.
    """
    docs = [
        {
            "apiVersion": "kubeinfer.io/v1alpha1",
            "kind": "InferenceService",
            "metadata": {"name": f"model-{i:04d}", "namespace": NAMESPACE},
            "spec": {
                "model": {
                    "name": "tiny",
                    "version": "v1",
                    "uri": "hf://org/tiny",
                    "runtime": "generic",
                },
                "resources": {"gpus": 0, "cpu": "10m", "memory": "16Mi", "sharedMemory": "1Mi"},
                "sla": {"tier": "bronze"},
                "autoscaling": {"engine": "keda"},
                "traffic": {"provider": "none"},
            },
        }
        for i in range(count)
    ]
    return yaml.safe_dump_all(docs)


def ready_count(custom: Any) -> int:
    """How many InferenceServices report Ready=True for their current generation."""
    items = custom.list_namespaced_custom_object(
        "kubeinfer.io", "v1alpha1", NAMESPACE, "inferenceservices"
    )["items"]
    done = 0
    for item in items:
        status = item.get("status") or {}
        gen = item["metadata"].get("generation")
        if status.get("observedGeneration") != gen:
            continue
        if any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
        ):
            done += 1
    return done


def requests_sent(metrics_url: str) -> dict[str, float]:
    """The operator's API requests by verb."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for verb, value in re.findall(
        r'^kubeinfer_api_requests_total\{[^}]*verb="([^"]+)"[^}]*\} ([0-9.e+]+)$', text, flags=re.M
    ):
        totals[verb] = totals.get(verb, 0.0) + float(value)
    return totals


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size (VmHWM) of a process, in MiB."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    nodes = [
        gpu_nodes.GpuNodeSpec(name=f"bench-{i}", pods=PODS_PER_NODE)
        for i in range(args.count // PODS_PER_NODE + 2)
    ]
    with (
        tempfile.TemporaryDirectory(prefix="kubeinfer-bench-") as tmp,
        cluster_setup.running(pathlib.Path(tmp), nodes=nodes) as cluster,
    ):
        cluster.kubeinfer_crds  # noqa: B018 - installs them
        kubeconfig = cluster.operator_kubeconfig
        cluster.kubectl("create", "namespace", NAMESPACE)
        with processes.Supervisor() as supervisor, contextlib.closing(cluster.api_client()) as api:
            op = operator_process.start(
                supervisor, kubeconfig=kubeconfig, log_path=pathlib.Path(tmp) / "operator.log"
            )
            custom = kubernetes.client.CustomObjectsApi(api)
            started = time.monotonic()
            cluster.kubectl(
                "apply", "--server-side", "-f", "-", stdin=manifests(args.count), timeout=600
            )
            applied = time.monotonic() - started
            last = -1
            while (done := ready_count(custom)) < args.count:
                if time.monotonic() - started > args.timeout:
                    print(f"timed out: {done}/{args.count} Ready", file=sys.stderr)
                    return 1
                if done != last:
                    print(
                        f"{time.monotonic() - started:6.1f}s  {done}/{args.count} Ready", flush=True
                    )
                    last = done
                time.sleep(2)
            elapsed = time.monotonic() - started
            sent = requests_sent(op.liveness_url.replace("/healthz", "/metrics"))
            rss = peak_rss_mib(op.process.pid)
    total = sum(sent.values())
    print()
    print(f"InferenceServices          {args.count}")
    print(f"apply (kubectl) took       {applied:.1f} s")
    print(f"all Ready after            {elapsed:.1f} s   (target < 120 s for 1,000)")
    print(f"operator peak RSS          {rss:.0f} MiB")
    print(
        f"API requests per object    {total / args.count:.1f}   "
        + ", ".join(f"{verb} {n / args.count:.1f}" for verb, n in sorted(sent.items()))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
