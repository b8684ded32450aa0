"""The rating core: number normalisation, longest-prefix-match, timings and call cost.

Plain functions and values over ``Decimal``; nothing here imports Flask, SQL or Redis.
"""

from sidecar.rating.chain import Rating
from sidecar.rating.cost import (
    billed_seconds,
    call_cost,
    charged_seconds,
    max_duration_for,
    shortest_charge,
)
from sidecar.rating.lpm import RateIndex
from sidecar.rating.model import Rate
from sidecar.rating.numbers import NumberRule, apply_rules, normalize_number, received_forms
from sidecar.rating.plan import PlanMeta
from sidecar.rating.spans import Charge, Schedule, Span, build_schedule
from sidecar.rating.timing import Timing

__all__ = [
    "Charge",
    "NumberRule",
    "PlanMeta",
    "Rate",
    "RateIndex",
    "Rating",
    "Schedule",
    "Span",
    "Timing",
    "apply_rules",
    "billed_seconds",
    "build_schedule",
    "call_cost",
    "charged_seconds",
    "max_duration_for",
    "normalize_number",
    "received_forms",
    "shortest_charge",
]
