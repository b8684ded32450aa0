"""The rating core: destination normalisation, longest-prefix-match and call cost.

Plain functions and values over ``Decimal``; nothing here imports Flask, SQL or Redis.
"""

from sidecar.rating.cost import billed_seconds, call_cost, max_duration_for
from sidecar.rating.lpm import RateIndex
from sidecar.rating.model import Rate
from sidecar.rating.numbers import normalize_number

__all__ = [
    "Rate",
    "RateIndex",
    "billed_seconds",
    "call_cost",
    "max_duration_for",
    "normalize_number",
]
