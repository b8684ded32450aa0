"""The real FreeSWITCH of ``../shared/freeswitch`` as the drill's switch, when it is there.

The simulator still makes the HTTP side of each call (the hook's authorization, mod_xml_cdr's
posts, with their retries); its channels are real ones: each call is a loopback channel
(``originate {origination_uuid=...}loopback/wait/drill &park``) that rings while the sidecar
is asked, is answered (``uuid_answer`` on its loopback partner), gets the dialplan's
``sched_hangup`` and ends when the caller hangs up (``uuid_kill``), when FreeSWITCH's own
scheduler fires, or when ``apolo control`` (connected to this FreeSWITCH's event socket) cuts
it. So the control worker extends, moves hangups and reconciles against FreeSWITCH itself
while the databases fail over. mod_xml_cdr is not loaded: the simulator posts the CDRs.

FreeSWITCH runs from a minimal configuration written here (only the modules it needs,
event socket on the drill's port, no SIP), with every directory under the run directory, as
``../shared/freeswitch/README.md`` asks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from processes import Proc, ensure_free, port_open, spawn, wait_for

from sidecar.control.esl import EslConnection, EslError

MODULES = ("mod_logfile", "mod_event_socket", "mod_commands", "mod_dptools",
           "mod_dialplan_xml", "mod_loopback")  # fmt: skip
DIRS = ("log", "db", "run", "scripts", "storage", "recordings", "temp", "cache", "certs",
        "sounds")  # fmt: skip


def find_home(shared: Path) -> Path | None:
    """``../shared/freeswitch`` when it holds a FreeSWITCH that runs here."""
    home = shared / "freeswitch"
    binary = home / "bin" / "freeswitch"
    if not binary.exists():
        return None
    env = {**os.environ, "LD_LIBRARY_PATH": str(home / "lib")}
    try:
        done = subprocess.run([str(binary), "-version"], env=env, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return home if done.returncode == 0 and b"FreeSWITCH version" in done.stdout else None


def _config(esl_port: int, password: str, rtp: tuple[int, int], log: Path) -> str:
    modules = "\n".join(f'        <load module="{m}"/>' for m in MODULES)
    return f"""<?xml version="1.0"?>
<document type="freeswitch/xml">
  <section name="configuration" description="ha-drill">
    <configuration name="switch.conf" description="core">
      <settings>
        <param name="max-sessions" value="2000"/>
        <param name="sessions-per-second" value="200"/>
        <param name="rtp-start-port" value="{rtp[0]}"/>
        <param name="rtp-end-port" value="{rtp[1]}"/>
        <param name="loglevel" value="warning"/>
      </settings>
    </configuration>
    <configuration name="pre_load_modules.conf" description="none"><modules/></configuration>
    <configuration name="post_load_modules.conf" description="none"><modules/></configuration>
    <configuration name="modules.conf" description="what the drill needs">
      <modules>
{modules}
      </modules>
    </configuration>
    <configuration name="logfile.conf" description="log">
      <settings><param name="rotate-on-hup" value="true"/></settings>
      <profiles><profile name="default"><settings>
        <param name="logfile" value="{log}"/>
      </settings><mappings><map name="all" value="warning,err,crit,alert"/></mappings>
      </profile></profiles>
    </configuration>
    <configuration name="event_socket.conf" description="apolo control">
      <settings>
        <param name="nat-map" value="false"/>
        <param name="listen-ip" value="127.0.0.1"/>
        <param name="listen-port" value="{esl_port}"/>
        <param name="password" value="{password}"/>
      </settings>
    </configuration>
  </section>
  <section name="dialplan" description="ha-drill">
    <context name="drill">
      <extension name="wait">
        <condition field="destination_number" expression="^wait$">
          <action application="ring_ready"/>
          <action application="park"/>
        </condition>
      </extension>
    </context>
  </section>
</document>
"""


class FreeSwitch:
    """One FreeSWITCH process and the drill's two event-socket connections to it (commands,
    and events telling when each channel answered and ended)."""

    def __init__(self, home: Path, directory: Path, esl_port: int, password: str,
                 rtp: tuple[int, int]) -> None:  # fmt: skip
        self.home = home
        self.directory = directory / "freeswitch"
        self.port = esl_port
        self.password = password
        self.rtp = rtp
        self.proc: Proc | None = None
        self._commands: EslConnection | None = None
        self._lock = threading.Lock()
        self._answered: dict[str, float] = {}
        self._ended: dict[str, tuple[float, str]] = {}
        self._ours: set[str] = set()  # the calls' channels (their loopback partners are not)
        self._state = threading.Condition()
        self._stop = threading.Event()

    # ------------------------------------------------------------------ process
    def start(self) -> None:
        if self.directory.exists():
            shutil.rmtree(self.directory)
        for name in ("conf", *DIRS):
            (self.directory / name).mkdir(parents=True)
        (self.directory / "conf" / "freeswitch.xml").write_text(
            _config(self.port, self.password, self.rtp, self.directory / "log" / "freeswitch.log")
        )
        ensure_free(self.port)
        args = [str(self.home / "bin" / "freeswitch"), "-nc", "-nf", "-nonat", "-nonatmap",
                "-conf", str(self.directory / "conf"), "-mod", str(self.home / "mod")]  # fmt: skip
        for name in DIRS:
            args += [f"-{name}", str(self.directory / name)]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(self.directory),
               "LD_LIBRARY_PATH": str(self.home / "lib")}  # fmt: skip
        self.proc = spawn("freeswitch", args, self.directory / "console.log", env,
                          cwd=self.directory)  # fmt: skip
        wait_for("FreeSWITCH's event socket", lambda: port_open(self.port), 60, every=0.2)
        self._commands = EslConnection.open("127.0.0.1", self.port, self.password)
        events = EslConnection.open("127.0.0.1", self.port, self.password)
        events.subscribe("json", ("CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"))
        threading.Thread(target=self._listen, args=(events,), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._commands is not None:
            try:
                self._api("hupall NORMAL_CLEARING")
            except (EslError, OSError, TimeoutError):
                pass
            self._commands.close()
        if self.proc is not None:
            self.proc.stop(timeout=20)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}:{self.password}"

    def _api(self, command: str) -> str:
        with self._lock:
            assert self._commands is not None
            return self._commands.api(command, timeout=10)

    def _listen(self, conn: EslConnection) -> None:
        while not self._stop.is_set():
            try:
                event = conn.next_event(1.0)
            except (EslError, OSError):
                return
            if event is None:
                continue
            uuid = event.get("Unique-ID")
            stamp = int(event.get("Event-Date-Timestamp") or time.time() * 1e6) / 1e6
            with self._state:
                if event.name == "CHANNEL_ANSWER":
                    self._answered.setdefault(uuid, stamp)
                else:
                    self._ended.setdefault(uuid, (stamp, event.get("Hangup-Cause")))
                self._state.notify_all()

    def _wait(self, what: dict[str, object], uuid: str, timeout: float) -> bool:
        with self._state:
            return self._state.wait_for(lambda: uuid in what, timeout)

    # ------------------------------------------------------------------ the simulator's Channels
    def add_channel(self, uuid: str) -> None:
        """A call rings: a loopback channel parked unanswered, its A leg named ``uuid``."""
        with self._state:
            self._ours.add(uuid)
        self._api(f"bgapi originate {{origination_uuid={uuid},originate_timeout=600,"
                  f"ignore_early_media=true}}loopback/wait/drill &park()")  # fmt: skip
        # the originating leg exists once its partner runs the dialplan
        deadline = time.monotonic() + 10
        while "true" not in self._api(f"uuid_exists {uuid}"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"FreeSWITCH did not create channel {uuid}")
            time.sleep(0.02)

    def answer(self, uuid: str, answered_at: float, hangup_in: int | None = None) -> None:
        """Answered (the loopback partner picks up), with the dialplan's ``sched_hangup``."""
        deadline = time.monotonic() + 10
        while True:  # the partner is named once it is running the dialplan
            partner = self._api(f"uuid_getvar {uuid} other_loopback_leg_uuid").strip()
            if len(partner) == 36 and "+OK" in self._api(f"uuid_answer {partner}"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"FreeSWITCH would not answer {uuid} ({partner!r})")
            time.sleep(0.02)
        if not self._wait(self._answered, uuid, 10):  # type: ignore[arg-type]
            raise RuntimeError(f"FreeSWITCH did not answer {uuid}")
        if hangup_in is not None:
            self._api(f"sched_hangup +{hangup_in} {uuid} ALLOTTED_TIMEOUT")

    def ended_at(self, uuid: str) -> tuple[float, str] | None:
        with self._state:
            return self._ended.get(uuid)

    def end_call(self, uuid: str, at: float) -> tuple[float, str]:
        """The caller hangs up now unless the call ended before."""
        if self.ended_at(uuid) is None:
            self._api(f"uuid_kill {uuid} NORMAL_CLEARING")
        if not self._wait(self._ended, uuid, 10):  # type: ignore[arg-type]
            return at, "NORMAL_CLEARING"
        ended = self.ended_at(uuid)
        assert ended is not None
        return ended

    def hangup(self, uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        self._api(f"uuid_kill {uuid} {cause}")

    def answered_channels(self) -> set[str]:
        with self._state:
            return {u for u in self._answered if u in self._ours and u not in self._ended}
