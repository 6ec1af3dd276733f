"""Reading Prometheus text exposition (the API's /metrics, a worker's metrics server)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def scrape(url: str, **kwargs: object) -> Samples:
    resp = httpx.get(url, timeout=10, **kwargs)  # type: ignore[arg-type]
    resp.raise_for_status()
    return parse(resp.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample's value; 0 when it does not exist yet (a labelled counter never touched)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
