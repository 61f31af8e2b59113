"""``make dev``: a real control plane with fake GPU nodes and the operator in the foreground.

Owns: the developer loop's command line and what it prints. Builds (or reuses) the binaries,
starts the control plane with GPU nodes, installs third-party and kubeinfer CRDs, runs
``kubeinfer run`` as the operator's ServiceAccount with its log streamed here, one
``kubeinfer agent`` per GPU node replaying a recorded machine through the fake NVML (inject
faults by appending ``xid <gpu> <n>`` to ``<run dir>/agents/<node>.faults``), applies
``manifests/examples/*.yaml``, and prints how to talk to the cluster. Ctrl-C stops everything.
The operator validates LogPolicy configurations with the log agent built by
``e2e.harness.otelcol`` (``KUBEINFER_COLLECTOR``; cached, built on first use in about five
minutes); without it (``--no-collector``, or no Go toolchain) LogPolicies show
``ConfigValid=Unknown, reason=ValidatorUnavailable``.

    python -m e2e.dev [--gpu-nodes 2] [--gpus-per-node 8] [--no-operator] [--no-examples]
                      [--fake-nvml RECORDING | --no-agents] [--no-collector]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import pathlib
import sys
import time
from collections.abc import Sequence

import yaml

from e2e.harness import cluster as cluster_setup
from e2e.harness import (
    gomodules,
    gpu_agents,
    gpu_nodes,
    kubectl,
    logfmt,
    operator_process,
    otelcol,
    processes,
    toolchain,
    versions,
)
from kubeinfer.controllers import log_validation

log = logging.getLogger("e2e.dev")  # not __name__: this module runs as __main__

EXAMPLES_DIR = versions.REPO_ROOT / "manifests" / "examples"


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m e2e.dev", description=__doc__.split("\n")[0])
    parser.add_argument("--gpu-nodes", type=int, default=2, help="fake GPU nodes (default 2)")
    parser.add_argument("--gpus-per-node", type=int, default=8, help="GPUs each (default 8)")
    parser.add_argument(
        "--run-dir", type=pathlib.Path, help="logs/certs/kubeconfigs (default: temp)"
    )
    parser.add_argument("--no-operator", action="store_true", help="do not run kubeinfer run")
    parser.add_argument("--no-examples", action="store_true", help="skip manifests/examples")
    parser.add_argument(
        "--fake-nvml",
        type=pathlib.Path,
        default=gpu_agents.RECORDINGS / "pcie-a100x8-nvlink-pairs-2socket.txt",
        help="recording the GPU node agents replay",
    )
    parser.add_argument("--no-agents", action="store_true", help="run no GPU node agents")
    parser.add_argument(
        "--no-collector",
        action="store_true",
        help="do not build the log agent (LogPolicies then show ValidatorUnavailable)",
    )
    return parser.parse_args(argv)


def _collector_env(skip: bool) -> dict[str, str]:
    """``KUBEINFER_COLLECTOR`` for the operator: the log agent, built on first use."""
    if skip:
        return {}
    try:
        binary = otelcol.ensure_collector()
    except (otelcol.OtelcolError, gomodules.GoToolError) as err:
        log.error(
            "Failed to build the log agent; LogPolicies will show ValidatorUnavailable",
            extra={"error": str(err)},
        )
        return {}
    log.info("Log agent ready", extra={"binary": str(binary)})
    return {log_validation.COLLECTOR_ENV: str(binary)}


def _instructions(cluster: cluster_setup.Cluster, bin_dir: pathlib.Path) -> str:
    config = cluster.kubeconfig
    return f"""
kubeinfer dev cluster is up ({cluster.control_plane.server}, logs in {cluster.run_dir / "logs"})

    export KUBECONFIG={config}
    export PATH={bin_dir}:$PATH

    kubectl get nodes -L nvidia.com/gpu.product,nvidia.com/gpu.count
    kubectl get kubeinfer -A
    kubectl get inferenceservices,gpupools -A -o wide
    kubectl apply -f manifests/examples/
    kubectl get events -A --sort-by=.lastTimestamp

Ctrl-C stops everything.
"""


def _follow(process: processes.Process, out: pathlib.Path, *, poll: float = 0.3) -> None:
    """Stream ``out`` to stdout until ``process`` exits (or Ctrl-C)."""
    with out.open("r", encoding="utf-8", errors="replace") as handle:
        while True:
            chunk = handle.read()
            if chunk:
                sys.stdout.write(chunk)
                sys.stdout.flush()
            elif process.returncode is not None:
                log.error("Operator exited", extra={"status": process.returncode})
                return
            else:
                time.sleep(poll)


def _apply_examples(admin: kubectl.Kubectl) -> None:
    examples = sorted(EXAMPLES_DIR.glob("*.yaml"))
    if not examples:
        return
    try:
        admin.apply(*examples)
    except kubectl.KubectlError as err:
        log.error("Failed to apply examples", extra={"error": str(err)})
        return
    log.info("Applied examples", extra={"count": len(examples), "dir": "manifests/examples"})


def _idle() -> None:
    while True:
        time.sleep(3600)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the developer cluster until Ctrl-C."""
    args = _arguments(argv)
    logfmt.setup()
    binaries = toolchain.ensure_binaries()
    collector = {} if args.no_operator else _collector_env(args.no_collector)
    fleet = gpu_nodes.fleet(args.gpu_nodes, gpus=args.gpus_per_node)
    with (
        contextlib.suppress(KeyboardInterrupt),
        cluster_setup.running(args.run_dir, nodes=fleet) as cluster,
    ):
        try:
            cluster.kubeinfer_crds  # noqa: B018 - installs on first access
        except (kubectl.KubectlError, yaml.YAMLError) as err:
            log.error("Failed to install kubeinfer CRDs", extra={"error": str(err)})
        print(_instructions(cluster, binaries.directory), flush=True)
        if args.no_operator:
            if not args.no_examples:
                _apply_examples(cluster.kubectl)
            _idle()
            return 0
        out = cluster.run_dir / "logs" / "kubeinfer-operator.log"
        with processes.Supervisor() as supervisor:
            running = operator_process.start(
                supervisor, kubeconfig=cluster.operator_kubeconfig, log_path=out, env=collector
            )
            log.info("Operator running", extra={"liveness": running.liveness_url, "log": str(out)})
            if not args.no_agents:
                with contextlib.closing(cluster.api_client()) as api:
                    agents = gpu_agents.start(
                        supervisor,
                        cluster.kubectl,
                        api,
                        nodes=cluster.gpu_nodes,
                        recording=args.fake_nvml,
                        work_dir=cluster.run_dir / "agents",
                    )
                log.info(
                    "GPU agents running",
                    extra={"nodes": len(agents), "recording": args.fake_nvml.name},
                )
            if not args.no_examples:
                _apply_examples(cluster.kubectl)
            _follow(running.process, out)
    log.info("Stopped dev cluster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
