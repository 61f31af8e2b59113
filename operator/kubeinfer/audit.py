"""Verify a LogPolicy audit file: append-only and hash-chained, as the log agent writes it.

Owns: the audit line format's checks and ``kubeinfer audit verify``'s verdict. Must not: write
audit files (the agent's ``kubeinfer_audit`` exporter does, ``collector/components``).

Each line is ``<seq> TAB <prev> TAB <hash> TAB <record JSON>``, with
``hash = hex(SHA-256("<seq>\\t<prev>\\t<record JSON>"))``, ``prev`` the previous line's hash
(64 zeros first) and ``seq`` counting from 1. ``<file>.head`` holds the last ``<seq> <hash>``, so
a removed tail is found too. Any changed byte breaks the hash of its line or the link to the
next; a removed line breaks ``seq`` and ``prev``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import re

GENESIS = "0" * 64
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome: how many records were checked and the first problem, if any."""

    records: int
    problem: str | None = None

    @property
    def intact(self) -> bool:
        """True when every record and the head agree."""
        return self.problem is None


def _fields(number: int, line: bytes) -> tuple[str, str, str, bytes] | str:
    """``(seq, prev, hash, record)`` of a line, or why it cannot be split into them."""
    parts = line.split(b"\t", 3)
    if len(parts) != 4:
        return f"line {number}: not 4 tab-separated fields"
    try:
        seq, prev, digest = (p.decode("ascii") for p in parts[:3])
    except UnicodeDecodeError:
        return f"line {number}: sequence or hashes are not ASCII"
    return seq, prev, digest, parts[3]


def _line_problem(number: int, line: bytes, seq: int, prev: str) -> tuple[str | None, str]:
    """``(problem or None, this line's hash)`` for line ``number`` expected at ``seq``."""
    fields = _fields(number, line)
    if isinstance(fields, str):
        return fields, prev
    got_seq, got_prev, got_hash, record = fields
    content = f"{got_seq}\t{got_prev}\t".encode() + record
    checks = (
        (got_seq != str(seq), f"sequence {got_seq!r}, expected {seq} (a record is missing)"),
        (got_prev != prev, "does not link to the previous record"),
        (not _HEX64.match(got_hash), "hash is not 64 hex digits"),
        (hashlib.sha256(content).hexdigest() != got_hash, "content does not match its hash"),
    )
    for failed, message in checks:
        if failed:
            return f"line {number}: {message}", prev
    return None, got_hash


def verify_lines(lines: list[bytes], head: bytes | None) -> Verdict:
    """Check a chain given its lines (without newlines) and its head file's content."""
    prev, seq = GENESIS, 0
    for number, line in enumerate(lines, start=1):
        problem, prev = _line_problem(number, line, seq + 1, prev)
        if problem:
            return Verdict(seq, problem)
        seq += 1
    if head is None:
        return Verdict(seq, "the head file is missing: a removed tail could not be ruled out")
    if head.split() != [str(seq).encode(), prev.encode()]:
        return Verdict(seq, f"the head names a different last record than seq {seq} (truncated)")
    return Verdict(seq)


def verify_file(path: pathlib.Path) -> Verdict:
    """Verify ``path`` against ``<path>.head``."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        return Verdict(0, "the last line is incomplete")
    head_path = path.with_name(path.name + ".head")
    head = head_path.read_bytes() if head_path.exists() else None
    return verify_lines(data.splitlines() if data else [], head)
