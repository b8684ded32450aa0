"""End to end on the real FreeSWITCH: calls per second through the Apolo hook, against the
ceiling of the same switch without billing, both in the same run.

The switch, its configuration and sipp are the e2e tier's (``tests/e2e``: the build in
``../shared/freeswitch``, the Apolo dialplan, the mod_python3 hook and mod_xml_cdr posting to
the bench's sidecar). One switch serves both measurements: a directory user in ``default``
goes through the hook (authorization, the bridge, both CDRs posted and settled), one in a
context of the bench's own bridges straight to the same gateway with no hook and no CDR.

For each, sipp places ``STEP_SECONDS`` (smoke: ``SMOKE_STEP_SECONDS``) worth of calls at a
fixed rate (1 s of talk, no RTP), a rate ladder from the bottom up, then a bisection (to
``REFINE`` calls/s) between the last rate sustained and the first one failed; a rate is
sustained when fewer than 1% of its calls fail (a call fails when it is not answered, or
ends otherwise than by its own BYE). The switch gets ``RTP_PORTS`` RTP ports, so that the
calls up at once are limited by its CPU, not by its ports. Skipped, with the reason, when
FreeSWITCH or sipp is missing.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg

from bench import data
from bench.procs import ROOT, start_sidecar

RATES = (20, 30, 40, 50, 60, 70, 80, 90, 100, 120, 140, 160, 200, 250, 300, 400)
SMOKE_RATES = (5,)
STEP_SECONDS = 8
SMOKE_STEP_SECONDS = 3
HOLD_MS = 1000
MAX_FAILED = 0.01  # a rate is sustained below 1% failed calls
REFINE = 5  # calls/s: how close the bisection after the first failed rate gets
NO_BILLING = "apolo_bench_unbilled"
# RTP ports of the switch: a call holds two (one a leg), so the e2e tier's 200 would cap the
# ladder at about 50 calls up at once, a limit of the harness rather than of the switch
RTP_PORTS = 2000


def _tier() -> tuple[ModuleType, ModuleType]:
    """The e2e tier's switch and sipp drivers (``tests/e2e``), imported as its tests do."""
    if str(ROOT / "tests") not in sys.path:
        sys.path.insert(0, str(ROOT / "tests"))
    import e2e.fs_switch
    import e2e.sipp

    return e2e.fs_switch, e2e.sipp


def skip_reason() -> str:
    fs_switch, sipp = _tier()
    install, reason = fs_switch.find_install()
    if install is None:
        return str(reason)
    if sipp.SIPP is None:
        return "sipp is not installed (scripts/test_deps.sh installs it as root)"
    return ""


def _unbilled_context(conf: Path) -> None:
    """A context that bridges to the same gateway as Apolo's, with no hook and no CDR."""
    (conf / "dialplan" / f"{NO_BILLING}.xml").write_text(
        f'<include>\n  <context name="{NO_BILLING}">\n'
        '    <extension name="unbilled">\n'
        '      <condition field="destination_number" expression="^\\+?(\\d{6,15})$">\n'
        '        <action application="set" data="process_cdr=false"/>\n'
        '        <action application="set" data="hangup_after_bridge=true"/>\n'
        '        <action application="bridge" data="sofia/gateway/carrier/$1"/>\n'
        "      </condition>\n    </extension>\n  </context>\n</include>\n",
        encoding="utf-8",
    )


def _step(
    fs: Any, work: Path, user: str, password: str, callee: str, rate: int, seconds: int
) -> dict[str, int]:
    calls = rate * seconds
    run = _tier()[1].place_calls(
        work, fs.ports.sip, user, password, callee, calls=calls, rate=rate, hold_ms=HOLD_MS,
        timeout_s=seconds + 60,
    )  # fmt: skip
    ok = sum(1 for o in run.outcomes if o.kind == "hung_up")
    deadline = time.monotonic() + 30
    while fs.channels() and time.monotonic() < deadline:  # every call of the step ended
        time.sleep(0.2)
    return {"rate": rate, "calls": calls, "ok": ok, "failed": calls - ok}


def climb(
    rates: tuple[int, ...], step: Callable[[int], dict[str, int]], refine: int = REFINE
) -> dict[str, Any]:
    """The highest rate ``step`` sustains: up ``rates`` to the first rate it does not, then
    by bisection, to ``refine`` calls/s, between that one and the last rate sustained (so a
    ratio of two ladders is not an artefact of their coarse steps)."""
    steps: list[dict[str, int]] = []
    sustained = 0
    failed_at = None
    for rate in rates:
        steps.append(step(rate))
        if _failed(steps[-1]):
            failed_at = rate
            break
        sustained = rate
    if failed_at is not None and sustained and refine > 0:
        low, high = sustained, failed_at
        while high - low > refine:
            rate = low + max(refine, (high - low) // 2 // refine * refine)
            if rate >= high:
                break
            steps.append(step(rate))
            if _failed(steps[-1]):
                high = rate
            else:
                low = rate
        sustained = low
    # every rate sustained: the switch can do more than the ladder asks (a floor, not a figure)
    return {"sustained_calls_per_s": sustained, "steps": steps, "top_of_ladder": failed_at is None}


def _failed(step: dict[str, int]) -> bool:
    return step["failed"] >= MAX_FAILED * step["calls"]


def _ladder(fs: Any, work: Path, user: str, password: str, callee: str,
            rates: tuple[int, ...], seconds: int) -> dict[str, Any]:  # fmt: skip
    return climb(rates, lambda rate: _step(fs, work, user, password, callee, rate, seconds))


def run(
    db_url: str, redis_url: str, fs_auth: tuple[str, str], plan: str, callee: str, smoke: bool
) -> dict[str, Any]:
    """Both ladders, with a sidecar of their own: production settings, but the dialplan comes
    from the files (the hook), not from the xml_curl route, as in the e2e tier."""
    reason = skip_reason()
    if reason:
        return {"skipped": reason}
    account = "7" + str(int(time.time()))[-8:]
    data.create_accounts(db_url, plan, [account], Decimal("100000000"))
    env = {"APOLO_DIALPLAN_CONTEXTS": "apolo_curl"}  # a context the bench's calls never use
    before = _cdrs(db_url)
    with start_sidecar(db_url, redis_url, fs_auth, env=env) as sidecar:
        rates, seconds = (SMOKE_RATES, SMOKE_STEP_SECONDS) if smoke else (RATES, STEP_SECONDS)
        out = _both(sidecar.url, fs_auth, account, callee, rates, seconds)
    out["account"] = account
    out["step_seconds"] = seconds
    out["cdrs_stored"] = _cdrs(db_url) - before  # the billed calls' CDRs, both legs
    return out


def _cdrs(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM cdrs").fetchone()
    return int(row[0]) if row else 0


def _both(
    url: str, fs_auth: tuple[str, str], account: str, callee: str, rates: tuple[int, ...],
    seconds: int,
) -> dict[str, Any]:  # fmt: skip
    fs_switch, sipp = _tier()
    install, _ = fs_switch.find_install()
    assert install is not None
    with tempfile.TemporaryDirectory(prefix="apolo-bench-e2e-") as tmp:
        work = Path(tmp)
        uas = sipp.Uas(work)
        uas.start()
        link = fs_switch.SidecarLink(url, *fs_auth)
        hook_env = {"APOLO_SIDECAR_URL": url, "APOLO_FS_USER": fs_auth[0],
                    "APOLO_FS_PASSWORD": fs_auth[1]}  # fmt: skip
        (work / "freeswitch").mkdir()
        ports = fs_switch.Ports.with_rtp(RTP_PORTS)
        fs = fs_switch.FreeSwitch(install, work / "freeswitch", ports, hook_env)
        try:
            fs_switch.build_conf(install, fs.run, fs.ports, fs.esl_password, uas.port, link)
            _unbilled_context(fs.run / "conf")
            try:
                fs.start()
            except RuntimeError:  # a start can time out on a busy host: one more try
                fs.stop()
                fs.start()
            billed = ("6" + secrets.token_hex(3), secrets.token_hex(6))
            unbilled = ("5" + secrets.token_hex(3), secrets.token_hex(6))
            fs.add_user(*billed, account, "default")
            fs.add_user(*unbilled, account, NO_BILLING)
            # the ceiling first: the billed ladder then runs on a switch already warm
            ceiling = _ladder(fs, work, *unbilled, callee, rates, seconds)
            hook = _ladder(fs, work, *billed, callee, rates, seconds)
        finally:
            fs.stop()
            uas.stop()
    ratio = hook["sustained_calls_per_s"] / max(1, ceiling["sustained_calls_per_s"])
    return {
        "hook": hook,
        "no_billing": ceiling,
        "ratio": round(ratio, 2),
        "hold_ms": HOLD_MS,
    }
