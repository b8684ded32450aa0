"""What the drill prints: per fault, what the switch saw in its window; then the books."""

from __future__ import annotations

from dataclasses import dataclass, field

from books import Books

from sidecar.simulator.runner import CallResult


@dataclass
class Fault:
    name: str
    started: float
    engine: str = ""  # what the engine did, and when
    ended: float = 0.0  # the window ends where the next one starts
    commands: int = 0  # event-socket commands the switch had received when it started
    control: str = ""  # what apolo control did meanwhile


@dataclass
class Window:
    """What the switch saw between ``start`` and ``end`` (epoch seconds)."""

    results: list[CallResult]
    start: float
    end: float
    auth_failed: int = 0
    auth_refused: dict[str, int] = field(default_factory=dict)
    authorizations: int = 0
    cdr_retried: int = 0
    spooled: int = 0
    cdr_posts: int = 0
    first_failure: float | None = None
    last_failure: float | None = None
    samples: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for r in self.results:
            if self.start <= r.authorized_at < self.end:
                self.authorizations += 1
                if r.authorize_error is not None:
                    self.auth_failed += 1
                    self._failure(r.authorized_at, f"authorize: {r.authorize_error}")
                elif not r.authorized:
                    self.auth_refused[r.reason] = self.auth_refused.get(r.reason, 0) + 1
            tries = [(t, ok) for t, ok in r.cdr_tries if self.start <= t < self.end]
            self.cdr_posts += len(tries)
            failed = [t for t, ok in tries if not ok]
            if failed:
                self.cdr_retried += 1
                for t in failed:
                    self._failure(t, f"CDR: {r.errors[0] if r.errors else '?'}")
            if r.spooled and tries and self.start <= r.cdr_tries[-1][0] < self.end:
                self.spooled += 1

    def _failure(self, at: float, what: str) -> None:
        sample = what[:160]
        if len(self.samples) < 3 and sample not in self.samples:
            self.samples.append(sample)
        self.first_failure = at if self.first_failure is None else min(self.first_failure, at)
        self.last_failure = at if self.last_failure is None else max(self.last_failure, at)


def print_report(results: list[CallResult], faults: list[Fault], books: Books, started: float,
                 loaded: float, replayed: str, reads: str) -> None:  # fmt: skip
    baseline = Window(results, started, faults[0].started)
    print()
    print(f"== ha-drill: {len(results)} calls started in {loaded:.0f} s "
          f"({len(results) / loaded:.1f}/s) through HAProxy")  # fmt: skip
    print(f"   before any fault: {_window_line(baseline)}")
    for n, fault in enumerate(faults, 1):
        w = Window(results, fault.started, fault.ended)
        print(f"\n-- fault {n}: {fault.name}")
        print(f"   engine: {fault.engine}")
        if w.last_failure is None:
            print("   time to recover: 0 s as the switch saw it (no request failed)")
        else:
            assert w.first_failure is not None
            print(f"   time to recover: {w.last_failure - fault.started:.1f} s as the switch "
                  f"saw it (failures from +{w.first_failure - fault.started:.1f} s "
                  f"to +{w.last_failure - fault.started:.1f} s)")  # fmt: skip
        print(f"   {_window_line(w)}")
        for sample in w.samples:
            print(f"     e.g. {' '.join(sample.split())}")
        print(f"   apolo control: {fault.control}")
    print(f"\n   spool: {replayed}")
    print(f"   replica reads: {reads}")
    retried = sum(r.cdr_retried for r in results)
    print(f"\n== books ({books.calls} calls, {books.cdrs_stored} CDRs stored, "
          f"{books.acknowledged} acknowledged, {retried} retried, "
          f"charged {books.charged_total})")  # fmt: skip
    for label, ok, value in books.checks():
        print(f"   {'ok  ' if ok else 'FAIL'} {label}: {value}")
    for story in books.open_details:
        print(f"     open: {story}")
    print(f"   reservations committed after their call's CDR, released at once: "
          f"{books.released_late}")  # fmt: skip
    print("ha-drill: " + ("PASS" if books.ok else "FAIL"))


def _window_line(w: Window) -> str:
    refused = sum(w.auth_refused.values())
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(w.auth_refused.items()))
    return (f"authorizations {w.authorizations}: failed {w.auth_failed}, refused {refused}"
            f"{f' ({reasons})' if reasons else ''}; CDR posts {w.cdr_posts}: CDRs retried "
            f"{w.cdr_retried}, spooled {w.spooled}")  # fmt: skip
