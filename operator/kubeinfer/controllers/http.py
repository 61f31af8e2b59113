"""The operator's HTTP endpoint: ``/healthz`` for probes, ``/metrics`` for Prometheus and the
log agents' reports (:mod:`kubeinfer.controllers.log_reports`)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kubeinfer.controllers import context, log_reports


async def serve(host: str, port: int) -> web.AppRunner:
    """Start serving on ``host:port`` and return the runner (call ``cleanup()`` to stop)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(context.current().metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post(log_reports.PATH, log_reports.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
