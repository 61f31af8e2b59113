"""Reading a log agent's bearer token and the identity a TokenReview names: a ServiceAccount
with its namespace, another user without one, an unauthenticated review as nobody.

That the operator refuses reports without an accepted token (401) or for another namespace
(403) and takes an authenticated one is proven against the real API server in
``e2e/tests/test_log_policy_operator.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubeinfer.controllers import agent_tokens


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def", "abc.def"),
        ("bearer abc.def ", "abc.def"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
    ids=[
        "a bearer token is read",
        "the scheme is case-insensitive and blanks are trimmed",
        "another scheme is no token",
        "an empty token is no token",
        "an empty header is no token",
        "no header is no token",
    ],
)
def test_the_bearer_token_of_a_header(header: str | None, token: str | None) -> None:
    assert agent_tokens.bearer(header) == token


@pytest.mark.parametrize(
    ("status", "identity"),
    [
        (
            {"authenticated": True, "user": {"username": "system:serviceaccount:ml:default"}},
            agent_tokens.Identity("system:serviceaccount:ml:default", "ml"),
        ),
        (
            {"authenticated": True, "user": {"username": "alice"}},
            agent_tokens.Identity("alice", None),
        ),
        ({"authenticated": False, "error": "token expired"}, None),
        ({}, None),
        ({"authenticated": True, "user": {}}, None),
    ],
    ids=[
        "a ServiceAccount names its namespace",
        "another user has no namespace",
        "an unauthenticated review is nobody",
        "an empty status is nobody",
        "an authenticated review without a username is nobody",
    ],
)
def test_the_identity_a_token_review_names(
    status: dict[str, Any], identity: agent_tokens.Identity | None
) -> None:
    assert agent_tokens.identity_of(status) == identity
