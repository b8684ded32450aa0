"""What the control worker does with a live call, decided without I/O (pure functions).

Times are epoch seconds (float). ``paid_seconds`` is the call's ``max_duration``: the talk
time its reservation pays for, counted from the answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from sidecar.freeswitch.commands import (
    sched_broadcast_api,
    sched_del_api,
    sched_hangup_api,
    sched_hangup_seconds,
)
from sidecar.rating import Schedule

NONE, EXTEND, KILL = "none", "extend", "kill"


@dataclass(frozen=True)
class Policy:
    extend_threshold: int  # extend when fewer seconds than this remain
    block_seconds: int  # talk time each extension adds (APOLO_RESERVATION_SECONDS)
    max_call_seconds: int  # no extension beyond this much talk time
    kill_after_seconds: float  # uuid_kill a call this long past its paid time
    announce_file: str = ""  # "" = no low-balance announcement
    announce_seconds: int = 30  # announcement this many seconds before the end
    cause: str = "ALLOTTED_TIMEOUT"


@dataclass(frozen=True)
class ExtensionPlan:
    target_seconds: int
    want_total: Decimal
    min_total: Decimal


def remaining(answered_at: float, paid_seconds: int, now: float) -> float:
    return answered_at + paid_seconds - now


def next_action(
    answered_at: float, paid_seconds: int, now: float, policy: Policy, retry_at: float = 0.0
) -> str:
    left = remaining(answered_at, paid_seconds, now)
    if left < -policy.kill_after_seconds:
        return KILL
    if left <= policy.extend_threshold and now >= retry_at and left > 0:
        if paid_seconds < policy.max_call_seconds:
            return EXTEND
    return NONE


def plan_extension(
    schedule: Schedule, paid_seconds: int, policy: Policy, cap: Decimal | None
) -> ExtensionPlan | None:
    """How far to grow the reservation; None when the call may not run any longer.

    ``schedule`` holds the call's rates from its answer on (a call crossing a rate change
    is priced in spans). The reservation grows to what any call of up to ``paid + block``
    seconds costs (at most the call cap, and at most ``max_call_seconds`` of talk); an
    account that cannot pay at least one more increment gets no extension.
    """
    target = min(paid_seconds + policy.block_seconds, policy.max_call_seconds)
    if target <= paid_seconds:
        return None
    min_total = schedule.max_cost(paid_seconds + 1)
    want_total = schedule.max_cost(target)
    if cap is not None:
        if cap < min_total:
            return None
        want_total = min(want_total, cap)
    return ExtensionPlan(target, want_total, min_total)


def seconds_left(answered_at: float, paid_seconds: int, now: float) -> int:
    """Whole seconds left, rounded down (the conservative side for a hangup delay)."""
    return max(1, math.floor(remaining(answered_at, paid_seconds, now)))


def reschedule_commands(uuid: str, left: int, policy: Policy) -> list[str]:
    """Move the call's end to ``left`` seconds from now.

    ``sched_hangup`` adds a scheduler task grouped under the channel uuid and a second one does
    not replace the first (switch_ivr_schedule_hangup in FreeSWITCH 1.10), so the pending
    tasks of the group are deleted first; that removes a pending announcement too, which is
    then scheduled again. The delete must come first: deleting after adding would remove the
    new hangup as well.
    """
    return [sched_del_api(uuid), *schedule_commands(uuid, left, policy)]


def schedule_commands(uuid: str, left: int, policy: Policy) -> list[str]:
    commands = [sched_hangup_api(uuid, sched_hangup_seconds(left), policy.cause)]
    commands.extend(announce_commands(uuid, left, policy))
    return commands


def announce_commands(uuid: str, left: int, policy: Policy) -> list[str]:
    """The low-balance announcement ``announce_seconds`` before the end, if one is set."""
    if not policy.announce_file or left - policy.announce_seconds < 1:
        return []
    return [sched_broadcast_api(uuid, left - policy.announce_seconds, policy.announce_file)]


def answered_epoch(getvar_reply: str) -> float | None:
    """Answer time from ``uuid_getvar <uuid> answered_time``; None while the channel rings.

    ``answered_time`` is a caller-profile field (switch_caller_get_field_by_name, FreeSWITCH
    1.10): microseconds, ``0`` until the channel answers. ``answer_epoch`` would not do: it is
    set only at hangup (switch_channel_set_timestamps), so a live channel reports ``_undef_``.
    Anything else (``_undef_``, ``-ERR No such channel!``) means not answered as far as we know.
    """
    value = getvar_reply.strip()
    if not value.isdigit() or int(value) == 0:
        return None
    return int(value) / 1e6
