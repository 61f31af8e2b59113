"""Who sent a log agent's report: the ServiceAccount behind the request's bearer token.

Owns: reading a request's bearer token, asking the API server who it belongs to (a TokenReview
for the audience ``planning.log_policy.REPORT_AUDIENCE``, which the agents' projected tokens
are issued for), and remembering each answer for ``CACHE_SECONDS``, so agents reporting every
10 s cost one review per token and minute. Must not: decide what an identity may report
(``log_reports`` does).
"""

from __future__ import annotations

import dataclasses
import hashlib

from kubeinfer.kube import client
from kubeinfer.planning.logs import collector

CACHE_SECONDS = 60.0
MAX_CACHED = 1024
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclasses.dataclass(frozen=True)
class Identity:
    """An authenticated sender."""

    username: str
    namespace: str | None
    """The ServiceAccount's namespace; None for a sender that is not a ServiceAccount."""


_cache: dict[str, tuple[float, Identity | None]] = {}


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def identity_of(status: dict[str, object]) -> Identity | None:
    """The sender a TokenReview's ``status`` names, or None when it did not authenticate."""
    if status.get("authenticated") is not True:
        return None
    user = status.get("user")
    username = str(user.get("username", "")) if isinstance(user, dict) else ""
    if not username:
        return None
    namespace, _, name = username.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
    is_account = username.startswith(SERVICE_ACCOUNT_PREFIX) and bool(name)
    return Identity(username, namespace if is_account else None)


async def identify(kube: client.Kube, token: str, now: float) -> Identity | None:
    """The sender of ``token``, or None when the API server does not accept it for the
    reports' audience (expired, revoked, issued for something else). A failed review raises
    the kube layer's error and is not remembered."""
    key = hashlib.sha256(token.encode()).hexdigest()
    cached = _cache.get(key)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    status = await kube.review_token(token, [collector.REPORT_AUDIENCE])
    identity = identity_of(status)
    for stale in [k for k, (at, _) in _cache.items() if now - at >= CACHE_SECONDS]:
        del _cache[stale]
    while len(_cache) >= MAX_CACHED:  # oldest first: dicts keep insertion order
        _cache.pop(next(iter(_cache)))
    _cache[key] = (now, identity)
    return identity
