"""The control worker's pure decisions: when to extend or kill, how far, which commands."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sidecar.control import decide
from sidecar.control.decide import Policy
from sidecar.freeswitch.commands import sched_broadcast_api
from sidecar.rating import Rate, Schedule, call_cost, max_duration_for

RATE = Rate(
    1, "51", "Peru", Decimal("0.60"), Decimal("0"), 60, 60, datetime(2020, 1, 1, tzinfo=UTC), None
)
STEADY = Schedule(datetime(2026, 3, 2, 12, tzinfo=UTC), RATE)
POLICY = Policy(extend_threshold=60, block_seconds=300, max_call_seconds=3600, kill_after_seconds=2)
UUID = "e86769d7-3654-4359-a798-935a3e000190"


@pytest.mark.parametrize(
    ("elapsed", "retry_at", "expected"),
    [
        (100.0, 0.0, decide.NONE),  # 200 s left
        (240.0, 0.0, decide.EXTEND),  # exactly the threshold left
        (250.0, 1e12, decide.NONE),  # refused a moment ago: wait for the retry time
        (300.0, 0.0, decide.NONE),  # the scheduled hangup is due now
        (301.9, 0.0, decide.NONE),  # within the kill grace
        (302.1, 0.0, decide.KILL),  # ran past its paid time
    ],
)
def test_next_action(elapsed: float, retry_at: float, expected: str) -> None:
    now = 1_000_000.0
    assert decide.next_action(now - elapsed, 300, now, POLICY, retry_at) == expected


def test_no_extension_beyond_the_longest_call() -> None:
    now = 1_000_000.0
    assert decide.next_action(now - 3590, 3600, now, POLICY) == decide.NONE
    assert decide.plan_extension(STEADY, 3600, POLICY, None) is None
    plan = decide.plan_extension(STEADY, 3500, POLICY, None)
    assert plan is not None and plan.target_seconds == 3600


def test_extension_asks_for_one_block_and_needs_one_more_increment() -> None:
    plan = decide.plan_extension(STEADY, 300, POLICY, None)
    assert plan is not None
    assert plan.target_seconds == 600
    assert plan.want_total == call_cost(RATE, 600) == Decimal("6.0000")
    assert plan.min_total == call_cost(RATE, 301) == Decimal("3.6000")
    # whatever part of the block the account pays, the new paid time follows from the total
    assert max_duration_for(RATE, Decimal("4.00"), plan.target_seconds) == 360


def test_extension_across_a_cheaper_boundary_asks_for_the_spans_cost() -> None:
    # answered 11:55 at 0.60/min; from 12:00 (second 300) a cheaper 0.06/min rate applies:
    # 300 s paid; the next block (to 600 s) costs 3.00 + 300 s at 0.06 = 3.30 in all
    cheaper = RATE._replace(id=2, rate_per_minute=Decimal("0.06"))
    schedule = Schedule(datetime(2026, 3, 2, 11, 55, tzinfo=UTC), RATE, ((300, cheaper),))
    plan = decide.plan_extension(schedule, 300, POLICY, None)
    assert plan is not None and plan.target_seconds == 600
    assert plan.want_total == Decimal("3.3000")
    assert plan.min_total == Decimal("3.0600")  # one more (cheaper) increment: 301 s -> 360
    assert schedule.max_duration(Decimal("3.12"), 600) == 420  # 3.00 + 120 s at 0.06


def test_extension_respects_the_call_cap() -> None:
    capped = decide.plan_extension(STEADY, 300, POLICY, Decimal("4.50"))
    assert capped is not None and capped.want_total == Decimal("4.50")
    assert decide.plan_extension(STEADY, 300, POLICY, Decimal("3.50")) is None  # < next increment


def test_reschedule_deletes_the_group_first_and_schedules_again() -> None:
    policy = Policy(60, 300, 3600, 2, announce_file="/sounds/low_balance.wav", announce_seconds=30)
    commands = decide.reschedule_commands(UUID, 350, policy)
    assert commands == [
        f"sched_del {UUID}",
        f"sched_hangup +349 {UUID} ALLOTTED_TIMEOUT",
        f"sched_broadcast +320 {UUID} /sounds/low_balance.wav aleg",
    ]
    # too close to the end for an announcement; none configured
    assert decide.announce_commands(UUID, 20, policy) == []
    assert decide.reschedule_commands(UUID, 350, POLICY)[2:] == []


def test_seconds_left_rounds_down() -> None:
    assert decide.seconds_left(1000.0, 600, 1250.4) == 349
    assert decide.seconds_left(1000.0, 600, 1700.0) == 1  # never a non-positive delay


@pytest.mark.parametrize(
    "args",
    [
        ("bad uuid", 5, "/x.wav"),
        (UUID, 0, "/x.wav"),
        (UUID, 5, "/x.wav aleg\napi hupall"),
        (UUID, 5, "/x.wav", "cleg"),
    ],
)
def test_sched_broadcast_builder_refuses_hostile_arguments(args: tuple) -> None:
    with pytest.raises(ValueError):
        sched_broadcast_api(*args)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("1795345334167795", 1795345334.167795),  # as uuid_getvar answers: no newline
        ("1795345334167795\n", 1795345334.167795),
        ("0", None),  # ringing: the caller profile has no answer time yet
        ("_undef_", None),
        ("-ERR No such channel!\n", None),
        ("", None),
        ("12ab", None),
    ],
)
def test_answered_epoch_from_uuid_getvar(reply: str, expected: float | None) -> None:
    assert decide.answered_epoch(reply) == expected
