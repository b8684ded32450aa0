"""sipp at both ends of a call: a UAS behind FreeSWITCH's sofia gateway, UACs placing calls.

Every sipp gets its own SIP, control (bound to 127.0.0.1) and media ports. The UAC scenario
answers FreeSWITCH's digest challenge (``-au``/``-ap``), then either talks for ``hold_ms``
and hangs up, or receives FreeSWITCH's BYE first (a scheduled hangup), or gets a final
error response; each call writes one line to its log saying which, with the time from
the 200 OK to the end, so a test knows per call what happened at the caller's end.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from e2e.fs_switch import reserve_ports, stop_process

SIPP = shutil.which("sipp")
# final answers FreeSWITCH gives a refused call (CALL_REJECTED is 603) and a few others, so
# that an unexpected refusal ends the scenario cleanly and shows up with its code
FAILURE_CODES = (403, 404, 408, 480, 481, 486, 487, 488, 500, 502, 503, 603)

_HEAD = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{name}">\n'
_SDP = """
      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
"""


def _invite(cseq: int, auth: bool, headers: tuple[str, ...] = ()) -> str:
    extra = "".join(f"\n      {h}" for h in headers)
    return f"""
  <send retrans="500" start_rtd="true">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[$user]@[remote_ip]>;tag=[pid]T[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:[$user]@[local_ip]:[local_port]>
      Max-Forwards: 70{extra}{chr(10) + "      [authentication]" if auth else ""}
      Content-Type: application/sdp
      Content-Length: [len]
{_SDP}    ]]>
  </send>
"""


def _ack_failure(cseq: int) -> str:
    return f"""
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: <sip:[$user]@[remote_ip]>;tag=[pid]T[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"""


def uac_scenario(hold_ms: int, headers: tuple[str, ...] = ()) -> str:
    """Digest-authenticated call that talks ``hold_ms`` unless FreeSWITCH ends it first;
    ``headers`` are extra INVITE header lines (what a hostile caller may add)."""
    codes = "".join(
        f'  <recv response="{c}" optional="true" next="r{c}"/>\n' for c in FAILURE_CODES
    )
    refusals = "".join(
        f'  <label id="r{c}"/>\n'
        f'  <nop><action><log message="[call_number] refused {c}"/></action></nop>\n'
        f"{_ack_failure(2)}"
        '  <nop next="end"/>\n'
        for c in FAILURE_CODES
    )
    return (
        _HEAD.format(name="apolo uac")
        + '  <nop><action><assignstr assign_to="user" value="[from_user]"/></action></nop>\n'
        + _invite(1, auth=False, headers=headers)
        + '  <recv response="100" optional="true"/>\n'
        + '  <recv response="407" auth="true"/>\n'
        + _ack_failure(1)
        + _invite(2, auth=True, headers=headers)
        + '  <recv response="100" optional="true"/>\n'
        + '  <recv response="180" optional="true"/>\n'
        + '  <recv response="183" optional="true"/>\n'
        + codes
        + '  <recv response="200" rrs="true" rtd="true"/>\n'
        + """
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[$user]@[remote_ip]>;tag=[pid]T[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <nop><action><gettimeofday assign_to="a_s,a_us"/></action></nop>
"""
        + f'  <recv request="BYE" timeout="{hold_ms}" ontimeout="hangup"/>\n'
        + """
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <nop><action>
    <gettimeofday assign_to="b_s,b_us"/>
    <log message="[call_number] ended_by_switch [$a_s] [$a_us] [$b_s] [$b_us]"/>
  </action></nop>
  <nop next="end"/>
  <label id="hangup"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[$user]@[remote_ip]>;tag=[pid]T[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 3 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
  <nop><action>
    <gettimeofday assign_to="b_s,b_us"/>
    <log message="[call_number] hung_up [$a_s] [$a_us] [$b_s] [$b_us]"/>
  </action></nop>
  <nop next="end"/>
"""
        + refusals
        + '  <label id="end"/>\n</scenario>\n'
    )


UAS_SCENARIO = (
    _HEAD.format(name="apolo uas")
    + """
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]U[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]U[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]
"""
    + _SDP
    + """    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""
)


def _common_args(sip_port: int) -> list[str]:
    media = reserve_ports(4)  # audio RTP/RTCP, and video
    return [
        "-i", "127.0.0.1", "-p", str(sip_port), "-mi", "127.0.0.1", "-mp", str(media),
        "-ci", "127.0.0.1", "-cp", str(reserve_ports()), "-nostdin", "-t", "u1",
    ]  # fmt: skip


@dataclass
class Uas:
    """A long-running sipp UAS that answers every INVITE and logs every message it sees."""

    work: Path
    port: int = field(default_factory=reserve_ports)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def messages(self) -> Path:
        return self.work / "uas_messages.log"

    def start(self) -> None:
        scenario = self.work / "uas.xml"
        scenario.write_text(UAS_SCENARIO)
        assert SIPP is not None
        cmd = [SIPP, "-sf", str(scenario), *_common_args(self.port),
               "-trace_msg", "-message_file", str(self.messages)]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=open(self.work / "uas.err", "wb"),
            cwd=self.work, start_new_session=True,
        )  # fmt: skip
        time.sleep(0.2)
        if self.proc.poll() is not None:
            raise RuntimeError(f"sipp UAS exited: {(self.work / 'uas.err').read_text()}")

    def stop(self) -> None:
        stop_process(self.proc, 5)

    def invites_for(self, number: str) -> int:
        """INVITEs that reached this UAS for ``number`` (the request URI's user part)."""
        if not self.messages.exists():
            return 0
        return len(re.findall(rf"^INVITE sip:{re.escape(number)}@", self.messages.read_text(),
                              flags=re.MULTILINE))  # fmt: skip


@dataclass(frozen=True)
class CallOutcome:
    """What one UAC call saw: ``answered`` (then ``hung_up`` / ``ended_by_switch``) or a
    final failure code; ``talk`` is seconds from the 200 OK to the BYE."""

    kind: str  # hung_up | ended_by_switch | refused
    code: int | None = None
    talk: float | None = None


@dataclass
class UacRun:
    returncode: int
    outcomes: list[CallOutcome]
    log: str
    errors: str

    def kinds(self) -> list[str]:
        return sorted(o.kind for o in self.outcomes)


_LINE = re.compile(r"^(\d+) (hung_up|ended_by_switch|refused) (.*)$")


def _outcomes(text: str) -> list[CallOutcome]:
    found = []
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m is None:
            continue
        kind, rest = m.group(2), m.group(3).split()
        if kind == "refused":
            found.append(CallOutcome(kind, code=int(rest[0])))
        else:  # seconds and microseconds of the 200 OK, then of the end
            a_s, a_us, b_s, b_us = (float(v) for v in rest)
            found.append(CallOutcome(kind, talk=(b_s - a_s) + (b_us - a_us) / 1e6))
    return found


_counter = 0
_counter_lock = threading.Lock()


def place_calls(
    work: Path,
    fs_sip_port: int,
    user: str,
    password: str,
    callee: str,
    *,
    calls: int = 1,
    hold_ms: int = 1500,
    rate: int = 10,
    timeout_s: float = 60,
    from_user: str | None = None,
    headers: tuple[str, ...] = (),
) -> UacRun:
    """Run a sipp UAC placing ``calls`` calls (``rate`` per second, all allowed at once) as
    directory user ``user`` to ``callee``, and wait for it to finish. ``from_user`` puts
    another number in From (the caller ID) while digest auth still logs in as ``user``."""
    global _counter
    with _counter_lock:
        _counter += 1
        name = f"uac{_counter}"
    scenario = work / f"{name}.xml"
    scenario.write_text(uac_scenario(hold_ms, headers))
    log, errors = work / f"{name}_calls.log", work / f"{name}_errors.log"
    assert SIPP is not None
    cmd = [
        SIPP, f"127.0.0.1:{fs_sip_port}", "-sf", str(scenario), *_common_args(reserve_ports()),
        "-s", callee, "-key", "user", user, "-key", "from_user", from_user or user,
        "-au", user, "-ap", password,
        "-m", str(calls), "-l", str(calls), "-r", str(rate),
        "-trace_logs", "-log_file", str(log), "-trace_err", "-error_file", str(errors),
        "-timeout", f"{int(timeout_s)}s", "-timeout_error",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=work, timeout=timeout_s + 15,
        check=False,
    )  # fmt: skip
    text = log.read_text() if log.exists() else ""
    err = errors.read_text(errors="replace") if errors.exists() else ""
    return UacRun(
        proc.returncode, _outcomes(text), text, err + proc.stderr.decode(errors="replace")
    )
