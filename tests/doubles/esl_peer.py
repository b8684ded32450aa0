"""An event-socket peer for tests: speaks mod_event_socket's protocol on a loopback port.

It greets with ``auth/request``, checks the password (``-ERR invalid`` + disconnect notice
on a wrong one), refuses other commands before auth (``-ERR command not found``), answers
``event plain|json`` subscriptions, ``api`` commands (``api/response`` with Content-Length)
and ``exit``, exactly as the captures in tests/fixtures/freeswitch/esl/control show. It
models the scheduler of FreeSWITCH 1.10 for the commands Apolo uses: ``sched_hangup`` and
``sched_broadcast`` add a task to the group named by the channel uuid (a second one does not
replace the first), ``sched_del <uuid>`` removes the whole group and answers how many;
a pending ``sched_hangup`` fires at its time and ends the channel with its cause (kept in
``ended``, as is a ``uuid_kill``). The scheduler runs lazily, whenever the peer is asked
anything (``ended_at`` for a test's switch stand-in).
Events are built from the captured CHANNEL_ANSWER / CHANNEL_HANGUP_COMPLETE frames (plain or
json, with the right Content-Length), or replayed verbatim from a captured stream. Every
command received is recorded in ``commands``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fixtures_path import FS_FIXTURES

from sidecar.control.frames import FrameParser, decode_event

ESL_DIR = FS_FIXTURES / "esl"
CONTROL_DIR = ESL_DIR / "control"
GOODBYE = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
EVENT_TYPES = (b"text/event-plain", b"text/event-json")


def captured_frames(path: Path) -> list[tuple[dict[str, str], bytes]]:
    """Every frame of a captured ``.from_fs.raw`` file: (headers, body)."""
    frames = FrameParser().feed(path.read_bytes())
    return [(f.headers, f.body) for f in frames]


def _template(name: str) -> dict[str, str]:
    for headers, body in captured_frames(CONTROL_DIR / "16_sched_extend_then_cut.from_fs.raw"):
        if headers.get("Content-Type") == "text/event-json":
            data = json.loads(body)
            if data.get("Event-Name") == name:
                return {k: str(v) for k, v in data.items()}
    raise LookupError(name)


@dataclass
class _Client:
    sock: socket.socket
    authed: bool = False
    fmt: str | None = None
    events: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, data: bytes) -> None:
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass


class EslPeer:
    def __init__(self, password: str = "ClueCon", port: int = 0) -> None:
        self.password = password
        self.commands: list[str] = []
        self.channels: dict[str, dict[str, str]] = {}
        self.tasks: dict[str, list[str]] = {}  # scheduler groups: uuid -> pending tasks
        # caller-profile answered time in microseconds, "0" until answered (uuid_getvar)
        self.answered_us: dict[str, str] = {}
        self.connections = 0
        self.drop_after: str | None = None  # drop every connection once after this api verb
        # the first api command with this verb runs, but its reply waits this long (a slow
        # switch, or a worker that dies before it reads the reply)
        self.stall: tuple[str, float] | None = None
        self.refusing = False  # close new connections at once (a switch restarting)
        # uuid -> (epoch, cause) of the earliest pending sched_hangup of the channel's group
        self.hangup_due: dict[str, tuple[float, str]] = {}
        self.ended: dict[str, tuple[float, str]] = {}  # ended by the scheduler or uuid_kill
        self._clients: list[_Client] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", port))
        self.port = int(self._server.getsockname()[1])
        self._stopped = False
        self._answer = _template("CHANNEL_ANSWER")
        self._hangup = _template("CHANNEL_HANGUP_COMPLETE")
        threading.Thread(target=self._accept, daemon=True).start()

    # ------------------------------------------------------------------ test controls
    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}:{self.password}"

    def api_commands(self) -> list[str]:
        with self._lock:
            return [c[4:] for c in self.commands if c.startswith("api ")]

    def call_commands(self, uuid: str) -> list[str]:
        """The api commands about one channel, in order."""
        return [c for c in self.api_commands() if uuid in c.split()]

    def subscribed(self) -> int:
        with self._lock:
            return sum(1 for c in self._clients if c.fmt)

    def add_channel(self, uuid: str) -> None:
        with self._lock:
            self.channels[uuid] = {"uuid": uuid, "direction": "inbound", "state": "CS_EXECUTE"}

    def answer(
        self,
        uuid: str,
        answered_at: float,
        hangup_in: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """CHANNEL_ANSWER of ``uuid``, answered at epoch ``answered_at``.

        ``hangup_in``: the dialplan's ``execute_on_answer=sched_hangup +N``, run at the answer.
        ``headers``: more event headers (e.g. ``variable_<name>`` of the channel's variables).
        """
        self.answer_silently(uuid, answered_at)
        if hangup_in is not None:
            with self._lock:
                task = f"sched_hangup +{hangup_in} {uuid} ALLOTTED_TIMEOUT"
                self.tasks.setdefault(uuid, []).append(task)
                self.hangup_due[uuid] = (answered_at + hangup_in, "ALLOTTED_TIMEOUT")
        self.push(
            self._answer,
            {
                "Unique-ID": uuid,
                "Channel-Call-UUID": uuid,
                "Caller-Unique-ID": uuid,
                "Caller-Channel-Answered-Time": str(int(answered_at * 1e6)),
                **(headers or {}),
            },
        )

    def answer_silently(self, uuid: str, answered_at: float) -> None:
        """The channel answers but no event reaches anyone (no connection at that moment)."""
        self.add_channel(uuid)
        with self._lock:
            self.answered_us[uuid] = str(int(answered_at * 1e6))

    def hangup(self, uuid: str, cause: str = "NORMAL_CLEARING") -> None:
        with self._lock:
            self._gone(uuid)
        self.push(self._hangup, {"Unique-ID": uuid, "Hangup-Cause": cause})

    def end_call(self, uuid: str, at: float) -> tuple[float, str]:
        """The caller hangs up at ``at`` unless the call ended before: (end epoch, cause)."""
        with self._lock:
            self._run_scheduler(at)
            ended = self.ended.get(uuid) or (at, "NORMAL_CLEARING")
            self._gone(uuid)
        self.push(self._hangup, {"Unique-ID": uuid, "Hangup-Cause": ended[1]})
        return ended

    def ended_at(self, uuid: str) -> tuple[float, str] | None:
        """When and why the channel ended (scheduled hangup, uuid_kill), or None if still up."""
        with self._lock:
            self._run_scheduler(time.time())
            return self.ended.get(uuid)

    def answered_channels(self) -> set[str]:
        """Channels answered and still up."""
        with self._lock:
            self._run_scheduler(time.time())
            return {u for u, t in self.answered_us.items() if t != "0"}

    def unscheduled(self) -> set[str]:
        """Answered channels with no pending hangup in the scheduler."""
        with self._lock:
            self._run_scheduler(time.time())
            return {u for u, t in self.answered_us.items() if t != "0"} - set(self.hangup_due)

    def push(self, template: dict[str, str], changes: dict[str, str]) -> None:
        headers = {**template, **changes}
        for client in self._subscribers(headers["Event-Name"]):
            client.send(self.encode_event(headers, client.fmt or "json"))

    def replay(self, path: Path) -> int:
        """Send every event frame of a captured stream, byte for byte; how many were sent."""
        raw = path.read_bytes()
        sent = 0
        for headers, body in captured_frames(path):
            if headers.get("Content-Type", "").encode() not in EVENT_TYPES:
                continue
            name = decode_event_name(headers, body)
            frame = (
                f"Content-Length: {len(body)}\nContent-Type: {headers['Content-Type']}\n\n"
            ).encode() + body
            assert frame in raw  # the bytes are the capture's own
            for client in self._subscribers(name):
                client.send(frame)
            sent += 1
        return sent

    def drop(self) -> None:
        """Close every client connection without a goodbye (a crash or a network cut)."""
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            client.sock.close()

    def close(self) -> None:
        self._stopped = True
        self.drop()
        self._server.close()

    @staticmethod
    def encode_event(headers: dict[str, str], fmt: str) -> bytes:
        if fmt == "json":
            body = json.dumps(headers, separators=(",", ":")).encode()
            kind = "text/event-json"
        else:
            body = "".join(f"{k}: {quote(v, safe='')}\n" for k, v in headers.items()).encode()
            body += b"\n"
            kind = "text/event-plain"
        return f"Content-Length: {len(body)}\nContent-Type: {kind}\n\n".encode() + body

    # ------------------------------------------------------------------ protocol
    def _subscribers(self, name: str) -> list[_Client]:
        with self._lock:
            return [c for c in self._clients if c.fmt and (name in c.events or "ALL" in c.events)]

    def _gone(self, uuid: str) -> None:
        self.channels.pop(uuid, None)
        self.answered_us.pop(uuid, None)
        self.tasks.pop(uuid, None)
        self.hangup_due.pop(uuid, None)

    def _run_scheduler(self, now: float) -> None:
        """Fire the hangups due by ``now`` (under the lock)."""
        for uuid, (due, cause) in list(self.hangup_due.items()):
            if due <= now:
                if uuid in self.channels:
                    self.ended.setdefault(uuid, (due, cause))
                self._gone(uuid)

    def _accept(self) -> None:
        while not self._stopped:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            if self.refusing:
                sock.close()
                continue
            client = _Client(sock)
            with self._lock:
                self._clients.append(client)
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: _Client) -> None:
        try:
            self._converse(client)
        finally:
            with self._lock:  # a closed connection no longer counts as subscribed
                if client in self._clients:
                    self._clients.remove(client)

    def _converse(self, client: _Client) -> None:
        client.send(b"Content-Type: auth/request\n\n")
        buf = b""
        while True:
            try:
                data = client.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\n\n" in buf:
                raw, buf = buf.split(b"\n\n", 1)
                command = raw.decode().split("\n")[0].strip()
                with self._lock:
                    self.commands.append(command)
                if not self._command(client, command):
                    return

    def _reply(self, client: _Client, text: str) -> None:
        client.send(f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode())

    def _bye(self, client: _Client) -> None:
        client.send(
            b"Content-Type: text/disconnect-notice\nContent-Length: "
            + str(len(GOODBYE)).encode()
            + b"\n\n"
            + GOODBYE
        )
        client.sock.close()

    def _command(self, client: _Client, command: str) -> bool:
        verb, _, rest = command.partition(" ")
        if verb == "auth":
            if rest == self.password:
                client.authed = True
                self._reply(client, "+OK accepted")
                return True
            self._reply(client, "-ERR invalid")
            self._bye(client)
            return False
        if not client.authed:
            self._reply(client, "-ERR command not found")
            return True
        if verb == "event":
            fmt, _, names = rest.partition(" ")
            client.fmt = fmt
            client.events = set(names.split())
            self._reply(client, f"+OK event listener enabled {fmt}")
        elif verb == "api":
            body = self._api(rest).encode()
            if self.stall and rest.split()[0] == self.stall[0]:
                delay, self.stall = self.stall[1], None
                time.sleep(delay)
            client.send(
                f"Content-Type: api/response\nContent-Length: {len(body)}\n\n".encode() + body
            )
            if self.drop_after and rest.split()[0] == self.drop_after:
                self.drop_after = None
                self.drop()
                return False
        elif verb == "exit":
            self._reply(client, "+OK bye")
            self._bye(client)
            return False
        else:
            self._reply(client, "-ERR command not found")
        return True

    def _api(self, line: str) -> str:
        args = line.split()
        name = args[0] if args else ""
        with self._lock:
            self._run_scheduler(time.time())
            if line == "show channels as json":
                rows = list(self.channels.values())
                if not rows:
                    return '{"row_count": 0}\n'
                return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"))
            if name in ("sched_hangup", "sched_broadcast") and len(args) >= 3:
                uuid = args[2]
                if name == "sched_hangup" and uuid not in self.channels:
                    return "-ERR No such channel!\n"
                self.tasks.setdefault(uuid, []).append(line)
                if name == "sched_hangup":
                    cause = args[3] if len(args) > 3 else "ALLOTTED_TIMEOUT"
                    due = (time.time() + int(args[1].lstrip("+")), cause)
                    self.hangup_due[uuid] = min(self.hangup_due.get(uuid, due), due)
                return "+OK\n" if name == "sched_hangup" else "+OK Message Scheduled\n"
            if name == "sched_del" and len(args) == 2:
                self.hangup_due.pop(args[1], None)
                return f"+OK Deleted: {len(self.tasks.pop(args[1], []))}\n"
            if name == "uuid_kill" and len(args) >= 2:
                if args[1] not in self.channels:
                    return "-ERR No such channel!\n"
                cause = args[2] if len(args) > 2 else "NORMAL_CLEARING"
                self.ended.setdefault(args[1], (time.time(), cause))
                self._gone(args[1])
                return "+OK\n"
            if name == "uuid_getvar" and len(args) == 3:
                # as captured: the bare value, no trailing newline; _undef_ when unset
                if args[1] not in self.channels:
                    return "-ERR No such channel!\n"
                if args[2] == "answered_time":  # caller-profile field, "0" until answered
                    return self.answered_us.get(args[1], "0")
                return "_undef_"  # the peer keeps no other channel variables
            if name == "uuid_broadcast" and len(args) >= 3:
                return "+OK Message sent\n" if args[1] in self.channels else "-ERR invalid uuid\n"
        return "-ERR no_such_command Command not found!\n"


def decode_event_name(headers: dict[str, str], body: bytes) -> str:
    from sidecar.control.frames import Frame

    return decode_event(Frame(headers, body)).name


def json_events(path: Path) -> list[dict[str, Any]]:
    """The events of a captured stream, decoded (for assertions)."""
    from sidecar.control.frames import Frame

    return [
        decode_event(Frame(h, b)).headers
        for h, b in captured_frames(path)
        if h.get("Content-Type", "").encode() in EVENT_TYPES
    ]
