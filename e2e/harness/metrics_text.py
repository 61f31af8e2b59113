"""Samples out of the Prometheus text format, read with ``prometheus_client.parser``.

Owns: fetching a ``/metrics`` page and picking samples by name and labels (``samples``,
``value``, ``total``, ``sum_by``) for the harness, the benchmarks and the tests; the one reader of
the format in ``e2e/``.
Must not: write the format (the simulators use ``prometheus_client``'s registry) or query
Prometheus itself (``prometheus`` does).
"""

from __future__ import annotations

import urllib.request

from prometheus_client import parser
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample


def scrape(url: str, *, timeout: float = 5.0) -> str:
    """The text a ``/metrics`` URL serves."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        text: str = response.read().decode()
    return text


def _named(family: Metric, sample: Sample, name: str) -> bool:
    # The parser names every counter sample ``<family>_total``, also where the page wrote the
    # bare name (Triton's ``nv_inference_count``): accept the name as the page wrote it.
    return sample.name == name or (
        family.type == "counter" and family.name == name and sample.name == f"{name}_total"
    )


def samples(text: str, name: str, **labels: str) -> list[Sample]:
    """The samples named ``name`` as the page writes it (``foo_total``, ``foo_bucket``, or a
    counter's bare name) whose labels include ``labels``, in page order."""
    return [
        sample
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
        if _named(family, sample, name) and labels.items() <= sample.labels.items()
    ]


def value(text: str, name: str, **labels: str) -> float:
    """The value of the first such sample; ``LookupError`` naming it when there is none."""
    found = samples(text, name, **labels)
    if not found:
        raise LookupError(f"no sample {name}{labels} in:\n{text}")
    return float(found[0].value)


def total(text: str, name: str, **labels: str) -> float:
    """The sum of every such sample (0 when there is none, as for a counter never incremented)."""
    return sum(float(s.value) for s in samples(text, name, **labels))


def sum_by(text: str, name: str, label: str) -> dict[str, float]:
    """The samples named ``name`` summed by the value of one label (samples without it skipped)."""
    totals: dict[str, float] = {}
    for sample in samples(text, name):
        key = sample.labels.get(label)
        if key is not None:
            totals[key] = totals.get(key, 0.0) + float(sample.value)
    return totals
