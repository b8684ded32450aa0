import json
import math
import re

import pytest
from fixtures_path import FS_FIXTURES

from sidecar.freeswitch.commands import (
    execute_on_answer_sched_hangup,
    is_valid_uuid,
    sched_del_api,
    sched_hangup_api,
    sched_hangup_seconds,
    uuid_broadcast_api,
    uuid_kill_api,
)
from sidecar.freeswitch.xml_cdr import parse_cdr

SCENARIOS = json.loads((FS_FIXTURES / "scenarios.json").read_text())
CDR_DIR = FS_FIXTURES / "xml_cdr"
UUID = "054f6656-bd85-4313-a69a-81c331c918b3"


def _sent_commands() -> set[str]:
    """Every API command the capture client sent (scenarios.json + raw ESL control streams)."""
    cmds = set()
    for scenario in SCENARIOS.values():
        for step in scenario.get("steps", []) if isinstance(scenario, dict) else []:
            cmds.add(step["cmd"])
    for raw in (FS_FIXTURES / "esl/control").glob("*.to_fs.raw"):
        for line in raw.read_text().splitlines():
            if line.startswith("api "):
                cmds.add(line.removeprefix("api "))
    return cmds


SENT = _sent_commands()


# --- whole-second scheduling -----------------------------------------------------------------


@pytest.mark.parametrize(("limit", "seconds"), [(1, 1), (2, 1), (3, 2), (5, 4), (300, 299)])
def test_sched_hangup_seconds(limit: int, seconds: int) -> None:
    assert sched_hangup_seconds(limit) == seconds


def test_sched_precision_capture_justifies_minus_one() -> None:
    runs = SCENARIOS["run_urlencoded/sched_precision"]["runs"]
    assert len(runs) == 6
    ended = [run["ended_after_s"] for run in runs]
    assert all(run["reply"] == "+OK" for run in runs)
    # "sched_hangup +3" fires on a whole-second tick: 2.52 .. 3.05 s after being issued.
    assert 2.5 <= min(ended) and max(ended) <= 3.05
    overshoot = max(ended) - 3
    assert 0 < overshoot < 0.05
    # +N alone can bill N+1 seconds once billusec is rounded up ...
    assert math.ceil(max(ended)) == 4
    # ... while +(N-1) stays within N for every limit >= 2.
    for limit in range(2, 3601):
        worst = sched_hangup_seconds(limit) + overshoot
        assert math.ceil(worst) <= limit


def test_execute_on_answer_cdrs_show_the_overshoot() -> None:
    """In the captured CDRs sched_hangup +4 on answer billed 4.02 s, i.e. 5 rounded-up seconds."""
    checked = 0
    for path in sorted(CDR_DIR.rglob("*.xml")):
        if "err_log_dir" in path.parts:
            continue
        rec = parse_cdr(path.read_bytes())
        arg = rec.variables.get("execute_on_answer")
        if rec.hangup_cause != "ALLOTTED_TIMEOUT" or not arg:
            continue
        n = int(re.fullmatch(r"sched_hangup \+(\d+) ALLOTTED_TIMEOUT", arg).group(1))
        assert n == 4
        assert n * 1_000_000 < rec.billusec <= (n + 0.05) * 1_000_000
        assert rec.billsec == n + 1  # would exceed a limit of n
        assert rec.fs_billsec == n
        # our value for a limit of n schedules one second earlier
        assert execute_on_answer_sched_hangup(n) == f"sched_hangup +{n - 1} ALLOTTED_TIMEOUT"
        assert execute_on_answer_sched_hangup(n + 1) == arg
        checked += 1
    assert checked >= 3


def test_api_sched_hangup_cdr_within_the_window() -> None:
    rec = parse_cdr((CDR_DIR / "urlencoded/sched_hangup_3s_loopback_a_outbound.xml").read_bytes())
    assert rec.uuid == UUID
    assert 2_500_000 <= rec.billusec <= 3_050_000
    assert sched_hangup_api(UUID, 3) in SENT


# --- command strings match what FreeSWITCH accepted --------------------------------------------


def test_builders_reproduce_captured_commands() -> None:
    assert sched_hangup_api(UUID, 3, "ALLOTTED_TIMEOUT") in SENT
    assert sched_hangup_api("b78d5dea-1cd8-4fd1-8acc-cba1a179af83", 6) in SENT
    assert sched_del_api("b78d5dea-1cd8-4fd1-8acc-cba1a179af83") in SENT
    live = "012e0988-07ee-45cb-85b1-8bfbd998e314"
    assert uuid_kill_api(live, "ALLOTTED_TIMEOUT") in SENT
    assert sched_del_api(live) in SENT
    assert uuid_broadcast_api(live, "tone_stream://%(200,0,800)") in SENT
    assert uuid_kill_api(live) == f"uuid_kill {live} NORMAL_CLEARING"
    assert (
        uuid_broadcast_api(live, "/tmp/a.wav", "both") == f"uuid_broadcast {live} /tmp/a.wav both"
    )


def test_execute_on_answer_value_format() -> None:
    assert execute_on_answer_sched_hangup(300) == "sched_hangup +299 ALLOTTED_TIMEOUT"
    assert execute_on_answer_sched_hangup(60, "NORMAL_CLEARING") == (
        "sched_hangup +59 NORMAL_CLEARING"
    )


# --- validation --------------------------------------------------------------------------------

BAD_UUIDS = ["", " ", "a b", "x\napi hupall", "uuid;", "-leading", "a" * 200, "é"]


@pytest.mark.parametrize("bad", BAD_UUIDS)
def test_bad_uuids(bad: str) -> None:
    assert not is_valid_uuid(bad)
    for build in (
        lambda: sched_hangup_api(bad, 5),
        lambda: sched_del_api(bad),
        lambda: uuid_kill_api(bad),
        lambda: uuid_broadcast_api(bad, "/tmp/a.wav"),
    ):
        with pytest.raises(ValueError, match="uuid"):
            build()


@pytest.mark.parametrize("bad", ["", "allotted_timeout", "NORMAL CLEARING", "X\n", "1ABC", "A-B"])
def test_bad_causes(bad: str) -> None:
    with pytest.raises(ValueError, match="cause"):
        uuid_kill_api(UUID, bad)
    with pytest.raises(ValueError, match="cause"):
        sched_hangup_api(UUID, 5, bad)
    with pytest.raises(ValueError, match="cause"):
        execute_on_answer_sched_hangup(5, bad)


@pytest.mark.parametrize("bad", [0, -1, 10 * 24 * 3600 + 1, True, 1.5, "5", None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        sched_hangup_seconds(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sched_hangup_api(UUID, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "leg"),
    [
        ("a b.wav", "aleg"),
        ("x\nuuid_kill y", "aleg"),
        ("${x}", "aleg"),
        ("", "aleg"),
        ("/tmp/a.wav", "cleg"),
        ("/tmp/a.wav", "aleg both"),
    ],
)
def test_bad_broadcast_arguments(path: str, leg: str) -> None:
    with pytest.raises(ValueError):
        uuid_broadcast_api(UUID, path, leg)
