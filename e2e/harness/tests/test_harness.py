"""The harness's own guarantees, without a control plane.

Covers: ``versions.env`` parsing and its errors; ``e2e/tools/go.mod`` agrees with it; a
``Supervisor`` stops whole process groups (grandchildren too) and reports an early exit with
the log tail; kwok stages come from the kwok module; GPU node manifests carry what GFD sets.
"""

from __future__ import annotations

import json
import pathlib
import signal

import pytest
import yaml

from e2e.harness import gpu_nodes, kwok_stages, processes, toolchain, versions, waiting


def test_versions_file_parses_into_pinned_versions() -> None:
    pinned = versions.load()
    assert pinned.kubernetes.startswith("v1.")
    assert pinned.staging == "v0" + pinned.kubernetes.removeprefix("v1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("KUBERNETES_VERSION=v1.34.4\n", "misses"),
        ("KUBERNETES_VERSION 1.34\n", "expected KEY=value"),
    ],
    ids=["a missing key is named", "a line without = is rejected"],
)
def test_versions_file_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(versions.VersionsError, match=message):
        versions.parse(text)


def test_a_version_that_is_not_semver_is_rejected() -> None:
    good = versions.VERSIONS_FILE.read_text(encoding="utf-8")
    with pytest.raises(versions.VersionsError, match=r"is not vX\.Y\.Z"):
        versions.parse(good.replace("KWOK_VERSION=v", "KWOK_VERSION=latest-v"))


def test_go_mod_builds_exactly_the_pinned_versions() -> None:
    toolchain.check_go_mod()


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan may wait a moment for its reaper)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_supervisor_stops_the_whole_process_group(tmp_path: pathlib.Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    with processes.Supervisor() as supervisor:
        supervisor.start(
            "sleepers",
            ["sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"],
            log_path=tmp_path / "sleepers.log",
        )
        supervisor.wait_until(
            lambda: pid_file.exists() and pid_file.read_text().strip().isdigit(),
            what="the grandchild's pid",
            timeout=10,
        )
        grandchild = int(pid_file.read_text())
        assert _running(grandchild)
    waiting.until(lambda: not _running(grandchild), what="the grandchild to die", timeout=5)


def test_supervisor_reports_an_early_exit_with_the_log_tail(tmp_path: pathlib.Path) -> None:
    with processes.Supervisor() as supervisor:
        supervisor.start(
            "crasher", ["sh", "-c", "echo boom-reason; exit 3"], log_path=tmp_path / "c.log"
        )
        with pytest.raises(processes.ProcessError, match="boom-reason"):
            supervisor.wait_until(lambda: False, what="never", timeout=10)


def test_stopping_twice_never_signals_again(tmp_path: pathlib.Path) -> None:
    supervisor = processes.Supervisor()
    process = supervisor.start("sleeper", ["sleep", "300"], log_path=tmp_path / "s.log")
    supervisor.stop()
    supervisor.stop()
    process.stop()
    assert process.returncode == -signal.SIGTERM


def test_kwok_stages_are_kwoks_own_files() -> None:
    documents = [yaml.safe_load(text) for text in kwok_stages.stage_documents()]
    assert {d["kind"] for d in documents} == {"Stage"}
    assert {d["spec"]["resourceRef"]["kind"] for d in documents} == {"Node", "Pod"}


def test_gpu_node_manifest_looks_like_a_gfd_labelled_node() -> None:
    topology = json.dumps({"nvlink": "full-mesh"})
    node = gpu_nodes.build_node(gpu_nodes.GpuNodeSpec(name="n", gpus=4, topology=topology))
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert node["metadata"]["labels"]["nvidia.com/gpu.count"] == "4"
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert node["metadata"]["annotations"][gpu_nodes.TOPOLOGY_ANNOTATION] == topology


def test_a_gpu_node_takes_a_pod_cidr_only_when_given_one() -> None:
    looped = gpu_nodes.build_node(gpu_nodes.GpuNodeSpec(name="n", pod_cidr="127.42.7.0/24"))
    assert looped["spec"]["podCIDR"] == "127.42.7.0/24"
    assert looped["spec"]["podCIDRs"] == ["127.42.7.0/24"]
    assert "podCIDR" not in gpu_nodes.build_node(gpu_nodes.GpuNodeSpec(name="n"))["spec"]
