"""Side-by-side placement benchmark: kubeinfer against the NVIDIA device plugin's allocator.

Builds ``e2e/gpuallocator`` (a tiny Go main over github.com/NVIDIA/go-gpuallocator's
best-effort policy) and feeds it and kubeinfer the same recorded machines, then prints:

1. decision quality (bottleneck GB/s, go-gpuallocator's own pair score, NUMA span) and decision
   time for n = 4, 8, 16 GPUs and k = 1, 2, 4, 8, all GPUs free;
2. a sweep over every free subset of the 8-GPU recordings, listing each case where
   go-gpuallocator's choice scores higher on its own measure, with both bottlenecks;
3. the fragmentation replay on 8 PCIe A100s in NVLink pairs (four 1-GPU then two 2-GPU
   requests, every order);
4. stranded GPUs on a longer seeded mixed trace, with a HAMi-style policy as a third column.

The device plugin sees links as its own discovery would: PCIe level plus NVLinks whose remote
PCI bus id is the peer GPU, so links through an NVSwitch count zero. Bandwidths are kubeinfer's
nominal model. kubeinfer times are measured with its per-node memo cleared (cold) each time.

Run from the repository root: ``python e2e/bench_placement.py`` (needs Go; ~1-3 minutes).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO)]

from kubeinfer.gpu import recordings  # noqa: E402
from kubeinfer.planning.gpu import placement, topology, topology_score  # noqa: E402
from kubeinfer.planning.gpu import selection as gpu_selection  # noqa: E402

SHARED = REPO / "tests" / "gpu" / "fixtures" / "recorded"
SYNTHETIC = REPO / "tests" / "gpu" / "fixtures"
SKIP = {"a100x4-fell-off-bus.txt", "hgx-h100x8-mig.txt"}  # covered by the unit tests

#: go-gpuallocator's P2PLinkType number of each PCIe level (1 = cross-CPU … 6 = same board).
GO_PCIE_TYPE = {
    topology.PcieLevel.SYS: 1,
    topology.PcieLevel.NODE: 2,
    topology.PcieLevel.PHB: 3,
    topology.PcieLevel.PXB: 4,
    topology.PcieLevel.PIX: 5,
    topology.PcieLevel.SAME_BOARD: 6,
}

Allocator = Callable[[tuple[int, ...], int], tuple[int, ...]]


def build_go() -> Path:
    """Build the Go allocator driver into a temporary directory."""
    out = Path(tempfile.gettempdir()) / "kubeinfer-bench" / "gpuallocator-bench"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["go", "build", "-o", str(out), "."], cwd=REPO / "e2e" / "gpuallocator", check=True
    )
    return out


class GoAllocator:
    """One go-gpuallocator process fed one node's device list."""

    def __init__(self, binary: Path, topo: topology.NodeTopology) -> None:
        self._proc = subprocess.Popen(
            [str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        n = len(topo.gpus)
        pairs = [
            [a, b, GO_PCIE_TYPE[topo.link(a, b).pcie], topo.link(a, b).allocator_visible_nvlinks]
            for a in range(n)
            for b in range(a + 1, n)
        ]
        self._send({"gpus": n, "pairs": pairs})

    def _send(self, message: object) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(message) + "\n")
        self._proc.stdin.flush()

    def allocate(
        self, free: tuple[int, ...], k: int, *, repeat: int = 1
    ) -> tuple[tuple[int, ...], float]:
        """The policy's choice and its fastest decision time in seconds."""
        self._send({"free": list(free), "k": k, "repeat": repeat})
        assert self._proc.stdout is not None
        answer = json.loads(self._proc.stdout.readline())
        return tuple(answer["gpus"]), answer["ns"] / 1e9

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)


def kubeinfer_choice(
    topo: topology.NodeTopology, free: tuple[int, ...], k: int, *, repeat: int = 1
) -> tuple[tuple[int, ...], float]:
    """kubeinfer's choice on one node and its fastest cold decision time in seconds."""
    node = placement.NodeState(name="node", topology=topo, free=frozenset(free))
    best = math.inf
    chosen: tuple[int, ...] = ()
    for _ in range(repeat):
        gpu_selection.select.cache_clear()
        placement._best_possible.cache_clear()
        start = time.perf_counter()
        outcome = placement.place_replica(placement.Request(gpus=k), [node])
        best = min(best, time.perf_counter() - start)
        chosen = outcome.gpus if isinstance(outcome, placement.Placement) else ()
    return chosen, best


def partitions(n: int, k: int) -> int:
    """Partitions go-gpuallocator's best-effort policy enumerates for k of n free GPUs."""
    if k == 1:
        return n
    pad = -n % k

    def groups(m: int) -> int:
        count: int = math.factorial(m) // (math.factorial(k) ** (m // k) * math.factorial(m // k))
        return count

    return groups(n) if pad == 0 else math.comb(n, k - pad) * groups(n - (k - pad))


def measures(topo: topology.NodeTopology, gpus: tuple[int, ...]) -> tuple[str, int, int]:
    bw = topology_score.bottleneck_gbps(topo, gpus)
    return (
        "-" if bw is None else f"{bw:g}",
        topology_score.pair_score(topo, gpus, nvswitch_aware=False),
        topology_score.numa_span(topo, gpus),
    )


def load_topologies() -> dict[str, topology.NodeTopology]:
    machines = {**recordings.load_dir(SHARED), **recordings.load_dir(SYNTHETIC)}
    return {
        name: recordings.topology_of(machine)
        for name, machine in sorted(machines.items(), key=lambda kv: (len(kv[1].gpus), kv[0]))
        if name not in SKIP
    }


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} us" if seconds < 0.1 else f"{seconds:,.2f} s"


def table_side_by_side(binary: Path, topos: dict[str, topology.NodeTopology]) -> None:
    print("## 1. All GPUs free: quality and decision time (go = go-gpuallocator best-effort)\n")
    head = (
        "| machine | n | k | partitions (go) | bottleneck GB/s go / ki | pair score go / ki "
        "| NUMA span go / ki | time go | time ki | speed-up |"
    )
    print(head)
    print("|" + "---|" * 10)
    for name, topo in topos.items():
        n = len(topo.gpus)
        go = GoAllocator(binary, topo)
        for k in (1, 2, 4, 8):
            if k > n:
                continue
            free = tuple(range(n))
            count = partitions(n, k)
            repeat = 1 if count > 100_000 else 5
            go_set, go_time = go.allocate(free, k, repeat=repeat)
            ki_set, ki_time = kubeinfer_choice(topo, free, k, repeat=5)
            g, m = measures(topo, go_set), measures(topo, ki_set)
            print(
                f"| {name} | {n} | {k} | {count:,} | {g[0]} / {m[0]} | {g[1]} / {m[1]} "
                f"| {g[2]} / {m[2]} | {fmt_time(go_time)} | {fmt_time(ki_time)} "
                f"| {go_time / ki_time:,.1f}x |"
            )
        go.close()
    print()


def sweep(binary: Path, topos: dict[str, topology.NodeTopology]) -> None:
    print("## 2. Every free subset of the 8-GPU recordings, every k\n")
    total = worse_bw = better_bw = go_score_wins = 0
    wins: list[str] = []
    go_short: list[str] = []
    for name, topo in topos.items():
        if len(topo.gpus) != 8:
            continue
        go = GoAllocator(binary, topo)
        for mask in range(1, 256):
            free = topology.indices_of(mask)
            for k in range(1, len(free) + 1):
                go_set, _ = go.allocate(free, k)
                ki_set, _ = kubeinfer_choice(topo, free, k)
                total += 1
                if len(go_set) < k:
                    go_short.append(f"{name} free={list(free)} k={k} -> {list(go_set)}")
                    continue
                if k < 2:
                    continue
                go_bw = topology_score.bottleneck_gbps(topo, go_set) or 0.0
                ki_bw = topology_score.bottleneck_gbps(topo, ki_set) or 0.0
                worse_bw += ki_bw < go_bw
                better_bw += ki_bw > go_bw
                go_own = topology_score.pair_score(topo, go_set, nvswitch_aware=False)
                ki_own = topology_score.pair_score(topo, ki_set, nvswitch_aware=False)
                if go_own > ki_own:
                    go_score_wins += 1
                    wins.append(
                        f"| {name} | {list(free)} | {k} | {list(go_set)} {go_own} @ {go_bw:g} GB/s "
                        f"| {list(ki_set)} {ki_own} @ {ki_bw:g} GB/s |"
                    )
        go.close()
    print(
        f"{total:,} decisions; kubeinfer bottleneck lower than go's: {worse_bw}; higher: "
        f"{better_bw}; go's choice higher on its own pair score: {go_score_wins}\n"
    )
    if go_short:
        print(
            f"go-gpuallocator returned fewer than k GPUs (its padding set) in {len(go_short)} "
            f"decisions, e.g. {'; '.join(go_short[:3])}\n"
        )
    if wins:
        print(
            "| machine | free | k | go set, score @ bottleneck | kubeinfer set, score @ bottleneck |"
        )
        print("|---|---|---|---|---|")
        for line in wins[:40]:
            print(line)
        if len(wins) > 40:
            print(f"| … {len(wins) - 40} more | | | | |")
        print()


def _run_trace(
    topo: topology.NodeTopology, allocate: Allocator, trace: list[tuple[str, int, int]]
) -> dict[str, float]:
    """Replay (op, id, k) events; count NVLink sets, rejections and stranded GPUs per step."""
    n = len(topo.gpus)
    free = set(range(n))
    held: dict[int, tuple[int, ...]] = {}
    multi = nvlink_sets = rejected = 0
    stranded_sum = 0
    steps = 0
    for op, rid, k in trace:
        if op == "free":
            free |= set(held.pop(rid, ()))
            continue
        if len(free) < k:
            rejected += 1
            continue
        chosen = allocate(tuple(sorted(free)), k)
        free -= set(chosen)
        held[rid] = chosen
        if k >= 2:
            multi += 1
            nvlink_sets += all(
                topo.link(a, b).nvlinks > 0 for a, b in itertools.combinations(chosen, 2)
            )
        stranded_sum += sum(
            1
            for g in free
            if topo.nvlink_mask[g]
            and not any(p in free for p in topology.indices_of(topo.nvlink_mask[g]))
        )
        steps += 1
    return {
        "multi-GPU sets all-NVLink": nvlink_sets / multi if multi else 1.0,
        "stranded GPUs (mean per step)": stranded_sum / steps if steps else 0.0,
        "rejected requests": rejected,
    }


def hami_style(topo: topology.NodeTopology) -> Allocator:
    """A HAMi-style topology-blind policy: NUMA-first binpack, lowest indices."""

    def allocate(free: tuple[int, ...], k: int) -> tuple[int, ...]:
        by_numa: dict[int | None, list[int]] = {}
        for g in free:
            by_numa.setdefault(topo.gpus[g].numa_node, []).append(g)
        fitting = sorted((len(gs), gs) for gs in by_numa.values() if len(gs) >= k)
        return tuple(fitting[0][1][:k]) if fitting else free[:k]

    return allocate


def replay(binary: Path, topos: dict[str, topology.NodeTopology], *, trials: int) -> None:
    print("## 3. Fragmentation replay: four 1-GPU then two 2-GPU requests\n")
    print(
        "The kubelet hands the device plugin its available devices in no set order; each trial "
        f"shuffles that order (seeded, {trials} trials). kubeinfer and HAMi-style see a set.\n"
    )
    topo = topos["pcie-a100x8-nvlink-pairs.txt"]
    go = GoAllocator(binary, topo)
    rng = random.Random(43)

    def go_shuffled(free: tuple[int, ...], k: int) -> tuple[int, ...]:
        order = list(free)
        rng.shuffle(order)
        return go.allocate(tuple(order), k)[0]

    policies: dict[str, Allocator] = {
        "go-gpuallocator": go_shuffled,
        "kubeinfer": lambda free, k: kubeinfer_choice(topo, free, k)[0],
        "HAMi-style": hami_style(topo),
    }
    trace = [("alloc", i, k) for i, k in enumerate((1, 1, 1, 1, 2, 2))]
    print("| policy | 2-GPU requests on an NVLink pair | trials where both were |")
    print("|---|---|---|")
    for label, allocate in policies.items():
        runs = trials if label == "go-gpuallocator" else 1
        shares = [
            _run_trace(topo, allocate, trace)["multi-GPU sets all-NVLink"] for _ in range(runs)
        ]
        both = sum(share == 1.0 for share in shares)
        print(f"| {label} | {100 * sum(shares) / runs:.1f}% | {100 * both / runs:.1f}% |")
    print()

    print("## 4. Longer mixed trace (seeded: 600 events, arrivals k in 1,1,1,2,2,4, departures)\n")
    print(
        "| machine | policy | multi-GPU sets all-NVLink | stranded GPUs (mean per step) | rejected |"
    )
    print("|---|---|---|---|---|")
    for name in ("pcie-a100x8-nvlink-pairs.txt", "dgx1-v100.txt", "pcie-a100x16-nvlink-pairs.txt"):
        topo = topos[name]
        trace_rng = random.Random(42)
        mixed: list[tuple[str, int, int]] = []
        live: list[int] = []
        for rid in range(600):
            if live and trace_rng.random() < 0.5:
                mixed.append(("free", live.pop(trace_rng.randrange(len(live))), 0))
            else:
                mixed.append(("alloc", rid, trace_rng.choice((1, 1, 1, 2, 2, 4))))
                live.append(rid)
        node_go = GoAllocator(binary, topo)

        def node_go_shuffled(
            free: tuple[int, ...], k: int, g: GoAllocator = node_go
        ) -> tuple[int, ...]:
            order = list(free)
            rng.shuffle(order)
            return g.allocate(tuple(order), k)[0]

        def node_kubeinfer(
            free: tuple[int, ...], k: int, t: topology.NodeTopology = topo
        ) -> tuple[int, ...]:
            return kubeinfer_choice(t, free, k)[0]

        trace_policies: dict[str, Allocator] = {
            "go-gpuallocator": node_go_shuffled,
            "kubeinfer": node_kubeinfer,
            "HAMi-style": hami_style(topo),
        }
        for label, allocate in trace_policies.items():
            r = _run_trace(topo, allocate, mixed)
            print(
                f"| {name} | {label} | {100 * r['multi-GPU sets all-NVLink']:.0f}% "
                f"| {r['stranded GPUs (mean per step)']:.2f} | {r['rejected requests']:.0f} |"
            )
        node_go.close()
    go.close()
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-sweep", action="store_true", help="omit the every-subset sweep")
    parser.add_argument("--trials", type=int, default=2000, help="shuffled orders in the replay")
    args = parser.parse_args()
    binary = build_go()
    topos = load_topologies()
    table_side_by_side(binary, topos)
    if not args.skip_sweep:
        sweep(binary, topos)
    replay(binary, topos, trials=args.trials)


if __name__ == "__main__":
    main()
