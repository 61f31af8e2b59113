"""A small Prometheus HTTP API client: one instant query, one number back.

Errors form one tree::

    PromError           Prometheus did not give a usable answer
    ├── Unreachable     no connection, a timeout, or a 5xx
    └── BadQuery        Prometheus refused the query (4xx, status "error")
"""

from __future__ import annotations

import math

import aiohttp

TIMEOUT_SECONDS = 10.0


class PromError(Exception):
    """Prometheus did not give a usable answer."""


class Unreachable(PromError):
    """No connection, a timeout, or a server error."""


class BadQuery(PromError):
    """Prometheus refused the query."""


class Prometheus:
    """Instant queries against one Prometheus."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def value(self, promql: str) -> float | None:
        """Return the query's single scalar or one-series value; None when it has no data."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
            )
        try:
            async with self._session.get(
                f"{self.url}/api/v1/query", params={"query": promql}
            ) as rsp:
                if rsp.status >= 500:
                    raise Unreachable(f"HTTP {rsp.status} from {self.url}")
                body = await rsp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise Unreachable(f"{self.url}: {err or type(err).__name__}") from err
        if body.get("status") != "success":
            raise BadQuery(str(body.get("error") or body))
        data = body.get("data") or {}
        result = data.get("result")
        if data.get("resultType") == "scalar" and isinstance(result, list):
            return _number(result[1])
        if not result:
            return None
        if len(result) > 1:
            raise BadQuery(f"the query returned {len(result)} series; aggregate it to one")
        return _number(result[0]["value"][1])

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _number(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) else value
