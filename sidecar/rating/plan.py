"""What a plan adds to its rates: time zone, parent plan, timings, normalization rules.

Saved with the plan's index (its file header), so one file is one consistent version of
everything that prices a call on the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sidecar.rating.numbers import NumberRule
from sidecar.rating.timing import Timing
from sidecar.rating.zones import zone


@dataclass(frozen=True, slots=True)
class PlanMeta:
    plan_id: int = 0
    timezone: str = "UTC"
    parent_id: int | None = None
    timings: tuple[Timing, ...] = ()
    callee_rules: tuple[NumberRule, ...] = ()
    caller_rules: tuple[NumberRule, ...] = ()

    def timing_by_id(self) -> dict[int, Timing]:
        return {t.id: t for t in self.timings}

    def as_json(self) -> dict[str, Any]:
        return {
            "plan_id": self.plan_id,
            "timezone": self.timezone,
            "parent_id": self.parent_id,
            "timings": [
                {
                    "id": t.id,
                    "name": t.name,
                    "weekdays": sorted(t.weekdays),
                    "start": t.start,
                    "end": t.end,
                    "dates": [d.isoformat() for d in sorted(t.dates)],
                }
                for t in self.timings
            ],
            "callee_rules": [r.as_dict() for r in self.callee_rules],
            "caller_rules": [r.as_dict() for r in self.caller_rules],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanMeta:
        if not data:
            return cls()
        tz = zone(str(data["timezone"]))
        timings = tuple(
            Timing(
                id=int(t["id"]),
                name=str(t["name"]),
                zone=tz,
                weekdays=frozenset(int(d) for d in t["weekdays"]),
                start=int(t["start"]),
                end=int(t["end"]),
                dates=frozenset(date.fromisoformat(d) for d in t["dates"]),
            )
            for t in data["timings"]
        )
        parent = data.get("parent_id")
        return cls(
            plan_id=int(data["plan_id"]),
            timezone=str(data["timezone"]),
            parent_id=None if parent is None else int(parent),
            timings=timings,
            callee_rules=tuple(NumberRule(**r) for r in data["callee_rules"]),
            caller_rules=tuple(NumberRule(**r) for r in data["caller_rules"]),
        )
