"""The audit verifier on chains written to the documented format: an intact chain passes; a changed
byte, a removed, duplicated or reordered record, a removed tail, a missing head and an incomplete
last line each fail with the line named. (The agent's own writer is checked end to end in
``e2e/tests/test_log_policy_replay.py``.)
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Callable

import pytest

from kubeinfer import audit


def _chain(count: int) -> tuple[list[bytes], bytes]:
    lines, prev = [], audit.GENESIS
    for seq in range(1, count + 1):
        record = json.dumps({"body": f"AUDIT change {seq}", "severity": "INFO"}).encode()
        digest = hashlib.sha256(f"{seq}\t{prev}\t".encode() + record).hexdigest()
        lines.append(f"{seq}\t{prev}\t{digest}\t".encode() + record)
        prev = digest
    return lines, f"{count} {prev}\n".encode()


def _flip(lines: list[bytes]) -> list[bytes]:
    changed = bytearray(lines[4])
    changed[-5] ^= 0x01
    return [*lines[:4], bytes(changed), *lines[5:]]


TAMPERING: dict[str, Callable[[list[bytes]], list[bytes]]] = {
    "a changed byte": _flip,
    "a removed record": lambda lines: lines[:3] + lines[4:],
    "a duplicated record": lambda lines: lines[:4] + lines[3:],
    "two records swapped": lambda lines: [*lines[:2], lines[3], lines[2], *lines[4:]],
    "a removed tail": lambda lines: lines[:-1],
}


def test_an_intact_chain_verifies() -> None:
    lines, head = _chain(10)
    verdict = audit.verify_lines(lines, head)
    assert verdict.intact and verdict.records == 10


@pytest.mark.parametrize("tamper", TAMPERING.values(), ids=list(TAMPERING))
def test_tampering_is_found(tamper: Callable[[list[bytes]], list[bytes]]) -> None:
    lines, head = _chain(10)
    verdict = audit.verify_lines(tamper(lines), head)
    assert not verdict.intact
    assert verdict.problem


def test_a_missing_head_cannot_rule_out_a_removed_tail() -> None:
    lines, _ = _chain(3)
    assert "head file is missing" in str(audit.verify_lines(lines, None).problem)


def test_an_incomplete_last_line_fails(tmp_path: pathlib.Path) -> None:
    lines, head = _chain(3)
    path = tmp_path / "audit.log"
    path.write_bytes(b"\n".join(lines))  # no final newline
    path.with_name("audit.log.head").write_bytes(head)
    assert audit.verify_file(path).problem == "the last line is incomplete"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert audit.verify_file(path).intact
