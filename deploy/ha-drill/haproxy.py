"""HAProxy in front of the sidecars (health checks on ``/healthz``) and the Patroni nodes
(``/primary``, ``/replica``): ``deploy/haproxy/haproxy.cfg`` with the drill's ports and
quicker checks."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from engines import PatroniNode
from processes import Proc, ensure_free, port_open, spawn, wait_for, write_config


def haproxy_config(sidecars: list[int], bind: int, patroni: list[PatroniNode],
                   pg_rw: int, pg_ro: int, stats_socket: Path) -> str:  # fmt: skip
    """deploy/haproxy/haproxy.cfg with the drill's ports and quicker health checks."""
    pg_servers = "\n".join(
        f"    server {n.name} 127.0.0.1:{n.pg_port} check port {n.api_port}" for n in patroni
    )
    apps = "\n".join(
        f"    server sidecar{i + 1} 127.0.0.1:{port} check" for i, port in enumerate(sidecars)
    )
    return f"""global
    maxconn 4000
    stats socket {stats_socket} mode 600 level admin

defaults
    log global
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout check 1s
    retries 2
    option redispatch 1

# PostgreSQL, writes: only the node whose Patroni answers 200 on /primary
frontend postgres_rw
    bind 127.0.0.1:{pg_rw}
    mode tcp
    default_backend pg_primary

# reads that may lag: the replicas, or the primary while there is none
frontend postgres_ro
    bind 127.0.0.1:{pg_ro}
    mode tcp
    use_backend pg_replicas if {{ nbsrv(pg_replicas) gt 0 }}
    default_backend pg_primary

backend pg_primary
    mode tcp
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
{pg_servers}

backend pg_replicas
    mode tcp
    balance roundrobin
    option httpchk OPTIONS /replica
    http-check expect status 200
    default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions
{pg_servers}

frontend apolo
    bind 127.0.0.1:{bind}
    mode http
    option httplog
    option forwardfor
    default_backend sidecars

backend sidecars
    mode http
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    # every FreeSWITCH-facing request is idempotent (authorize per call uuid, CDR per uuid
    # and leg): one the dead sidecar never answered is safely sent to the other
    retry-on conn-failure empty-response junk-response response-timeout
    # ... which needs the whole request at hand: wait for the body before passing it on
    option http-buffer-request
    default-server inter 1s fastinter 500ms downinter 500ms fall 2 rise 1 slowstart 10s
{apps}
"""


@dataclass
class HAProxy:
    directory: Path
    config: str
    ports: list[int]
    proc: Proc | None = None

    @property
    def stats_socket(self) -> Path:
        return self.directory / "haproxy.sock"

    def start(self) -> None:
        cfg = write_config(self.directory / "haproxy.cfg", self.config)
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg)], capture_output=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy.cfg: {check.stderr.decode()[-2000:]}")
        ensure_free(*self.ports)
        self.proc = spawn("haproxy", ["haproxy", "-db", "-f", str(cfg)],
                          self.directory / "haproxy.log")  # fmt: skip
        for port in self.ports:
            wait_for(f"haproxy :{port}", lambda p=port: port_open(p), 20)  # type: ignore[misc]

    def server_states(self, backend: str) -> dict[str, str]:
        """``{server: UP|DOWN|...}`` of a backend, from the stats socket."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(str(self.stats_socket))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        states = {}
        for line in data.decode().splitlines():
            cells = line.split(",")
            if len(cells) > 17 and cells[0] == backend and cells[1] not in ("FRONTEND", "BACKEND"):
                states[cells[1]] = cells[17].split(" ")[0]
        return states
