"""Kubeconfig files for the harness's control plane.

Owns: writing a single-cluster, single-user kubeconfig for either a client certificate or a
bearer token. Must not: mint credentials (``pki`` and ``rbac`` do) or talk to the API server.
"""

from __future__ import annotations

import pathlib

import yaml

from e2e.harness import pki

CLUSTER = "kubeinfer-e2e"


def write(
    path: pathlib.Path,
    *,
    server: str,
    ca: pathlib.Path,
    user: str,
    client: pki.KeyPair | None = None,
    token: str | None = None,
    namespace: str | None = None,
) -> pathlib.Path:
    """Write a kubeconfig for ``user`` authenticating with ``client`` or ``token`` (exactly one)."""
    if (client is None) == (token is None):
        raise ValueError("a kubeconfig needs exactly one of a client certificate or a token")
    credentials: dict[str, str] = (
        {"client-certificate": str(client.cert), "client-key": str(client.key)}
        if client is not None
        else {"token": token or ""}
    )
    context: dict[str, str] = {"cluster": CLUSTER, "user": user}
    if namespace:
        context["namespace"] = namespace
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CLUSTER, "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": context}],
        "current-context": user,
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return path
