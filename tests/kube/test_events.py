"""Events kubeinfer posts: the events.k8s.io/v1 shape the API server accepts (required fields,
the note cut to its 1 KiB limit on a character boundary) naming the object they are about.
Creation against a real API server is covered by the rollout e2e test (the RolledBack Event)."""

from __future__ import annotations

from datetime import UTC, datetime

from kubeinfer.kube import events

BODY = {
    "apiVersion": "kubeinfer.io/v1alpha1",
    "kind": "InferenceService",
    "metadata": {"name": "chat", "namespace": "ml", "uid": "u-1", "resourceVersion": "42"},
}
NOW = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_event_names_the_object_and_carries_every_required_field() -> None:
    event = events.build(
        BODY,
        warning=True,
        reason="RolledBack",
        note="Rolled back v2.",
        now=NOW,
        instance="op-0",
        salt="ab12",
    )
    assert event["metadata"] == {
        "name": f"chat.{int(NOW.timestamp() * 1e6):x}ab12",
        "namespace": "ml",
    }
    assert event["regarding"] == {
        "apiVersion": "kubeinfer.io/v1alpha1",
        "kind": "InferenceService",
        "namespace": "ml",
        "name": "chat",
        "uid": "u-1",
        "resourceVersion": "42",
    }
    assert event["eventTime"] == "2026-01-01T12:00:00.123456Z"
    assert (event["type"], event["reason"], event["note"]) == (
        "Warning",
        "RolledBack",
        "Rolled back v2.",
    )
    assert event["reportingController"] == "kubeinfer.io/operator"
    assert event["reportingInstance"] == "op-0"
    assert event["action"]


def test_a_long_note_is_cut_to_the_servers_limit_without_splitting_a_character() -> None:
    note = "é" * 2000
    event = events.build(
        BODY, warning=False, reason="R", note=note, now=NOW, instance="op-0", salt="ab12"
    )
    encoded = event["note"].encode()
    assert len(encoded) <= events.NOTE_LIMIT_BYTES
    assert event["note"].endswith("...")
    assert event["type"] == "Normal"
