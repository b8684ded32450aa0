"""Reading counters back from the Prometheus text format of GET /metrics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def counter(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of counter ``name`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_total" and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                total += sample.value
    return total
