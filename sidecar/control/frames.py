"""Event-socket framing: split a byte stream into frames and decode events (pure).

A frame is a header block ended by an empty line (LF only); when it has a Content-Length,
exactly that many body bytes follow. Events arrive as ``text/event-plain`` (a body that is
itself a header block, values percent-encoded, with an optional inner body) or
``text/event-json`` (a JSON object whose values are strings; the inner body is ``_body``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import unquote

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024


class FrameError(ValueError):
    """The peer sent something that is not event-socket framing."""


@dataclass(frozen=True)
class Frame:
    headers: dict[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def reply_text(self) -> str:
        return self.headers.get("Reply-Text", "")

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Event:
    name: str
    headers: dict[str, str]
    body: str = ""

    def get(self, key: str, default: str = "") -> str:
        return self.headers.get(key, default)


def _parse_header_block(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in block.decode("utf-8", errors="replace").split("\n"):
        if not raw:
            continue
        name, sep, value = raw.partition(":")
        if not sep:
            raise FrameError(f"header line without a colon: {raw[:80]!r}")
        headers[name.strip()] = value.strip()
    return headers


@dataclass
class FrameParser:
    """Feed bytes as they arrive; take complete frames out. Keeps partial frames."""

    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Frame]:
        self._buf.extend(data)
        frames: list[Frame] = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def _next(self) -> Frame | None:
        buf = self._buf
        while buf[:1] == b"\n":  # tolerate stray blank lines between frames
            del buf[:1]
        end = buf.find(b"\n\n")
        if end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                raise FrameError("header block too long")
            return None
        headers = _parse_header_block(bytes(buf[:end]))
        length_text = headers.get("Content-Length")
        length = 0
        if length_text is not None:
            if not length_text.isdigit() or int(length_text) > MAX_BODY_BYTES:
                raise FrameError(f"bad Content-Length: {length_text!r}")
            length = int(length_text)
        start = end + 2
        if len(buf) < start + length:
            return None
        body = bytes(buf[start : start + length])
        del buf[: start + length]
        return Frame(headers, body)


def decode_event(frame: Frame) -> Event:
    """The event carried by a ``text/event-plain`` or ``text/event-json`` frame."""
    kind = frame.content_type
    if kind == "text/event-json":
        try:
            data = json.loads(frame.body)
        except ValueError as exc:
            raise FrameError(f"event-json body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise FrameError("event-json body is not an object")
        body = data.pop("_body", "")
        headers = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
        return Event(headers.get("Event-Name", ""), headers, str(body))
    if kind == "text/event-plain":
        text = frame.body
        end = text.find(b"\n\n")
        block, rest = (text, b"") if end < 0 else (text[:end], text[end + 2 :])
        headers = {k: unquote(v) for k, v in _parse_header_block(block).items()}
        inner = headers.get("Content-Length")
        body = rest[: int(inner)] if inner and inner.isdigit() else rest
        return Event(headers.get("Event-Name", ""), headers, body.decode("utf-8", "replace"))
    raise FrameError(f"not an event frame: {kind!r}")


def encode_command(command: str, headers: dict[str, str] | None = None) -> bytes:
    """``command`` as one frame; refuses newlines that would smuggle a second command."""
    lines = [command, *(f"{k}: {v}" for k, v in (headers or {}).items())]
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError(f"newline in event-socket command: {line!r}")
    return ("\n".join(lines) + "\n\n").encode()
