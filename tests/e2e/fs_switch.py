"""A throw-away FreeSWITCH for the end-to-end tier.

Where FreeSWITCH comes from: ``APOLO_FREESWITCH_DIR``, else ``<repo>/../shared/freeswitch``,
else ``freeswitch`` on ``PATH`` (with ``FS_SAMPLE_CONF`` naming its sample configuration).
Nothing of it is copied into the repository: each run copies the sample conf into a temp
directory and changes there only what a test box needs (loopback addresses, free ports, one
SIP profile, the module list) plus what ``dialplan/README.md`` and ``xml_curl/README.md`` tell
an operator to install, with only their placeholders (sidecar URL, credentials) filled in.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.control.esl import EslConnection, EslError

ROOT = Path(__file__).resolve().parents[2]
PROFILE = "apolo_e2e"
GATEWAY = "carrier"  # the gateway name dialplan/apolo_outbound.xml ships with
DOMAIN = "127.0.0.1"
CERTS_CACHE = ROOT / ".data" / "e2e" / "certs"  # keys FreeSWITCH made once, reused
LUA_CONTEXT = "apolo_lua"  # callers whose dialplan runs the Lua hook instead of the Python one
MODULES = (
    # mod_xml_curl first, as dialplan/README.md says, so it binds before the dialplan is used
    "mod_xml_curl", "mod_logfile", "mod_event_socket", "mod_sofia", "mod_loopback",
    "mod_commands", "mod_dptools", "mod_expr", "mod_hash", "mod_dialplan_xml", "mod_sndfile",
    "mod_native_file", "mod_tone_stream", "mod_say_en", "mod_xml_cdr", "mod_python3", "mod_lua",
)  # fmt: skip


@dataclass(frozen=True)
class Install:
    """A FreeSWITCH build: its binary, module folder, sample conf and runtime environment."""

    binary: Path
    mod_dir: Path | None
    sample_conf: Path
    env: dict[str, str]


def find_install() -> tuple[Install | None, str]:
    """The FreeSWITCH to test against, or None and why there is none (or it cannot run)."""
    install, why = _locate()
    if install is None:
        return None, why
    try:
        proc = subprocess.run(
            [str(install.binary), "-version"], env={**os.environ, **install.env},
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except OSError as exc:
        return None, f"{install.binary} does not run: {exc}"
    if proc.returncode != 0 or "freeswitch version" not in proc.stdout.lower():
        error = (proc.stderr or proc.stdout).strip().splitlines()[:1]
        return None, (
            f"{install.binary} does not run ({error[0] if error else proc.returncode}); its"
            " runtime libraries are missing? (scripts/test_deps.sh installs them as root)"
        )
    return install, ""


def _locate() -> tuple[Install | None, str]:
    named = os.environ.get("APOLO_FREESWITCH_DIR")
    candidates = [Path(named)] if named else [ROOT.parent / "shared" / "freeswitch"]
    for home in candidates:
        binary = home / "bin" / "freeswitch"
        if binary.is_file() and (home / "conf" / "freeswitch.xml").is_file():
            env = {
                "LD_LIBRARY_PATH": _prepend(home / "lib", os.environ.get("LD_LIBRARY_PATH")),
                # mod_python3's interpreter needs the 'freeswitch' module it was built with
                "PYTHONPATH": _prepend(home / "python", os.environ.get("PYTHONPATH")),
            }
            return Install(binary, home / "mod", home / "conf", env), ""
    if named:
        return None, f"APOLO_FREESWITCH_DIR={named} holds no bin/freeswitch and conf/"
    on_path = shutil.which("freeswitch")
    if on_path is None:
        return None, f"no FreeSWITCH: neither {candidates[0]} nor 'freeswitch' on PATH"
    sample = os.environ.get("FS_SAMPLE_CONF", "")
    for conf in (sample, "/usr/share/freeswitch/conf/vanilla", "/etc/freeswitch"):
        if conf and (Path(conf) / "freeswitch.xml").is_file():
            return Install(Path(on_path), None, Path(conf), {}), ""
    return None, f"{on_path} found, but no sample conf (set FS_SAMPLE_CONF)"


def _prepend(path: Path, rest: str | None) -> str:
    return f"{path}:{rest}" if rest else str(path)


# Ports for FreeSWITCH and sipp come from below Linux's ephemeral range (32768-60999): no
# outgoing connection (the sidecar's to PostgreSQL, say) can take one between the check here
# and the bind there. Each is checked free for TCP and UDP, and never handed out twice.
PORT_RANGE = (20000, 32000)
_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def reserve_ports(count: int = 1) -> int:
    """The first of ``count`` consecutive free ports (an even one, as RTP wants)."""
    rng = secrets.SystemRandom()
    with _ports_lock:
        for _ in range(500):
            start = rng.randrange(*PORT_RANGE) & ~1
            block = range(start, start + count)
            if block[-1] >= PORT_RANGE[1] or _handed_out.intersection(block):
                continue
            if all(_bindable(port) for port in block):
                _handed_out.update(block)
                return start
    raise RuntimeError(f"no {count} free ports in {PORT_RANGE}")


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


RTP_PORTS = 200  # a leg takes an even port: about 50 calls up at once


@dataclass
class Ports:
    sip: int = field(default_factory=reserve_ports)
    esl: int = field(default_factory=reserve_ports)
    rtp_start: int = field(default_factory=lambda: reserve_ports(RTP_PORTS))
    rtp_ports: int = RTP_PORTS

    @classmethod
    def with_rtp(cls, count: int) -> Ports:
        """Ports with ``count`` RTP ports (the bench's load holds more calls up at once)."""
        return cls(rtp_start=reserve_ports(count), rtp_ports=count)

    @property
    def rtp_end(self) -> int:
        return self.rtp_start + self.rtp_ports - 2  # even, as FreeSWITCH wants it


# ------------------------------------------------------------------ the conf copy


def _edit(path: Path, edit: Callable[[str], str]) -> None:
    path.write_text(edit(path.read_text()))


def _sub(pattern: str, replacement: str, text: str) -> str:
    new, n = re.subn(pattern, replacement, text)
    if n == 0:
        raise RuntimeError(f"sample conf changed: {pattern!r} not found")
    return new


def _set_var(text: str, name: str, value: str, cmd: str = "set") -> str:
    """Replace the vars.xml line that sets ``name`` (with any command) by a plain ``set``."""
    return _sub(
        rf'<X-PRE-PROCESS cmd="[a-z-]+" data="{re.escape(name)}=[^"]*"/>',
        f'<X-PRE-PROCESS cmd="{cmd}" data="{name}={value}"/>',
        text,
    )


def profile_xml(uas_port: int) -> str:
    return f"""<profile name="{PROFILE}">
  <gateways>
    <gateway name="{GATEWAY}">
      <param name="proxy" value="127.0.0.1:{uas_port}"/>
      <param name="realm" value="127.0.0.1:{uas_port}"/>
      <param name="username" value="apolo"/>
      <param name="password" value="unused"/>
      <param name="register" value="false"/>
      <param name="caller-id-in-from" value="true"/>
    </gateway>
  </gateways>
  <settings>
    <param name="context" value="public"/>
    <param name="dialplan" value="XML"/>
    <param name="sip-ip" value="127.0.0.1"/>
    <param name="rtp-ip" value="127.0.0.1"/>
    <param name="ext-sip-ip" value="127.0.0.1"/>
    <param name="ext-rtp-ip" value="127.0.0.1"/>
    <param name="sip-port" value="$${{internal_sip_port}}"/>
    <param name="auth-calls" value="true"/>
    <param name="challenge-realm" value="auto_from"/>
    <param name="log-auth-failures" value="true"/>
    <param name="inbound-codec-prefs" value="PCMU"/>
    <param name="outbound-codec-prefs" value="PCMU"/>
    <param name="rtp-timer-name" value="soft"/>
    <param name="rtp-timeout-sec" value="300"/>
    <param name="manage-presence" value="false"/>
    <param name="enable-timer" value="false"/>
  </settings>
</profile>
"""


def event_socket_xml(port: int, password: str) -> str:
    return f"""<configuration name="event_socket.conf" description="Socket Client">
  <settings>
    <param name="nat-map" value="false"/>
    <param name="listen-ip" value="127.0.0.1"/>
    <param name="listen-port" value="{port}"/>
    <param name="password" value="{password}"/>
  </settings>
</configuration>
"""


def modules_xml(modules: tuple[str, ...]) -> str:
    loads = "\n".join(f'    <load module="{m}"/>' for m in modules)
    return (
        '<configuration name="modules.conf" description="Modules">\n  <modules>\n'
        f"{loads}\n  </modules>\n</configuration>\n"
    )


def user_xml(user: str, password: str, account: str, context: str) -> str:
    """A directory user shaped like the sample's conf/directory/default/1000.xml."""
    return f"""<include>
  <user id="{user}">
    <params>
      <param name="password" value="{password}"/>
    </params>
    <variables>
      <variable name="toll_allow" value="domestic,international,local"/>
      <variable name="accountcode" value="{account}"/>
      <variable name="user_context" value="{context}"/>
      <variable name="effective_caller_id_name" value="E2E {user}"/>
      <variable name="effective_caller_id_number" value="{user}"/>
    </variables>
  </user>
</include>
"""


@dataclass(frozen=True)
class SidecarLink:
    """What the switch needs to reach the sidecar (the placeholders of the Apolo files)."""

    url: str
    user: str
    password: str


def install_apolo_files(conf: Path, scripts: Path, link: SidecarLink) -> None:
    """Install dialplan/, fs_scripts/ and xml_curl/ as dialplan/README.md tells an operator."""
    repo_dialplan = ROOT / "dialplan"
    shutil.copyfile(
        repo_dialplan / "apolo_outbound.xml",
        conf / "dialplan" / "default" / "00_apolo_outbound.xml",
    )
    shutil.copyfile(
        repo_dialplan / "apolo_authorized.xml", conf / "dialplan" / "apolo_authorized.xml"
    )
    for name in ("apolo_authorize.py", "apolo_fs.py", "apolo_authorize.lua"):
        shutil.copyfile(ROOT / "fs_scripts" / name, scripts / name)
    for name in ("xml_cdr.conf.xml", "xml_curl.conf.xml"):
        text = (ROOT / "xml_curl" / name).read_text()
        text = _sub(r"http://127\.0\.0\.1:8080", link.url, text)
        (conf / "autoload_configs" / name).write_text(text)
    # the credentials, in conf/vars.xml as xml_curl/README.md shows them
    _edit(
        conf / "vars.xml",
        lambda t: _sub(
            r"</include>\s*$",
            f'  <X-PRE-PROCESS cmd="set" data="apolo_fs_user={link.user}"/>\n'
            f'  <X-PRE-PROCESS cmd="set" data="apolo_fs_password={link.password}"/>\n'
            "</include>\n",
            t,
        ),
    )
    # A Lua install: the same extension with the hook line switched as the file's own comment
    # says, in a context of its own so that one switch can test both hooks.
    outbound = (repo_dialplan / "apolo_outbound.xml").read_text()
    lua = _sub(
        r'<action application="python" data="apolo_authorize"/>',
        '<action application="lua" data="apolo_authorize.lua"/>',
        outbound,
    )
    (conf / "dialplan" / LUA_CONTEXT).mkdir()
    (conf / "dialplan" / LUA_CONTEXT / "00_apolo_outbound.xml").write_text(lua)
    (conf / "dialplan" / f"{LUA_CONTEXT}.xml").write_text(
        f'<include>\n  <context name="{LUA_CONTEXT}">\n'
        f'    <X-PRE-PROCESS cmd="include" data="{LUA_CONTEXT}/*.xml"/>\n'
        "  </context>\n</include>\n"
    )


def build_conf(
    install: Install, run: Path, ports: Ports, esl_password: str, uas_port: int, link: SidecarLink
) -> None:
    conf = run / "conf"
    shutil.copytree(install.sample_conf, conf)
    for sub in ("log", "db", "run", "scripts", "storage", "recordings", "temp", "cache", "certs"):
        (run / sub).mkdir(exist_ok=True)
    auto = conf / "autoload_configs"
    (auto / "modules.conf.xml").write_text(modules_xml(MODULES))
    _edit(
        auto / "pre_load_modules.conf.xml", lambda t: _sub(r'\s*<load module="mod_pgsql"/>', "", t)
    )
    (auto / "event_socket.conf.xml").write_text(event_socket_xml(ports.esl, esl_password))

    def switch_conf(text: str) -> str:
        text = _sub(
            r'name="sessions-per-second" value="\d+"',
            'name="sessions-per-second" value="500"',
            text,
        )
        return _sub(
            r'<!-- <param name="rtp-start-port" value="\d+"/> -->\s*'
            r'<!-- <param name="rtp-end-port" value="\d+"/> -->',
            f'<param name="rtp-start-port" value="{ports.rtp_start}"/>\n'
            f'    <param name="rtp-end-port" value="{ports.rtp_end}"/>',
            text,
        )

    _edit(auto / "switch.conf.xml", switch_conf)

    def vars_conf(text: str) -> str:
        # the sample dialplan sleeps 10 s on every call while the password is the default one
        text = _set_var(text, "default_password", secrets.token_hex(8))
        text = _set_var(text, "domain", DOMAIN)
        text = _set_var(text, "bind_server_ip", "127.0.0.1")
        text = _set_var(text, "external_rtp_ip", "127.0.0.1")  # no STUN: no network at start
        text = _set_var(text, "external_sip_ip", "127.0.0.1")
        text = _set_var(text, "internal_sip_port", str(ports.sip))
        text = _set_var(text, "internal_auth_calls", "true")
        return _sub(
            r"(<include>)",
            r'\1\n  <X-PRE-PROCESS cmd="set" data="local_ip_v4=127.0.0.1"/>',
            text,
        )

    _edit(conf / "vars.xml", vars_conf)
    profiles = conf / "sip_profiles"
    shutil.rmtree(profiles)
    profiles.mkdir()
    (profiles / f"{PROFILE}.xml").write_text(profile_xml(uas_port))
    install_apolo_files(conf, run / "scripts", link)


# ------------------------------------------------------------------ the running switch


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float) -> None:
    """SIGTERM, then SIGKILL if it is still there ``grace`` seconds later."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class FreeSwitch:
    install: Install
    run: Path
    ports: Ports
    hook_env: dict[str, str]
    esl_password: str = field(default_factory=lambda: secrets.token_hex(8))
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def conf(self) -> Path:
        return self.run / "conf"

    @property
    def scripts(self) -> Path:
        return self.run / "scripts"

    @property
    def log_file(self) -> Path:
        return self.run / "log" / "freeswitch.log"

    @property
    def cdr_spool(self) -> Path:
        """err-log-dir of xml_curl/xml_cdr.conf.xml: ``$${log_dir}/apolo_cdr_failed``."""
        return self.run / "log" / "apolo_cdr_failed"

    @property
    def esl_address(self) -> str:
        """``host:port:password``, as ``APOLO_FREESWITCH`` wants it."""
        return f"127.0.0.1:{self.ports.esl}:{self.esl_password}"

    def command(self) -> list[str]:
        r = self.run
        cmd = [str(self.install.binary), "-nc", "-nf", "-nonat", "-nonatmap"]
        for flag in ("conf", "log", "db", "run", "scripts", "storage", "recordings", "temp",
                     "cache", "certs"):  # fmt: skip
            cmd += [f"-{flag}", str(r / flag)]
        if self.install.mod_dir is not None:
            cmd += ["-mod", str(self.install.mod_dir)]
        return cmd

    def start(self, timeout: float = 60) -> None:
        if CERTS_CACHE.is_dir() and not any((self.run / "certs").iterdir()):
            shutil.copytree(CERTS_CACHE, self.run / "certs", dirs_exist_ok=True)
        env = {**os.environ, **self.install.env, **self.hook_env}
        out = open(self.run / f"stdout-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(
            self.command(), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=self.run,
            start_new_session=True,
        )  # fmt: skip
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"FreeSWITCH exited with {self.proc.returncode}: {self.tail()}")
            try:
                status = self.api("sofia status")
            except (OSError, EslError):
                status = ""
            if re.search(rf"{PROFILE}\s+profile\s.*RUNNING", status) and (
                f"{PROFILE}::{GATEWAY}" in status
            ):
                self._keep_certs()
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"FreeSWITCH not ready within {timeout:.0f} s (ports {self.ports}); sofia status:"
            f" {status!r}; log: {self.tail()}"
        )

    def _keep_certs(self) -> None:
        """FreeSWITCH spends seconds making its keys when certs/ is empty: keep them."""
        if not CERTS_CACHE.is_dir() and any((self.run / "certs").glob("*.pem")):
            CERTS_CACHE.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(self.run / "certs", CERTS_CACHE, dirs_exist_ok=True)

    def stop(self) -> None:
        """SIGTERM (FreeSWITCH's own orderly shutdown), SIGKILL if it hangs for 20 s."""
        proc, self.proc = self.proc, None
        stop_process(proc, 20)

    def restart(self) -> None:
        self.stop()
        self.start()

    def api(self, command: str, timeout: float = 5.0) -> str:
        conn = EslConnection.open("127.0.0.1", self.ports.esl, self.esl_password, timeout)
        try:
            return conn.api(command, timeout)
        finally:
            conn.close()

    def add_user(self, user: str, password: str, account: str, context: str) -> None:
        path = self.conf / "directory" / "default" / f"e2e_{user}.xml"
        path.write_text(user_xml(user, password, account, context))
        reply = self.api("reloadxml")
        if not reply.startswith("+OK"):
            raise RuntimeError(f"reloadxml: {reply}")

    def channels(self) -> int:
        reply = self.api("show channels count").strip()
        match = re.search(r"(\d+) total", reply)
        if match is None:
            raise RuntimeError(f"show channels count: {reply!r}")
        return int(match.group(1))

    def log_since(self, offset: int) -> str:
        with open(self.log_file, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log_file.stat().st_size if self.log_file.exists() else 0

    def tail(self, lines: int = 40) -> str:
        if not self.log_file.exists():
            stdout = sorted(self.run.glob("stdout-*.log"))
            return stdout[-1].read_text(errors="replace")[-4000:] if stdout else "(no log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
