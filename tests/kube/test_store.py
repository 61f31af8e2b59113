"""The watch mirror: what it keeps when the operator's own writes race the watch."""

from __future__ import annotations

from typing import Any

from kubeinfer.kube.store import Store


def _deployment(version: str, ready: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "chat-v1", "resourceVersion": version},
        "status": {"readyReplicas": ready},
    }


def test_a_create_answer_is_taken_when_the_watch_brought_nothing_meanwhile() -> None:
    store = Store()
    assert store.put_written("Deployment", _deployment("10"), held_before=None)
    assert store.version("Deployment", "ns", "chat-v1") == "10"


def test_a_create_answer_never_replaces_what_the_watch_brought_while_it_was_in_flight() -> None:
    store = Store()
    held_before = store.version("Deployment", "ns", "chat-v1")
    # the controller made the pods ready before the apply's answer was read
    store.put("Deployment", _deployment("12", ready=2))
    assert not store.put_written("Deployment", _deployment("10"), held_before=held_before)
    held = store.get("Deployment", "ns", "chat-v1")
    assert held is not None and held["status"]["readyReplicas"] == 2


def test_an_update_answer_is_taken_only_over_the_body_it_was_sent_from() -> None:
    store = Store()
    store.put("Deployment", _deployment("10"))
    assert store.put_written("Deployment", _deployment("11"), held_before="10")
    assert store.version("Deployment", "ns", "chat-v1") == "11"
    # an answer that raced a newer watch event (held moved from 11 to 13) is dropped
    store.put("Deployment", _deployment("13", ready=1))
    assert not store.put_written("Deployment", _deployment("12"), held_before="11")
    assert store.version("Deployment", "ns", "chat-v1") == "13"
