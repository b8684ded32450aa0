"""gunicorn's access log without the secrets a client may put in a URL.

Apolo never reads a token from a query string, but a client may still send one there
(``?token=apo_…``, a password in a link): gunicorn would write it into the access log,
which is kept longer and read by more people than the database. Query values whose name
says they are secret, and anything that looks like an Apolo token wherever it appears in
the request line or the Referer, are replaced by ``[redacted]``; headers and the WSGI
environment are never logged (their atoms are emptied, whatever the log format asks for).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any
from urllib.parse import unquote_plus

from gunicorn.glogging import Logger

REDACTED = "[redacted]"
_TOKEN = re.compile(r"apo(?:_|%5[Ff])[A-Za-z0-9_%-]+")
_SECRET_NAME = re.compile(r"token|key|pass|secret|auth|session|csrf|cred|signature", re.I)


def redact_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        name, sep, value = pair.partition("=")
        decoded = unquote_plus(value)
        if sep and (_SECRET_NAME.search(unquote_plus(name)) or "apo_" in decoded):
            value = REDACTED
        pairs.append(name + sep + value)
    return _TOKEN.sub(REDACTED, "&".join(pairs))


def redact_target(target: str) -> str:
    """A request target (path and query) or a URL, with secrets replaced."""
    path, sep, query = target.partition("?")
    return _TOKEN.sub(REDACTED, path) + sep + (redact_query(query) if sep else "")


def _clean(text: str) -> str:
    """``redact_target`` for the common case first: nothing that could be a secret."""
    if "?" not in text and "apo" not in text:
        return text
    return redact_target(text)


class RedactingLogger(Logger):  # type: ignore[misc]
    """``apolo serve`` passes this as gunicorn's ``--logger-class``.

    The atoms are gunicorn's own (``Logger.atoms``) without the header and environment
    ones, which are never logged: a format asking for one gets gunicorn's ``-`` for an atom
    it does not have. Not building them (a dict entry per header and per WSGI variable on
    every request) was a tenth of an authorization's time in the sidecar."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> Any:
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        seconds, micros = request_time.seconds, request_time.microseconds
        method = environ["REQUEST_METHOD"]
        query = environ.get("QUERY_STRING")
        return {
            "h": environ.get("REMOTE_ADDR", "-"),
            "l": "-",
            "u": self._get_user(environ) or "-",
            "t": self.now(),
            "r": f"{method} {_clean(environ['RAW_URI'])} {environ['SERVER_PROTOCOL']}",
            "s": status,
            "m": method,
            "U": _TOKEN.sub(REDACTED, environ.get("PATH_INFO") or ""),
            "q": redact_query(query) if query else "",
            "H": environ.get("SERVER_PROTOCOL"),
            "b": str(sent) if sent is not None else "-",
            "B": sent,
            "f": _clean(environ.get("HTTP_REFERER") or "-"),
            "a": environ.get("HTTP_USER_AGENT", "-"),
            "T": seconds,
            "D": seconds * 1000000 + micros,
            "M": seconds * 1000 + int(micros / 1000),
            "L": f"{seconds}.{micros:06d}",
            "p": f"<{os.getpid()}>",
        }
