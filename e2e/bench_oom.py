"""OOM-risk prediction replayed over synthetic GPU memory traces: lead time, precision, recall.

Run: ``python -m e2e.bench_oom`` (prints a table; ``--json`` for machine-readable output).

Each trace is a seeded series of GPU memory samples of one workload against its 40 GiB budget,
sampled every 10 s for up to 4 h, replayed through exactly what runs in the cluster: the node
agent's sample window (``agent.sampling.MemoryWindow``, 10 min) whose trend it publishes every
30 s, and the operator's prediction (``planning.gpu.oom.predict``, GPUPool default threshold 0.9). An *alarm* is a risk of
High or Critical (what raises ``OOMRisk`` on an InferenceService); an *event* is the first
sample at or above the budget (the workload would be killed there, so the trace ends).

Families (``TRACES_PER_FAMILY`` each):

- ``leak`` (positive): a steady base plus a linear leak reaching the budget 20 min to 4 h in;
- ``leak-burst`` (positive): a slow leak (base at 80 % after 0.5-3.5 h) under bursts of +15-25 %
  every 5-15 min; a burst crosses the budget first;
- ``steady`` (negative): a flat base at 40-85 % with 1 % noise;
- ``bursts`` (negative): a base at 45-60 % with bursts of +10-25 % lasting 30-90 s;
- ``plateau`` (negative): a leak that stops at 70-80 % of the budget;
- ``sawtooth`` (negative): allocator / cache ramps of +20 % over 1-5 min dropping back.

Precision = alarmed positives / all alarmed traces; recall = positives alarmed before their
event / positives; lead time = event time - first alarm time, over the alarmed positives.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
from collections.abc import Callable, Iterator

from kubeinfer.agent import sampling
from kubeinfer.planning.gpu import oom

BUDGET_MIB = 40960.0
THRESHOLD = 0.9
INTERVAL_S = 10.0
DURATION_S = 4 * 3600.0
WINDOW_S = 600.0
PREDICT_EVERY_S = 30.0
"""The agent publishes memory-only changes at most this often (``memory_publish_s``)."""
TRACES_PER_FAMILY = 20


@dataclasses.dataclass(frozen=True)
class Trace:
    """One synthetic series."""

    family: str
    positive: bool
    samples: tuple[tuple[float, float], ...]


@dataclasses.dataclass(frozen=True)
class Replay:
    """What the predictor did on one trace."""

    trace: Trace
    first_alarm_s: float | None
    event_s: float | None


def _times() -> Iterator[float]:
    t = 0.0
    while t <= DURATION_S:
        yield t
        t += INTERVAL_S


def _series(family: str, positive: bool, level: Callable[[float], float]) -> Trace:
    samples = []
    for t in _times():
        value = max(0.0, level(t))
        samples.append((t, value))
        if value >= BUDGET_MIB:
            break
    return Trace(family, positive, tuple(samples))


def _noise(rng: random.Random) -> Callable[[], float]:
    sigma = 0.01 * BUDGET_MIB
    return lambda: rng.gauss(0.0, sigma)


def _bursts(rng: random.Random, low: float, high: float) -> Callable[[float], float]:
    starts: list[tuple[float, float, float]] = []
    t = rng.uniform(60, 600)
    while t < DURATION_S:
        starts.append((t, rng.uniform(30, 90), rng.uniform(low, high) * BUDGET_MIB))
        t += rng.uniform(300, 900)
    return lambda now: sum(size for s, d, size in starts if s <= now < s + d)


def leak(rng: random.Random) -> Trace:
    base, noise = rng.uniform(0.4, 0.6) * BUDGET_MIB, _noise(rng)
    start = rng.uniform(0, 1800)
    rate = (BUDGET_MIB - base) / rng.uniform(1200, DURATION_S - start)  # OOM in 20 min to 4 h
    return _series("leak", True, lambda t: base + max(0.0, t - start) * rate + noise())


def leak_burst(rng: random.Random) -> Trace:
    base, noise = rng.uniform(0.45, 0.55) * BUDGET_MIB, _noise(rng)
    rate = (0.8 * BUDGET_MIB - base) / rng.uniform(1800, DURATION_S - 1800)
    burst = _bursts(rng, 0.15, 0.25)
    return _series("leak-burst", True, lambda t: base + t * rate + burst(t) + noise())


def steady(rng: random.Random) -> Trace:
    base, noise = rng.uniform(0.4, 0.85) * BUDGET_MIB, _noise(rng)
    return _series("steady", False, lambda t: base + noise())


def bursts(rng: random.Random) -> Trace:
    base, noise = rng.uniform(0.45, 0.6) * BUDGET_MIB, _noise(rng)
    burst = _bursts(rng, 0.10, 0.25)
    return _series("bursts", False, lambda t: base + burst(t) + noise())


def plateau(rng: random.Random) -> Trace:
    base, rate, noise = rng.uniform(0.35, 0.45) * BUDGET_MIB, rng.uniform(10, 60) / 60, _noise(rng)
    top = rng.uniform(0.7, 0.8) * BUDGET_MIB
    return _series("plateau", False, lambda t: min(top, base + t * rate) + noise())


def sawtooth(rng: random.Random) -> Trace:
    base, period, noise = rng.uniform(0.4, 0.6) * BUDGET_MIB, rng.uniform(60, 300), _noise(rng)
    rise = 0.2 * BUDGET_MIB
    return _series("sawtooth", False, lambda t: base + rise * ((t % period) / period) + noise())


FAMILIES: tuple[Callable[[random.Random], Trace], ...] = (
    leak,
    leak_burst,
    steady,
    bursts,
    plateau,
    sawtooth,
)


def traces(seed: int = 4, per_family: int = TRACES_PER_FAMILY) -> list[Trace]:
    """Every family's traces, deterministic for ``seed``."""
    rng = random.Random(seed)
    return [family(rng) for family in FAMILIES for _ in range(per_family)]


def replay(trace: Trace) -> Replay:
    """Feed the trace through the agent's window and the operator's prediction."""
    window = sampling.MemoryWindow(WINDOW_S)
    alarm: float | None = None
    event: float | None = None
    for t, used in trace.samples:
        if used >= BUDGET_MIB:
            event = t
            break
        window.add(0, t, used)
        if alarm is not None or t % PREDICT_EVERY_S:
            continue
        trend = window.trends().get(0)
        if trend is None:
            continue
        verdict = oom.predict(trend, budget=BUDGET_MIB, threshold=THRESHOLD, window_s=WINDOW_S)
        if verdict.risk in oom.ALARM_LEVELS:
            alarm = t
    return Replay(trace, alarm, event)


@dataclasses.dataclass(frozen=True)
class Report:
    """Aggregate figures, overall and per family."""

    precision: float
    recall: float
    lead_median_s: float | None
    lead_min_s: float | None
    lead_p10_s: float | None
    families: dict[str, dict[str, float | int | None]]


def _leads(replays: list[Replay]) -> list[float]:
    return sorted(
        r.event_s - r.first_alarm_s
        for r in replays
        if r.trace.positive and r.event_s is not None and r.first_alarm_s is not None
    )


def evaluate(replays: list[Replay]) -> Report:
    """Precision, recall and lead times of ``replays``."""
    alarmed = [r for r in replays if r.first_alarm_s is not None]
    true_alarms = [r for r in alarmed if r.trace.positive]
    positives = [r for r in replays if r.trace.positive]
    leads = _leads(replays)
    families: dict[str, dict[str, float | int | None]] = {}
    for name in dict.fromkeys(r.trace.family for r in replays):
        own = [r for r in replays if r.trace.family == name]
        own_leads = _leads(own)
        families[name] = {
            "traces": len(own),
            "alarmed": sum(1 for r in own if r.first_alarm_s is not None),
            "events": sum(1 for r in own if r.event_s is not None),
            "lead_median_s": statistics.median(own_leads) if own_leads else None,
        }
    return Report(
        precision=len(true_alarms) / len(alarmed) if alarmed else 1.0,
        recall=len(leads) / len(positives) if positives else 1.0,
        lead_median_s=statistics.median(leads) if leads else None,
        lead_min_s=leads[0] if leads else None,
        lead_p10_s=leads[len(leads) // 10] if leads else None,
        families=families,
    )


def main(argv: list[str] | None = None) -> int:
    """Print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args(argv)
    report = evaluate([replay(t) for t in traces(args.seed)])
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=1))
        return 0
    print(f"{'family':<12}{'traces':>8}{'events':>8}{'alarmed':>9}{'median lead':>13}")
    for name, row in report.families.items():
        lead = row["lead_median_s"]
        shown = f"{lead / 60:.1f} min" if isinstance(lead, float | int) else "-"
        print(f"{name:<12}{row['traces']:>8}{row['events']:>8}{row['alarmed']:>9}{shown:>13}")
    print(
        f"precision {report.precision:.3f}  recall {report.recall:.3f}  lead time median "
        f"{(report.lead_median_s or 0) / 60:.1f} min, p10 {(report.lead_p10_s or 0) / 60:.1f} "
        f"min, min {(report.lead_min_s or 0) / 60:.1f} min"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
