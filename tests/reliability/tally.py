"""Figures the reliability suite adds up across its scenarios, printed at the end of the run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Tally:
    scenarios: list[str] = field(default_factory=list)
    calls: int = 0
    cdrs: int = 0
    faults: list[str] = field(default_factory=list)
    spooled: int = 0
    replayed: int = 0
    lost: int = 0
    double_charged: int = 0
    # hostile inputs: every one tried is either refused (4xx) or answered safely (a denial,
    # a value made inert, a CDR stored and flagged); none may answer 5xx or change data
    hostile_tried: int = 0
    hostile_refused: int = 0
    hostile_safe: int = 0
    hostile_5xx: int = 0
    hostile_changed: int = 0

    def hostile(self, status: int, changed: bool, safe: bool = False) -> None:
        """Count one hostile input by its answer and whether data changed that should not."""
        self.hostile_tried += 1
        if status >= 500 or status == 0:  # 0: no answer at all
            self.hostile_5xx += 1
        elif 400 <= status < 500:
            self.hostile_refused += 1
        elif safe:
            self.hostile_safe += 1
        if changed:
            self.hostile_changed += 1

    def lines(self) -> list[str]:
        return [
            f"scenarios run: {len(self.scenarios)} ({', '.join(self.scenarios) or '-'})",
            f"calls: {self.calls}",
            f"CDRs stored: {self.cdrs} (spooled to err-log-dir {self.spooled},"
            f" replayed {self.replayed})",
            f"faults injected: {len(self.faults)} ({', '.join(self.faults) or '-'})",
            f"hostile inputs tried: {self.hostile_tried}, refused (4xx): {self.hostile_refused},"
            f" answered safely: {self.hostile_safe}, 5xx: {self.hostile_5xx} (must be 0),"
            f" changed: {self.hostile_changed} (must be 0)",
            f"lost: {self.lost}",
            f"double-charged: {self.double_charged}",
        ]


TALLY = Tally()
