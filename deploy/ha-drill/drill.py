"""``make ha-drill``: the HA layout on loopback, under steady load, loses one node after another.

It starts etcd, two Patroni PostgreSQL nodes (synchronous replication), a Redis master, a
replica and three sentinels, HAProxy, two sidecars behind it and ``apolo control`` on an
event-socket switch: the real FreeSWITCH of ``../shared/freeswitch`` when it runs here
(``freeswitch.py``), else the tests' ESL peer; all on 127.0.0.1 ports 46000-46999. The first
sidecar, the control worker and the spool replay reach PostgreSQL through a multi-host URL
(``target_session_attrs=read-write``), the second through HAProxy's Patroni health checks.

The simulator plays calls at a steady rate through HAProxy like FreeSWITCH: the hook fails
closed, mod_xml_cdr tries each CDR ``1 + retries`` times ``delay`` apart and spools it to
its err-log-dir when every try failed. Meanwhile the drill kills, one after the other, the
PostgreSQL primary (Patroni and PostgreSQL, SIGKILL), the Redis master, and one sidecar
(its gunicorn master and workers), bringing each back (as a replica) before the next. Then
it replays the spool with ``apolo cdr replay`` and prints, per fault, how long it took to
recover, the authorizations refused or failed and the CDRs retried meanwhile, then the
books; it exits 1 when a check of the books fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(ROOT / "tests")]

import processes  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402
from books import read_books  # noqa: E402
from doubles.esl_peer import EslPeer  # noqa: E402
from engines import Etcd, PatroniNode, RedisNode, SentinelNode, create_database  # noqa: E402
from freeswitch import FreeSwitch, find_home  # noqa: E402
from haproxy import HAProxy, haproxy_config  # noqa: E402
from processes import (  # noqa: E402
    ApoloProc,
    Secrets,
    bindable,
    end_leftovers,
    ensure_free,
    missing_engines,
    wait_for,
)
from psycopg.rows import dict_row  # noqa: E402
from report import Fault, print_report  # noqa: E402

from sidecar.simulator.runner import CallResult, SimConfig  # noqa: E402
from sidecar.simulator.runner import run as simulate  # noqa: E402


@dataclass(frozen=True)
class Ports:
    """Everything listens on 127.0.0.1, in 46000-46999."""

    etcd: int = 46379
    etcd_peer: int = 46380
    pg: tuple[int, int] = (46432, 46433)
    patroni: tuple[int, int] = (46008, 46009)
    pg_rw: int = 46500
    pg_ro: int = 46501
    redis: tuple[int, int] = (46600, 46601)
    sentinels: tuple[int, int, int] = (46610, 46611, 46612)
    haproxy: int = 46080
    sidecars: tuple[int, int] = (46081, 46082)
    esl: int = 46021


PORTS = Ports()
RANGE = range(46000, 47000)  # this drill's share of the machine's ports


def free_ports(wanted: Ports) -> Ports:
    """``wanted``, with each port another process holds replaced by a free one of RANGE
    (the range lies in Linux's ephemeral ports: any client may sit on one for a while)."""
    taken: set[int] = set()

    def pick(port: int) -> int:
        candidates: list[int] = [port, *RANGE]
        for candidate in candidates:
            if candidate not in taken and bindable(candidate):
                taken.add(candidate)
                return candidate
        raise RuntimeError("no free port left in 46000-46999")

    values: dict[str, Any] = {}
    for name, value in vars(wanted).items():
        values[name] = tuple(pick(p) for p in value) if isinstance(value, tuple) else pick(value)
    return Ports(**values)


REDIS_MASTER = "apolo"
CALLERS = tuple(str(300001 + i) for i in range(20))
SIM_SOURCE_IP = "192.0.2.10"  # where the simulated PBX's INVITEs come from
RATES = (("51", "0.60", 60, 60), ("1", "0.02", 6, 6), ("44", "0.10", 1, 1))
DESTINATIONS = ("51987654321", "5114567890", "12125550123", "447700900123")
BLOCK = 20  # APOLO_RESERVATION_SECONDS: calls longer than BLOCK - threshold get extended
RTP = (46700, 46799)  # FreeSWITCH's, should it open any


class Drill:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = ROOT / ".data" / "ha-drill"
        self.secrets = Secrets()
        self.results: list[CallResult] = []
        self.lock = threading.Lock()
        self.faults: list[Fault] = []
        self.stop_load = threading.Event()
        self.fs_home = None if args.switch == "esl-peer" else find_home(ROOT.parent / "shared")
        if args.switch == "freeswitch" and self.fs_home is None:
            raise SystemExit("ha-drill: no working FreeSWITCH in ../shared/freeswitch")
        self.etcd = Etcd(self.dir, PORTS.etcd, PORTS.etcd_peer)
        pw = {k: self.secrets[f"pg-{k}"] for k in ("superuser", "replication", "rewind")}
        self.pg = [
            PatroniNode(self.dir, f"pg{i + 1}", port, api, self.etcd, "apolo-drill", pw)
            for i, (port, api) in enumerate(zip(PORTS.pg, PORTS.patroni, strict=True))
        ]
        redis_pw = self.secrets["redis"]
        master, replica = PORTS.redis
        self.redis = [RedisNode(self.dir, master, redis_pw),
                      RedisNode(self.dir, replica, redis_pw, replica_of=master)]  # fmt: skip
        self.sentinels = [SentinelNode(self.dir, p, REDIS_MASTER, master, redis_pw)
                          for p in PORTS.sentinels]  # fmt: skip
        self.haproxy = HAProxy(
            self.dir,
            haproxy_config(
                list(PORTS.sidecars),
                PORTS.haproxy,
                self.pg,
                PORTS.pg_rw,
                PORTS.pg_ro,
                self.dir / "haproxy.sock",
            ),
            [PORTS.haproxy, PORTS.pg_rw, PORTS.pg_ro],
        )
        self.switch: EslPeer | FreeSwitch | None = None
        self.sidecars: list[ApoloProc] = []
        self.control: ApoloProc | None = None

    # ------------------------------------------------------------------ addresses
    def db_url(self, via: str, reports: bool = False) -> str:
        """The app's URL: multi-host (libpq picks the primary / a standby) or HAProxy."""
        user = f"apolo:{self.secrets['pg-apolo']}"
        if via == "haproxy":
            port = PORTS.pg_ro if reports else PORTS.pg_rw
            return f"postgresql://{user}@127.0.0.1:{port}/apolo?connect_timeout=2"
        hosts = ",".join(f"127.0.0.1:{p}" for p in PORTS.pg)
        attrs = "prefer-standby" if reports else "read-write"
        return f"postgresql://{user}@{hosts}/apolo?target_session_attrs={attrs}&connect_timeout=2"

    def app_env(self, via: str) -> dict[str, str]:
        return {
            "DATABASE_URL": self.db_url(via),
            "APOLO_REPORTS_DATABASE_URL": self.db_url(via, reports=True),
            "REDIS_URL": f"redis://:{self.secrets['redis']}@localhost/0",
            "APOLO_REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in PORTS.sentinels),
            "APOLO_REDIS_MASTER": REDIS_MASTER,
            "APOLO_FS_PASSWORD": self.secrets["fs"],
            "APOLO_TRUSTED_PROXIES": "127.0.0.1/32",
            "APOLO_RESERVATION_SECONDS": str(BLOCK),
            "APOLO_INDEX_DIR": str(self.dir / "rates-index"),
            "APOLO_LOG_LEVEL": "INFO",
            "APOLO_ACCESS_LOG": "false",
        }

    # ------------------------------------------------------------------ bring-up
    def up(self) -> None:
        say("starting etcd, two Patroni PostgreSQL nodes (synchronous replication)")
        self.etcd.start()
        self.pg[0].start()
        wait_for("pg1 primary", self.pg[0].is_primary, 90, every=0.5)
        self.pg[1].start()
        wait_for("pg2 synchronous standby", self.pg[1].is_sync_standby, 120, every=0.5)
        for pg in self.pg:
            pg.is_running()
        self.create_database()
        say("starting Redis master + replica and three sentinels")
        for node in self.redis:
            node.start()
        for sentinel in self.sentinels:
            sentinel.start()
        wait_for("sentinels agree", self.sentinels_ready, 30, every=0.3)
        say("starting HAProxy and two sidecars behind it")
        self.haproxy.start()
        say("  HAProxy up")
        for i, port in enumerate(PORTS.sidecars):
            via = "multi-host" if i == 0 else "haproxy"
            self.sidecars.append(ApoloProc(
                self.dir, f"sidecar{i + 1}",
                ["serve", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "16"],
                self.app_env(via), health_url=f"http://127.0.0.1:{port}/healthz", port=port,
            ))  # fmt: skip
            self.sidecars[-1].start()
            say(f"  sidecar{i + 1} up ({via})")
        wait_for("haproxy: sidecars up", self.sidecars_up, 30, every=0.2)
        password = self.secrets["esl"]
        if self.fs_home is not None:
            say(f"starting FreeSWITCH ({self.fs_home}) and apolo control on its event socket")
            switch: EslPeer | FreeSwitch = FreeSwitch(self.fs_home, self.dir, PORTS.esl,
                                                      password, RTP)  # fmt: skip
            switch.start()
        else:
            say("starting apolo control on the ESL test peer (tests/doubles/esl_peer.py)")
            ensure_free(PORTS.esl)
            switch = EslPeer(password, port=PORTS.esl)
        self.switch = switch
        self.control = ApoloProc(self.dir, "control", ["control"], {
            **self.app_env("multi-host"),
            "APOLO_FREESWITCH": f"127.0.0.1:{PORTS.esl}:{password}",
            "APOLO_EXTEND_THRESHOLD": "8", "APOLO_MAX_CALL_SECONDS": "120",
            "APOLO_RECONCILE_SECONDS": "10", "APOLO_RECONCILE_GRACE_SECONDS": "60",
        })  # fmt: skip
        self.control.start()
        wait_for("control connected", self.control_connected, 30, every=0.2)

    def create_database(self) -> None:
        su = self.secrets["pg-superuser"]
        admin = f"postgresql://postgres:{su}@127.0.0.1:{self.pg[0].pg_port}/postgres"
        create_database(admin, self.secrets["pg-apolo"], self.db_url("multi-host"))
        self.seed()

    def seed(self) -> None:
        from sidecar.repo import rates as rates_repo
        from sidecar.services.accounts import create_account
        from sidecar.services.trunks import create_trunk

        with psycopg.connect(self.db_url("multi-host"), row_factory=dict_row) as c:
            plan_id = rates_repo.ensure_plan(c, "drill")
            for prefix, rpm, first, step in RATES:
                rates_repo.add_rate(
                    c, plan_id, prefix=prefix, name=f"drill {prefix}",
                    rate_per_minute=Decimal(rpm), effective_start=datetime(2020, 1, 1, tzinfo=UTC),
                    initial_increment=first, increment=step, connection_fee=Decimal(0),
                )  # fmt: skip
            for number in CALLERS:
                create_account(c, actor="ha-drill", number=number, plan="drill", type_="prepaid",
                               balance=Decimal("1000.00"), credit_limit=Decimal(0),
                               anis=[number], max_calls=None)  # fmt: skip
            # the simulated PBX, billed by caller ID (sidecar/identity.py): its INVITEs come
            # from SimConfig.source_ip
            create_trunk(c, actor="ha-drill", name="drill-pbx", cidrs=[f"{SIM_SOURCE_IP}/32"],
                         trust_caller_id=True)  # fmt: skip
            c.commit()

    def control_connected(self) -> bool:
        """``apolo control`` holds its event-socket connection (it subscribes on connect)."""
        if isinstance(self.switch, EslPeer):
            return bool(self.switch.subscribed() > 0)
        assert self.control is not None and self.control.proc is not None
        return "connected, " in self.control.proc.log.read_text()

    def sentinels_ready(self) -> bool:
        client = redis.Redis(port=self.sentinels[0].port, socket_timeout=0.5)
        state: dict[str, Any] = client.sentinel_master(REDIS_MASTER)  # type: ignore[assignment]
        return int(state["num-slaves"]) >= 1 and int(state["num-other-sentinels"]) >= 2

    def sentinel_master_port(self) -> int | None:
        for sentinel in self.sentinels:
            try:
                client = redis.Redis(port=sentinel.port, socket_timeout=0.3)
                found: tuple[str, int] = client.sentinel_get_master_addr_by_name(REDIS_MASTER)  # type: ignore[assignment]
                return int(found[1])
            except (redis.RedisError, TypeError, IndexError):
                continue
        return None

    def sidecars_up(self, expected: int = 2) -> bool:
        states = self.haproxy.server_states("sidecars")
        return sum(1 for s in states.values() if s == "UP") >= expected

    # ------------------------------------------------------------------ faults
    def fault_postgres(self) -> Fault:
        old = next(n for n in self.pg if n.is_primary())
        new = next(n for n in self.pg if n is not old)
        fault = Fault(f"PostgreSQL primary {old.name} killed (Patroni + PostgreSQL, SIGKILL)",
                      time.time())  # fmt: skip
        old.kill()
        took = wait_for("a new primary", new.is_primary, 120, every=0.1)
        promoted = time.time()
        fault.engine = f"Patroni promoted {new.name} after {took:.1f} s"
        url = self.db_url("multi-host")
        took = wait_for("writes through the multi-host URL", lambda: _writable(url), 60)
        fault.engine += f"; writes accepted after {time.time() - fault.started:.1f} s"
        self.settle()
        say(f"  bringing {old.name} back: it rejoins as a replica (pg_rewind)")
        old.start()
        took = wait_for(f"{old.name} synchronous standby again", old.is_sync_standby, 180, 0.2)
        old.is_running()
        fault.engine += (
            f"; {old.name} synchronous standby again {took:.0f} s after its restart (commits "
            f"rested on {new.name} alone for {time.time() - promoted:.0f} s: the node down)"
        )
        return fault

    def fault_redis(self) -> Fault:
        port = self.sentinel_master_port()
        old = next(n for n in self.redis if n.port == port)
        fault = Fault(f"Redis master :{old.port} killed (SIGKILL)", time.time())
        assert old.proc is not None
        old.proc.kill()
        moved = lambda: self.sentinel_master_port() not in (None, old.port)  # noqa: E731
        took = wait_for("sentinels promote the replica", moved, 60)
        fault.engine = f"Sentinel promoted :{self.sentinel_master_port()} after {took:.1f} s"
        self.settle()
        say(f"  bringing :{old.port} back: Sentinel makes it a replica")
        old.replica_of = self.sentinel_master_port()
        old.start()
        wait_for("sentinels see the replica", self.sentinels_ready, 60, every=0.5)
        return fault

    def fault_sidecar(self) -> Fault:
        victim = self.sidecars[0]
        fault = Fault(f"{victim.name} killed (gunicorn master and workers, SIGKILL)", time.time())
        assert victim.proc is not None
        victim.proc.kill()
        took = wait_for("haproxy marks it down", lambda: not self.sidecars_up(2), 30, 0.05)
        fault.engine = f"HAProxy marked {victim.name} down after {took:.1f} s"
        self.settle()
        say(f"  bringing {victim.name} back")
        victim.start()
        took = wait_for("haproxy marks it up", self.sidecars_up, 30, every=0.1)
        fault.engine += f"; up again {took:.1f} s after its restart"
        return fault

    def settle(self) -> None:
        time.sleep(self.args.settle)

    # ------------------------------------------------------------------ load
    def load(self) -> threading.Thread:
        switch = self.switch
        cfg = SimConfig(
            url=f"http://127.0.0.1:{PORTS.haproxy}", auth=("freeswitch", self.secrets["fs"]),
            calls=10**7, concurrency=400, callers=CALLERS, destinations=DESTINATIONS,
            duration=1.0, duration_max=self.args.talk_max, seed=14, rate=self.args.rate,
            timeout=10**6, duplicate_ratio=0.05, cdr_retries=self.args.cdr_retries,
            cdr_retry_delay=self.args.cdr_delay, spool_dir=str(self.dir / "spool"),
            authorize_timeout=self.args.authorize_timeout, cdr_timeout=5.0,
            source_ip=SIM_SOURCE_IP,
        )  # fmt: skip

        def keep(result: CallResult) -> None:
            with self.lock:
                self.results.append(result)

        thread = threading.Thread(
            target=simulate, args=(cfg, keep, switch, self.stop_load), name="load", daemon=True
        )
        thread.start()
        return thread

    def replay(self) -> str:
        spool = self.dir / "spool"
        files = len(list(spool.glob("*.xml")))
        if not files:
            return "nothing spooled"
        env = {**os.environ, "APOLO_SIDECAR_URL": f"http://127.0.0.1:{PORTS.haproxy}",
               "APOLO_FS_PASSWORD": self.secrets["fs"]}  # fmt: skip
        done = subprocess.run([str(ROOT / ".venv/bin/apolo"), "cdr", "replay", str(spool)],
                              env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
        left = len(list(spool.glob("*.xml")))
        tail = (done.stdout.strip().splitlines() or [""])[-1]
        return f"{files} spooled CDR(s) replayed through HAProxy: {tail} ({left} left)"

    # ------------------------------------------------------------------ the run
    def run(self) -> int:
        self.up()
        say(f"load: {self.args.rate:g} calls/s through HAProxy; warm-up {self.args.warmup:g} s")
        started = time.time()
        loader = self.load()
        time.sleep(self.args.warmup)
        for action in (self.fault_postgres, self.fault_redis, self.fault_sidecar):
            extensions = self.extensions()
            fault = action()
            say(f"fault: {fault.name}: {fault.engine}")
            self.faults.append(fault)
            time.sleep(self.args.gap)
            fault.control = self.control_status(extensions)
        loaded = time.time() - started
        self.stop_load.set()
        say("load stopped; waiting for the calls under way and their CDRs")
        loader.join(timeout=600)
        ended = time.time()
        replayed = self.replay()
        reads = self.replica_reads()
        for fault, following in zip(self.faults, [*self.faults[1:], None], strict=True):
            fault.ended = following.started if following else ended
        return self.report(started, loaded, ended, replayed, reads)

    def extensions(self) -> int:
        """Blocks ``apolo control`` has added to reservations so far."""
        with psycopg.connect(self.db_url("multi-host")) as c:
            row = c.execute("SELECT coalesce(sum(extensions), 0) FROM reservations").fetchone()
        return int(row[0]) if row else 0

    def control_status(self, extensions_before: int) -> str:
        """Extensions apolo control made since then, and whether its live table in Redis
        (reached through Sentinel) lists the calls the switch has answered."""
        assert self.switch is not None
        moved = self.extensions() - extensions_before
        answered = self.switch.answered_channels()
        client = redis.Redis(port=self.sentinel_master_port() or 0,
                             password=self.secrets["redis"], decode_responses=True)  # fmt: skip
        listed = client.smembers(f"apolo:node:127.0.0.1:{PORTS.esl}:calls")
        return (
            f"{moved} reservation(s) extended since the fault; its live table "
            f"lists {len(answered & listed)} of the {len(answered)} calls up on the switch"
        )

    def replica_reads(self) -> str:
        """Reports and CDR search read a standby: ask each sidecar, then count the
        sessions of the app on the standby."""
        env = {**os.environ, "DATABASE_URL": self.db_url("multi-host")}
        made = subprocess.run(
            [str(ROOT / ".venv/bin/apolo"), "tokens", "create", "drill", "--role", "viewer"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        token = made.stdout.strip().split()[-1]
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        calls = []
        for port in PORTS.sidecars:
            resp = requests.get(
                f"http://127.0.0.1:{port}/v1/reports/traffic",
                params={"group": "day", "from": f"{day}T00:00:00Z", "to": f"{day}T23:59:59Z"},
                headers={"Authorization": f"Bearer {token}"}, timeout=10,
            )  # fmt: skip
            resp.raise_for_status()
            calls.append(str(resp.json()["totals"]["calls"]))
        standby = next(n for n in self.pg if not n.is_primary())
        su = self.secrets["pg-superuser"]
        with psycopg.connect(
            f"postgresql://postgres:{su}@127.0.0.1:{standby.pg_port}/postgres"
        ) as c:
            row = c.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'apolo'")
            sessions = row.fetchone()
        return (
            f"traffic report through sidecar1 / sidecar2: {' / '.join(calls)} calls; "
            f"{sessions[0] if sessions else 0} app session(s) open on standby {standby.name}"
        )

    def report(self, started: float, loaded: float, ended: float, replayed: str,
               reads: str) -> int:  # fmt: skip
        results = list(self.results)
        answered = {r.uuid: r.charged for r in results if r.accepted}
        books = read_books(self.db_url("multi-host"), results, answered)
        print_report(results, self.faults, books, started, loaded, replayed, reads)
        return 0 if books.ok else 1

    def down(self) -> None:
        if self.control and self.control.proc:
            self.control.proc.stop()
        for sidecar in self.sidecars:
            if sidecar.proc:
                sidecar.proc.stop()
        if self.haproxy.proc:
            self.haproxy.proc.stop()
        for proc in [*(s.proc for s in self.sentinels), *(r.proc for r in self.redis)]:
            if proc:
                proc.stop()
        for pg in reversed(self.pg):
            pg.stop()
        if self.etcd.proc:
            self.etcd.proc.stop()
        if isinstance(self.switch, EslPeer):
            self.switch.close()
        elif self.switch is not None:
            self.switch.stop()


def _writable(url: str) -> bool:
    with psycopg.connect(url, connect_timeout=1) as c:
        c.execute("SELECT 1")
    return True


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=6.0, help="calls started per second")
    parser.add_argument("--talk-max", type=float, default=24.0, help="longest talk, seconds")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--gap", type=float, default=15.0, help="seconds between faults")
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="seconds a fault is left alone after the engine recovered",
    )
    parser.add_argument("--cdr-retries", type=int, default=2, help="mod_xml_cdr retries")
    parser.add_argument("--cdr-delay", type=float, default=2.0, help="mod_xml_cdr delay")
    parser.add_argument("--authorize-timeout", type=float, default=1.5,
                        help="the hook's budget (APOLO_TIMEOUT_MS)")  # fmt: skip
    parser.add_argument("--switch", choices=("auto", "freeswitch", "esl-peer"), default="auto",
                        help="apolo control's switch: the real FreeSWITCH of ../shared when it "
                        "runs here (auto), or the ESL test peer")  # fmt: skip
    args = parser.parse_args()
    if missing := missing_engines():
        print(f"ha-drill: missing Debian packages: {' '.join(missing)}", file=sys.stderr)
        return 2
    run_dir = ROOT / ".data" / "ha-drill"
    pid_log = ROOT / ".data" / "ha-drill.pids"
    for leftover in end_leftovers(pid_log):
        say(f"ended a leftover of an earlier run: {leftover}")
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    run_dir.chmod(0o755)  # Patroni (postgres) keeps its nodes below
    processes.PID_LOG = pid_log
    global PORTS
    PORTS = free_ports(PORTS)
    if PORTS != Ports():
        say(f"some default ports were taken; using {PORTS}")
    drill = Drill(args)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _interrupted)
    try:
        return drill.run()
    finally:
        say("stopping everything the drill started")
        drill.down()


if __name__ == "__main__":
    sys.exit(main())
