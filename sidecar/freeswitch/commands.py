"""Builders for FreeSWITCH application arguments and API command strings.

Every argument is validated so that nothing can smuggle a second command, a space-separated
extra argument or a newline into the event socket.
"""

import re

_UUID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_CAUSE_RE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_PATH_RE = re.compile(r"[A-Za-z0-9_./:%(),;=+@-]{1,512}")
_LEGS = frozenset({"aleg", "bleg", "both"})
_MAX_SECONDS = 10 * 24 * 3600

DEFAULT_TIMEOUT_CAUSE = "ALLOTTED_TIMEOUT"


def is_valid_uuid(value: str) -> bool:
    """True for a channel uuid that is safe to put in a command (no spaces, quotes, newlines)."""
    return isinstance(value, str) and _UUID_RE.fullmatch(value) is not None


def _uuid(value: str) -> str:
    if not is_valid_uuid(value):
        raise ValueError(f"invalid channel uuid: {value!r}")
    return value


def is_valid_cause(value: str) -> bool:
    """True for a hangup cause name such as ``ALLOTTED_TIMEOUT``."""
    return isinstance(value, str) and _CAUSE_RE.fullmatch(value) is not None


def _cause(value: str) -> str:
    if not is_valid_cause(value):
        raise ValueError(f"invalid hangup cause: {value!r}")
    return value


def _positive_seconds(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_SECONDS:
        raise ValueError(f"{name} must be an int in 1..{_MAX_SECONDS}, got {value!r}")
    return value


def sched_hangup_seconds(max_duration: int) -> int:
    """Delay to give ``sched_hangup`` so the call never bills more than ``max_duration`` s.

    Billable seconds are billusec rounded UP. FreeSWITCH runs scheduled tasks on a whole-second
    tick: in the capture (scenarios.json run_urlencoded/sched_precision) ``sched_hangup +3``
    ended calls 2.516-3.049 s after it was issued, so ``+N`` can overshoot N by ~50 ms and bill
    N+1. Scheduling ``+(N-1)`` ends the call by about N-0.95 s, i.e. at most N billed seconds.
    """
    return max(1, _positive_seconds(max_duration, "max_duration") - 1)


def execute_on_answer_sched_hangup(max_duration: int, cause: str = DEFAULT_TIMEOUT_CAUSE) -> str:
    """Value for the ``execute_on_answer`` variable, e.g. ``sched_hangup +299 ALLOTTED_TIMEOUT``."""
    return f"sched_hangup +{sched_hangup_seconds(max_duration)} {_cause(cause)}"


def sched_hangup_api(uuid: str, seconds: int, cause: str = DEFAULT_TIMEOUT_CAUSE) -> str:
    return f"sched_hangup +{_positive_seconds(seconds, 'seconds')} {_uuid(uuid)} {_cause(cause)}"


def sched_del_api(uuid: str) -> str:
    """Delete the tasks grouped under ``uuid`` (sched_hangup groups its task by channel uuid)."""
    return f"sched_del {_uuid(uuid)}"


def uuid_kill_api(uuid: str, cause: str = "NORMAL_CLEARING") -> str:
    return f"uuid_kill {_uuid(uuid)} {_cause(cause)}"


def uuid_broadcast_api(uuid: str, path: str, leg: str = "aleg") -> str:
    if not isinstance(path, str) or _PATH_RE.fullmatch(path) is None:
        raise ValueError(f"invalid media path: {path!r}")
    if leg not in _LEGS:
        raise ValueError(f"leg must be one of {sorted(_LEGS)}, got {leg!r}")
    return f"uuid_broadcast {_uuid(uuid)} {path} {leg}"


def sched_broadcast_api(uuid: str, seconds: int, path: str, leg: str = "aleg") -> str:
    """Play ``path`` on the call in ``seconds`` (a scheduler task grouped under ``uuid``)."""
    if not isinstance(path, str) or _PATH_RE.fullmatch(path) is None:
        raise ValueError(f"invalid media path: {path!r}")
    if leg not in _LEGS:
        raise ValueError(f"leg must be one of {sorted(_LEGS)}, got {leg!r}")
    return f"sched_broadcast +{_positive_seconds(seconds, 'seconds')} {_uuid(uuid)} {path} {leg}"
