"""``kubeinfer agent``: its command-line options and the process around :class:`run.Agent`.

Owns the options (node name from ``--node`` or ``NODE_NAME``; the NVML backend: real
``pynvml``, or ``--fake-nvml <recording>`` / ``KUBEINFER_FAKE_NVML`` replaying a recorded
machine, optionally fed faults from ``--fault-script``), logging, the API client with field
manager ``kubeinfer-agent``, and stopping cleanly on SIGTERM / SIGINT.

Must not: hold agent logic (``run`` does).
"""

from __future__ import annotations

import argparse
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from kubeinfer.planning.gpu import topology

NicLevels = Mapping[int, tuple[topology.PcieLevel, ...]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the agent's options on its subcommand parser."""
    parser.add_argument("--node", default=os.environ.get("NODE_NAME"), help="this node's name")
    parser.add_argument(
        "--fake-nvml",
        type=pathlib.Path,
        default=os.environ.get("KUBEINFER_FAKE_NVML") or None,
        metavar="RECORDING",
        help="replay an `nvidia-smi topo -m` recording instead of the real NVML",
    )
    parser.add_argument(
        "--fault-script",
        type=pathlib.Path,
        metavar="FILE",
        help="with --fake-nvml: apply fault lines appended to FILE (xid/ecc/lost/memory)",
    )
    parser.add_argument(
        "--sample-interval", type=float, help="memory sample s (default: the node's GPUPools)"
    )
    parser.add_argument("--window", type=float, help="memory window s (default: GPUPools)")
    parser.add_argument("--resync", type=float, default=60.0, help="full rediscovery s")
    parser.add_argument(
        "--memory-publish", type=float, default=30.0, help="publish memory-only changes every s"
    )
    parser.add_argument("--no-dra", action="store_true", help="publish no ResourceSlice")
    parser.add_argument(
        "--no-gfd-labels",
        action="store_true",
        help="leave nvidia.com/* labels to GPU Feature Discovery",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    """Run the agent until SIGTERM or SIGINT; return the exit code."""
    import asyncio
    import logging
    import signal
    import sys

    from kubeinfer.agent import run as agent_run
    from kubeinfer.gpu import backend

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if not args.node:
        print("error: no node name (--node or NODE_NAME)", file=sys.stderr)
        return 2
    settings = agent_run.Settings(
        node=args.node,
        sample_interval_s=args.sample_interval,
        window_s=args.window,
        resync_s=args.resync,
        memory_publish_s=args.memory_publish,
        dra=not args.no_dra,
        gfd_labels=not args.no_gfd_labels,
    )

    async def main() -> None:
        from kubeinfer.kube import client

        nvml, nics = _backend(args.fake_nvml, args.fault_script)
        kube = client.Kube(client.load_config(), field_manager=agent_run.FIELD_MANAGER)
        agent = agent_run.Agent(nvml, kube, settings, nic_levels=nics)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.stop.set)
        await agent.run()

    try:
        asyncio.run(main())
    except backend.GpuError as err:
        logging.getLogger(__name__).error("Stopped the GPU agent: %s", err)
        return 1
    return 0


def _backend(
    fake: pathlib.Path | None, script: pathlib.Path | None
) -> tuple[Any, NicLevels | None]:
    if fake is None:
        import pynvml

        return pynvml, None
    from kubeinfer.gpu import fault_script, recordings

    machine = recordings.load(fake)
    return fault_script.ScriptedNvml(machine, script), machine.nic_levels
