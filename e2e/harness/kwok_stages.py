"""KWOK's Stage resources, read from the pinned kwok module's own files.

Owns: which of kwok's shipped stages the harness uses and writing them into a kwok ``--config``
file. Must not: hand-write or edit stage YAML; what kwok ships is what runs.

The set is kwok's "fast" profile, the same one kwok falls back to when given none: nodes become
Ready at once and renew a Lease (``--node-lease-duration-seconds``), pods go Running and Ready
as soon as they are bound, finish when their containers are done and go away when deleted.
"""

from __future__ import annotations

import pathlib

from e2e.harness import gomodules, toolchain, versions

STAGE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)


def stage_documents(pinned: versions.Versions | None = None) -> list[str]:
    """The YAML text of each stage in ``STAGE_FILES``, from the kwok module zip."""
    pinned = pinned or versions.load()
    root = gomodules.module_dir(toolchain.KWOK_MODULE, pinned.kwok)
    return [(root / relative).read_text(encoding="utf-8") for relative in STAGE_FILES]


def write_config(path: pathlib.Path, pinned: versions.Versions | None = None) -> pathlib.Path:
    """Write the stages as one multi-document file for ``kwok --config``."""
    documents = [doc.strip() for doc in stage_documents(pinned)]
    path.write_text("\n---\n".join(documents) + "\n", encoding="utf-8")
    return path
