"""Command line: ``serve`` one simulator, or send bounded ``load`` to running ones.

Owns: argument parsing and the asyncio entry points. Must not: add behaviour the modules lack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from e2e.simulator import behaviour, load, server
from kubeinfer.planning.serving import runtimes


async def _serve(args: argparse.Namespace) -> None:
    identity = server.Identity(
        args.runtime,
        args.model,
        load_seconds=args.load_seconds,
        versions=tuple(int(v) for v in args.versions.split(",")),
        default_version=args.default_version,
        start_loaded=not args.start_unloaded,
    )
    initial = behaviour.Behaviour(
        latency_ms=args.latency_ms, jitter_ms=args.jitter_ms, error_rate=args.error_rate
    )
    runner, port = await server.start(
        server.Simulator(identity, initial), host=args.host, port=args.port
    )
    print(json.dumps({"url": f"http://{args.host}:{port}", "runtime": args.runtime}), flush=True)
    try:
        await asyncio.Event().wait()  # until interrupted
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m e2e.simulator``."""
    parser = argparse.ArgumentParser(prog="python -m e2e.simulator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve one simulated model server")
    serve.add_argument("--host", default="127.0.0.2", help="a loopback address")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--runtime", default="vllm", choices=sorted(runtimes.RUNTIMES))
    serve.add_argument("--model", default="model")
    serve.add_argument("--load-seconds", type=float, default=0.0)
    serve.add_argument("--versions", default="1", help="the model's versions, e.g. 1,2,3")
    serve.add_argument("--default-version", type=int, help="default: the latest")
    serve.add_argument(
        "--start-unloaded",
        action="store_true",
        help="triton: load nothing at start (--model-control-mode=explicit)",
    )
    serve.add_argument("--latency-ms", type=float, default=20.0)
    serve.add_argument("--jitter-ms", type=float, default=0.0)
    serve.add_argument("--error-rate", type=float, default=0.0)
    send = commands.add_parser("load", help="send bounded load to simulators")
    send.add_argument("--target", action="append", required=True, help="base URL; repeatable")
    send.add_argument("--model", default="model")
    send.add_argument("--rate", type=float, default=10.0, help="requests per second")
    send.add_argument("--duration", type=float, default=10.0, help="seconds")
    send.add_argument("--max-requests", type=int, default=1000)
    send.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    try:
        if args.command == "serve":
            asyncio.run(_serve(args))
            return 0
        for url in args.target:
            load.check_target(url)
        limits = load.Limits(args.rate, args.duration, args.max_requests, args.concurrency)
        report = asyncio.run(load.run(lambda: args.target, limits, model=args.model))
    except (ValueError, server.AddressError) as err:
        parser.error(str(err))
    except KeyboardInterrupt:
        return 130
    print(json.dumps(report.__dict__, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
