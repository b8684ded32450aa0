"""A TCP peer that misbehaves the way a sick sidecar does, for the hooks' failure codes.

``hangs_up``: accepts, reads the request, closes without a word (``connection_error``).
``silent``: accepts, reads, never answers (``timeout`` once the budget is spent).
``dribbles``: answers a valid 200 one byte at a time, slowly (the budget must still hold).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

DRIBBLE_BODY = b'{"authorized": false, "reason": "no_rate"}'


@contextmanager
def raw_peer(mode: str, dribble_interval: float = 0.1) -> Iterator[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve(conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            conn.recv(65536)
            if mode == "hangs_up":
                conn.close()
            elif mode == "dribbles":
                reply = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(DRIBBLE_BODY), DRIBBLE_BODY)
                )
                for i in range(len(reply)):
                    if stop.wait(dribble_interval):
                        return
                    conn.sendall(reply[i : i + 1])
            else:
                held.append(conn)  # silent: keep it open, say nothing
        except OSError:
            pass

    def accept_loop() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        listener.close()
        time.sleep(0)
        for conn in held:
            conn.close()
