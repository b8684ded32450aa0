"""A loopback HTTP front for the sidecar that answers errors on demand, as a proxy would.

``mode`` is ``"pass"`` (forward), an int (answer that status without forwarding: the
sidecar never sees the request) or ``"lose"``: forward, so the sidecar commits, then answer
502 as if the response were lost on the way back, once per file (``X-Apolo-File-Name``;
names in ``lost``), so the retry of each gets through. A sidecar that cannot be reached is
answered 502 (bad gateway). ``target`` may change while it runs (a restarted sidecar).
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

FORWARDED = ("Authorization", "Content-Type", "X-Apolo-File-Name")


class FaultProxy:
    def __init__(self, target: str) -> None:
        self.target = target
        self.mode: str | int = "pass"
        self.answered: Counter[int] = Counter()
        self.forwarded = 0
        self.lost: set[str] = set()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, payload = proxy._answer(self.command, self.path, self.headers, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _answer(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, bytes]:
        mode = self.mode
        status, payload = 0, b""
        if isinstance(mode, int):
            status, payload = mode, b'{"error": "injected"}'
        else:
            try:
                resp = requests.request(
                    method, self.target + path, data=body, timeout=(2.0, 60.0),
                    headers={k: headers[k] for k in FORWARDED if headers.get(k)},
                )  # fmt: skip
                self.forwarded += 1
                status, payload = resp.status_code, resp.content
            except requests.RequestException:
                status, payload = 502, b'{"error": "bad gateway"}'
            name = headers.get("X-Apolo-File-Name")
            if mode == "lose" and name and name not in self.lost and 200 <= status < 300:
                self.lost.add(name)
                status, payload = 502, b'{"error": "upstream response lost"}'
        self.answered[status] += 1
        return status, payload

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
