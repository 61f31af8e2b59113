"""The ``kubeinfer`` command: run the operator, write CRDs and Argo CD health scripts, render
manifests offline, version."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import yaml

import kubeinfer
from kubeinfer.agent import command as agent_command


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kubeinfer`` console script."""
    parser = argparse.ArgumentParser(prog="kubeinfer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against the current kubeconfig")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (default)"
    )
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch only these namespaces"
    )
    run.add_argument("--http-host", default="0.0.0.0", help="address of /healthz and /metrics")  # noqa: S104
    run.add_argument("--http-port", type=int, default=8080, help="port of /healthz and /metrics")
    run.add_argument(
        "--liveness",
        metavar="URL",
        help="kopf-style http://HOST:PORT/healthz; sets --http-host and --http-port",
    )
    run.add_argument(
        "--prometheus-url",
        default=os.environ.get("KUBEINFER_PROMETHEUS_URL"),
        help="Prometheus that rollout analysis queries (default: $KUBEINFER_PROMETHEUS_URL)",
    )
    run.add_argument("--standalone", action="store_true", help="skip peering (single replica)")
    run.add_argument(
        "--priority",
        type=int,
        default=0,
        help="peering priority: a running kubeinfer with a lower one pauses while this one runs",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    crds = sub.add_parser("crds", help="print the CRDs, or write them to a directory")
    crds.add_argument("-o", "--output-dir", type=Path, help="write one file per CRD here")
    crds.add_argument(
        "--chart-dir",
        type=Path,
        help="also write the CRD templates of the Helm chart rooted here (charts/kubeinfer)",
    )

    health = sub.add_parser(
        "argocd-health", help="assemble the Argo CD health scripts from their Lua sources"
    )
    health.add_argument(
        "action", choices=["write", "check"], help="write the generated files, or fail if stale"
    )
    health.add_argument(
        "--dir",
        type=Path,
        default=Path("manifests/argocd"),
        help="directory holding src/ (read) and health/, argocd-cm.yaml (generated)",
    )

    render = sub.add_parser("render", help="print the child objects a manifest would get")
    render.add_argument("files", nargs="+", type=Path, help="manifest files (multi-document YAML)")

    agent = sub.add_parser("agent", help="run the GPU node agent for this node")
    agent_command.add_arguments(agent)

    audit = sub.add_parser("audit", help="check a LogPolicy audit file")
    audit.add_argument("action", choices=["verify"], help="verify the hash chain and its head")
    audit.add_argument("file", type=Path, help="audit file (its head is <file>.head)")

    sub.add_parser("version", help="print the version")

    args = parser.parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "version": _version,
        "crds": lambda a: _crds(a.output_dir, chart_dir=a.chart_dir),
        "argocd-health": lambda a: _argocd_health(a.action, a.dir),
        "render": lambda a: _render(a.files),
        "audit": lambda a: _audit_verify(a.file),
        "agent": agent_command.run,
        "run": _run,
    }
    return commands[args.command](args)


def _version(_: argparse.Namespace) -> int:
    print(kubeinfer.__version__)
    return 0


def _audit_verify(path: Path) -> int:
    from kubeinfer import audit

    verdict = audit.verify_file(path)
    if verdict.intact:
        print(f"Audit chain intact: {verdict.records} records in {path}.")
        return 0
    print(f"Audit chain broken after {verdict.records} good records: {verdict.problem}.")
    return 1


def _crds(output_dir: Path | None, *, chart_dir: Path | None = None) -> int:
    from kubeinfer.api import crds

    files = crds.render_all()
    if output_dir is None and chart_dir is None:
        sys.stdout.write("---\n".join(files.values()))
        return 0
    outputs: dict[Path, str] = {}
    if output_dir is not None:
        outputs.update({output_dir / name: text for name, text in files.items()})
    if chart_dir is not None:
        if not (chart_dir / "Chart.yaml").is_file():
            print(f"error: {chart_dir} is not a Helm chart (no Chart.yaml)", file=sys.stderr)
            return 1
        outputs.update({chart_dir / name: text for name, text in crds.render_chart().items()})
    for path, text in outputs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


def _argocd_health(action: str, directory: Path) -> int:
    from kubeinfer import argocd_health

    layout = argocd_health.Layout(directory)
    try:
        if action == "write":
            for path in argocd_health.write(layout):
                print(f"wrote {path}")
        else:
            argocd_health.check(layout)
    except argocd_health.HealthScriptError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _render(files: list[Path]) -> int:
    from kubeinfer.planning import render

    results = []
    for path in files:
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
            results.extend(render.render_documents(docs, source=str(path)))
        except (OSError, yaml.YAMLError, render.RenderError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    sys.stdout.write(render.dump(results))
    return 0


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    import kopf

    from kubeinfer.controllers import startup

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # kopf logs every handled event at INFO; our reconciler logs the decisions instead.
    logging.getLogger("kopf.objects").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    host, port = args.http_host, args.http_port
    if args.liveness:
        url = urlsplit(args.liveness)
        host, port = url.hostname or host, url.port or port
    startup.register(http_host=host, http_port=port, prometheus_url=args.prometheus_url)
    asyncio.run(
        kopf.operator(
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            standalone=args.standalone,
            priority=args.priority,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
