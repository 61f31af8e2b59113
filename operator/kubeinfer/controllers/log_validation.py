"""Run the log agent's own ``validate`` on a rendered LogPolicy configuration.

Owns: locating the collector binary (``KUBEINFER_COLLECTOR``: the operator Deployment in
``manifests/`` names ``/usr/local/bin/otelcol-kubeinfer``, which the operator image must contain;
``make dev`` passes the harness-built binary), running ``<collector> validate --config=<file>`` once per configuration hash, and
caching the verdict. Must not: render configuration (``planning.log_policy`` does) or decide
conditions from the verdict (the planner does).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import tempfile

from kubeinfer.planning import log_policy as planner
from kubeinfer.planning.logs import collector
from kubeinfer.planning.logs import pipeline as log_agent

log = logging.getLogger(__name__)

COLLECTOR_ENV = "KUBEINFER_COLLECTOR"
TIMEOUT_SECONDS = 30.0
MAX_ERROR_CHARS = 2000
MAX_CACHED_VERDICTS = 256
#: validate only needs the variable defined; the agents read the real key from the Secret.
_PLACEHOLDER_KEY = "validationonly"

_verdicts: dict[str, planner.Validation] = {}
_lock = asyncio.Lock()


def collector_binary() -> pathlib.Path | None:
    """The configured collector binary, or None when there is none to run."""
    configured = os.environ.get(COLLECTOR_ENV)
    if not configured:
        return None
    path = pathlib.Path(configured)
    return path if path.is_file() and os.access(path, os.X_OK) else None


async def validate(config_text: str, config_hash: str) -> planner.Validation | None:
    """The collector's verdict on ``config_text``; None without a collector binary."""
    binary = collector_binary()
    if binary is None:
        return None
    async with _lock:
        if config_hash in _verdicts:
            return _verdicts[config_hash]
        verdict = planner.Validation(config_hash, await _run(binary, config_text))
        _verdicts[config_hash] = verdict
        while len(_verdicts) > MAX_CACHED_VERDICTS:  # oldest first: dicts keep insertion order
            _verdicts.pop(next(iter(_verdicts)))
    log.info(
        "Validated LogPolicy agent configuration",
        extra={"config_hash": config_hash, "valid": verdict.error is None},
    )
    return verdict


async def _run(binary: pathlib.Path, config_text: str) -> str | None:
    with tempfile.TemporaryDirectory(prefix="kubeinfer-validate-") as scratch:
        path = pathlib.Path(scratch) / "collector.yaml"
        path.write_text(config_text, encoding="utf-8")
        process = await asyncio.create_subprocess_exec(
            str(binary),
            "validate",
            f"--config={path}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={
                "PATH": os.environ.get("PATH", ""),
                log_agent.HASH_KEY_ENV: _PLACEHOLDER_KEY,
                collector.NODE_NAME_ENV: "validation",
                collector.POD_NAME_ENV: "validation",
            },
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            return f"validate did not finish within {TIMEOUT_SECONDS:g} s"
    if process.returncode == 0:
        return None
    text = output.decode(errors="replace").strip()
    return text.removeprefix("Error: ")[-MAX_ERROR_CHARS:] or f"exit status {process.returncode}"
