"""kubeinfer node agents for KWOK GPU nodes: one ``kubeinfer agent`` process per node.

Owns: for each node, the agent's identity (a Pod object bound to the node in the agent's
namespace, so the agent's TokenRequest token carries the node name the own-node admission
policies check), its kubeconfig, its fault script file (``kubeinfer.gpu.fault_script``: the test
appends ``xid <gpu> <n>`` lines to make NVML deliver an event) and the process itself, replaying
a recorded machine through the fake NVML.

Must not: grant the agent anything ``manifests/`` does not (the RBAC comes from ``rbac``), or
write node metadata itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import secrets
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import kubernetes

from e2e.harness import gpu_nodes, kubectl, operator_process, processes, rbac, versions

RECORDINGS = versions.REPO_ROOT / "tests" / "gpu" / "fixtures"


@dataclasses.dataclass(frozen=True)
class RunningAgent:
    """One node's agent."""

    node: str
    process: processes.Process
    log_path: pathlib.Path
    fault_script: pathlib.Path

    def inject(self, line: str) -> None:
        """Append one fault directive (``xid 3 79``); the agent's fake NVML applies it."""
        with self.fault_script.open("a", encoding="utf-8") as handle:
            handle.write(line.rstrip("\n") + "\n")


def _identity_pod(core: Any, node: str) -> str:
    name = f"kubeinfer-agent-{node}"[:63]
    core.create_namespaced_pod(
        rbac.OPERATOR_NAMESPACE,
        {
            "metadata": {"name": name, "labels": {"app.kubernetes.io/component": "agent"}},
            "spec": {
                "serviceAccountName": rbac.AGENT_SERVICE_ACCOUNT,
                "nodeName": node,
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "agent", "image": "registry.invalid/kubeinfer:e2e"}],
            },
        },
    )
    return name


def start(
    supervisor: processes.Supervisor,
    admin: kubectl.Kubectl,
    api_client: Any,
    *,
    nodes: Sequence[str],
    recording: pathlib.Path,
    work_dir: pathlib.Path,
    extra_args: Sequence[str] = (),
) -> list[RunningAgent]:
    """Start an agent per node replaying ``recording``; identities are created first."""
    rbac.apply_access(admin)
    core: Any = kubernetes.client.CoreV1Api(api_client)
    work_dir.mkdir(parents=True, exist_ok=True)
    env_path = os.pathsep.join(
        p for p in (str(operator_process.OPERATOR_SOURCE_ROOT), os.environ.get("PYTHONPATH")) if p
    )
    agents = []
    for node in nodes:
        pod = _identity_pod(core, node)
        config = rbac.service_account_kubeconfig(
            admin,
            work_dir / f"{node}.kubeconfig",
            name=rbac.AGENT_SERVICE_ACCOUNT,
            namespace=rbac.OPERATOR_NAMESPACE,
            bound_pod=pod,
        )
        script = work_dir / f"{node}.faults"
        script.touch()
        log_path = work_dir / f"{node}.agent.log"
        argv = [
            sys.executable,
            "-m",
            "kubeinfer",
            "agent",
            f"--node={node}",
            f"--fake-nvml={recording}",
            f"--fault-script={script}",
            *extra_args,
        ]
        env = dict(os.environ, KUBECONFIG=str(config), PYTHONPATH=env_path, PYTHONUNBUFFERED="1")
        process = supervisor.start(
            f"kubeinfer-agent-{node}", argv, log_path=log_path, env=env, cwd=versions.REPO_ROOT
        )
        agents.append(RunningAgent(node, process, log_path, script))
    return agents


def delete_identities(api_client: Any, nodes: Sequence[str]) -> None:
    """Delete the agents' identity pods (their tokens stop working)."""
    core: Any = kubernetes.client.CoreV1Api(api_client)
    for node in nodes:
        try:
            core.delete_namespaced_pod(
                f"kubeinfer-agent-{node}"[:63], rbac.OPERATOR_NAMESPACE, grace_period_seconds=0
            )
        except kubernetes.client.ApiException as err:
            if err.status != 404:
                raise


@contextlib.contextmanager
def a100_nodes(
    admin: kubectl.Kubectl,
    api_client: Any,
    *,
    count: int,
    pool: str,
    work_dir: pathlib.Path,
    extra_args: Sequence[str] = (),
) -> Iterator[list[RunningAgent]]:
    """``count`` fresh 8-GPU A100 KWOK nodes labelled ``kubeinfer.io/e2e-pool=<pool>``, each with
    its agent replaying the PCIe A100 recording; agents, identities and nodes go afterwards."""
    specs = gpu_nodes.fleet(
        count,
        prefix=f"a100-{secrets.token_hex(3)}",
        product="NVIDIA-A100-80GB-PCIe",
        gpu_memory_mib=81920,
        gpu_family="ampere",
        labels={"kubeinfer.io/e2e-pool": pool},
    )
    names = gpu_nodes.create(api_client, specs)
    core: Any = kubernetes.client.CoreV1Api(api_client)
    try:
        with processes.Supervisor() as supervisor:
            agents = start(
                supervisor,
                admin,
                api_client,
                nodes=names,
                recording=RECORDINGS / "pcie-a100x8-nvlink-pairs-2socket.txt",
                work_dir=work_dir,
                extra_args=extra_args,
            )
            try:
                yield agents
            finally:
                for agent in agents:
                    print(f"--- agent log {agent.node} ---\n{agent.process.tail(15)}")
    finally:
        delete_identities(api_client, names)
        for name in names:
            with contextlib.suppress(kubernetes.client.ApiException):
                core.delete_node(name)
