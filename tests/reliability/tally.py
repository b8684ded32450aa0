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
    hostile_inputs: int = 0

    def lines(self) -> list[str]:
        return [
            f"scenarios run: {len(self.scenarios)} ({', '.join(self.scenarios) or '-'})",
            f"calls: {self.calls}",
            f"CDRs stored: {self.cdrs} (spooled to err-log-dir {self.spooled},"
            f" replayed {self.replayed})",
            f"faults injected: {len(self.faults)} ({', '.join(self.faults) or '-'})",
            f"hostile inputs refused: {self.hostile_inputs}",
            f"lost: {self.lost}",
            f"double-charged: {self.double_charged}",
        ]


TALLY = Tally()
