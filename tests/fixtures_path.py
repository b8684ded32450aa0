"""Where the captured fixtures live, plus a reader for raw ``.http`` captures.

They are in the repository (``tests/fixtures``, see its README), so a clone alone passes
``make test``; ``APOLO_FIXTURES`` points the tests at another copy.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(
    os.environ.get("APOLO_FIXTURES") or Path(__file__).resolve().parent / "fixtures"
).resolve()
FS_FIXTURES = FIXTURES / "freeswitch"
CUCM_FIXTURES = FIXTURES / "cucm"


@dataclass(frozen=True)
class HttpCapture:
    method: str
    target: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def read_http_capture(path: Path) -> HttpCapture:
    """Split a captured HTTP/1.1 request into request line, headers and exact body bytes."""
    raw = path.read_bytes()
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"{path}: no end of headers"
    request_line, *header_lines = head.decode("ascii").split("\r\n")
    method, target, _version = request_line.split(" ")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert int(headers["content-length"]) == len(body), f"{path}: Content-Length mismatch"
    return HttpCapture(method=method, target=target, headers=headers, body=body)
