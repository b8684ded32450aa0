"""A small blocking event-socket client (inbound mode), one per switch connection.

Used from a single thread: ``api()`` reads frames until its ``api/response`` and keeps the
events that arrive in between, in order, for ``next_event()``. The frames are dispatched by
Content-Type, never by position (on a subscribed connection replies and events interleave).
"""

from __future__ import annotations

import socket
import time
from collections import deque

from sidecar.control.frames import Event, Frame, FrameParser, decode_event, encode_command

EVENT_TYPES = ("text/event-plain", "text/event-json")


class EslError(Exception):
    """The switch refused a command or the connection is unusable."""


class EslClosed(EslError):
    """The switch closed the connection (or announced it would)."""


class EslAuthError(EslError):
    pass


class EslConnection:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._parser = FrameParser()
        self._frames: deque[Frame] = deque()
        self._events: deque[Event] = deque()
        self.closed = False

    @classmethod
    def open(cls, host: str, port: int, password: str, timeout: float = 5.0) -> EslConnection:
        sock = socket.create_connection((host, port), timeout=timeout)
        conn = cls(sock)
        try:
            greeting = conn._read_frame(time.monotonic() + timeout)
            if greeting.content_type != "auth/request":
                raise EslError(f"unexpected greeting {greeting.content_type!r}")
            reply = conn._command(f"auth {password}", timeout)
            if not reply.startswith("+OK"):
                raise EslAuthError(reply or "authentication refused")
        except BaseException:
            conn.close()
            raise
        return conn

    def subscribe(self, fmt: str, events: tuple[str, ...], timeout: float = 5.0) -> None:
        if fmt not in ("plain", "json"):
            raise ValueError("event format must be plain or json")
        reply = self._command(f"event {fmt} {' '.join(events)}", timeout)
        if not reply.startswith("+OK"):
            raise EslError(f"subscription refused: {reply}")

    def api(self, command: str, timeout: float = 5.0) -> str:
        """Run an API command; its output (``+OK ...``, ``-ERR ...``, or data)."""
        self._send(f"api {command}")
        deadline = time.monotonic() + timeout
        while True:
            frame = self._read_frame(deadline)
            if frame.content_type == "api/response":
                return frame.text()
            self._keep(frame)

    def next_event(self, timeout: float) -> Event | None:
        """The next event, or None when none came within ``timeout`` seconds."""
        if self._events:
            return self._events.popleft()
        deadline = time.monotonic() + timeout
        while not self._events:
            try:
                frame = self._read_frame(deadline)
            except TimeoutError:
                return None
            self._keep(frame)
        return self._events.popleft()

    def exit(self, timeout: float = 2.0) -> str:
        """Say goodbye (``+OK bye``); the switch then sends its disconnect notice and closes."""
        return self._command("exit", timeout)

    def close(self) -> None:
        self.closed = True
        try:
            self._sock.close()
        except OSError:
            pass

    def _command(self, command: str, timeout: float) -> str:
        self._send(command)
        deadline = time.monotonic() + timeout
        while True:
            frame = self._read_frame(deadline)
            if frame.content_type == "command/reply":
                return frame.reply_text
            self._keep(frame)

    def _keep(self, frame: Frame) -> None:
        if frame.content_type in EVENT_TYPES:
            self._events.append(decode_event(frame))
        elif frame.content_type == "text/disconnect-notice":
            self.close()
            raise EslClosed(frame.text().strip() or "disconnect notice")
        # anything else (a late reply) carries nothing for us

    def _send(self, command: str) -> None:
        if self.closed:
            raise EslClosed("connection is closed")
        try:
            self._sock.sendall(encode_command(command))
        except OSError as exc:
            self.close()
            raise EslClosed(str(exc)) from None

    def _read_frame(self, deadline: float) -> Frame:
        while not self._frames:
            if self.closed:
                raise EslClosed("connection is closed")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the switch in time")
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                raise
            except OSError as exc:
                self.close()
                raise EslClosed(str(exc)) from None
            if not data:
                self.close()
                raise EslClosed("the switch closed the connection")
            self._frames.extend(self._parser.feed(data))
        return self._frames.popleft()
