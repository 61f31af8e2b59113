"""Benchmark: N InferenceServices applied at once converge to Ready on the real control plane.

Starts the e2e control plane with enough KWOK nodes for the pods, runs the operator as its
ServiceAccount, applies N CPU InferenceServices at once, and reports the time until every one is
Ready for its generation, the operator's peak RSS, and the API requests it sent per object (from
its own ``kubeinfer_api_requests_total``). The issue's target is 1,000 in under 120 s on a 2-core
machine.

"At once" means the way Argo CD syncs a directory: server-side applies in flight concurrently
(its controller bounds them with ``--kubectl-parallelism-limit``); ``--apply parallel`` keeps 16 in
flight. ``--apply kubectl`` sends them through one ``kubectl apply --server-side`` instead, which
applies the objects one after the other, for comparison.

    python e2e/bench_scale.py --count 1000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import kubernetes
import yaml

sys.path[:0] = [
    str(pathlib.Path(__file__).resolve().parents[1]),
    str(pathlib.Path(__file__).resolve().parents[1] / "operator"),
]

from e2e.harness import cluster as cluster_setup  # noqa: E402
from e2e.harness import gpu_nodes, metrics_text, operator_process, processes  # noqa: E402
from kubeinfer.kube import client as kube_client  # noqa: E402

PODS_PER_NODE = 250
NAMESPACE = "bench"


def manifests(count: int) -> list[dict[str, Any]]:
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
    return docs


async def apply_concurrently(api: Any, docs: list[dict[str, Any]]) -> None:
    """Server-side apply every document, ``kube_client.CONCURRENCY`` requests in flight."""
    kube = kube_client.Kube(api, field_manager="bench")
    await asyncio.gather(*(kube.apply(doc) for doc in docs))


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


def counter_by(metrics_url: str, name: str, label: str) -> dict[str, float]:
    """One of the operator's counters, summed by one label."""
    return metrics_text.sum_by(metrics_text.scrape(metrics_url), name, label)


def settled(
    read: Callable[[], dict[str, float]], quiet: float = 5.0, limit: float = 120.0
) -> dict[str, float]:
    """``read()`` once it has stopped changing for ``quiet`` seconds (or after ``limit``)."""
    deadline = time.monotonic() + limit
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(1.0)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    return last


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(supervisors: list[processes.Supervisor]) -> dict[str, float]:
    """CPU seconds used so far by every supervised process, by name."""
    return {
        p.name: cpu_seconds(p.pid)
        for supervisor in supervisors
        for p in supervisor.processes
        if p.returncode is None
    }


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
    parser.add_argument(
        "--apply",
        choices=("parallel", "kubectl"),
        default="parallel",
        help="concurrent server-side applies (default) or one sequential kubectl apply",
    )
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
            docs = manifests(args.count)
            watched = [cluster.control_plane.supervisor, supervisor]
            cpu_before = cpu_by_process(watched)
            started = time.monotonic()
            if args.apply == "parallel":
                asyncio.run(apply_concurrently(api, docs))
            else:
                cluster.kubectl(
                    "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(docs), timeout=600
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
            cpu_used = {
                name: seconds - cpu_before.get(name, 0.0)
                for name, seconds in cpu_by_process(watched).items()
            }
            metrics_url = op.liveness_url.replace("/healthz", "/metrics")
            # Reconciles still posting the Events of the write that made their object Ready
            # finish after it; count requests once the operator has gone quiet.
            sent = settled(lambda: counter_by(metrics_url, "kubeinfer_api_requests_total", "verb"))
            reconciles = counter_by(metrics_url, "kubeinfer_reconcile_total", "kind")
            rss = peak_rss_mib(op.process.pid)
            events = kubernetes.client.CoreV1Api(api).list_namespaced_event(NAMESPACE).items
    total = sum(sent.values())
    print()
    print(f"InferenceServices          {args.count}")
    print(f"apply ({args.apply}) took{' ' * (13 - len(args.apply))}{applied:.1f} s")
    print(f"all Ready after            {elapsed:.1f} s   (target < 120 s for 1,000)")
    print(f"operator peak RSS          {rss:.0f} MiB")
    print(
        f"API requests per object    {total / args.count:.1f}   "
        + ", ".join(f"{verb} {n / args.count:.1f}" for verb, n in sorted(sent.items()))
    )
    print(f"reconciles per object      {reconciles.get('InferenceService', 0.0) / args.count:.1f}")
    reporters = collections.Counter(
        e.reporting_component or (e.source and e.source.component) or "?" for e in events
    )
    reasons = collections.Counter(e.reason or "?" for e in events)
    print(
        f"Events per object          {len(events) / args.count:.1f}   "
        + ", ".join(f"{who} {n / args.count:.1f}" for who, n in sorted(reporters.items()))
    )
    print("  by reason: " + ", ".join(f"{r} {n}" for r, n in reasons.most_common()))
    print("CPU seconds used until Ready, by process (2 cores give 2 s per second):")
    for name, seconds in sorted(cpu_used.items(), key=lambda item: -item[1]):
        print(f"  {name:<26} {seconds:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
