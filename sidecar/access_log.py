"""gunicorn's access log without the secrets a client may put in a URL.

Apolo never reads a token from a query string, but a client may still send one there
(``?token=apo_…``, a password in a link): gunicorn would write it into the access log,
which is kept longer and read by more people than the database. Query values whose name
says they are secret, and anything that looks like an Apolo token wherever it appears in
the request line or the Referer, are replaced by ``[redacted]``; headers and the WSGI
environment are never logged (their atoms are emptied, whatever the log format asks for).
"""

from __future__ import annotations

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


class RedactingLogger(Logger):  # type: ignore[misc]
    """``apolo serve`` passes this as gunicorn's ``--logger-class``."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> Any:
        atoms = super().atoms(resp, req, environ, request_time)
        for key in list(atoms):
            if key.startswith("{") and key[-2:] in ("}i", "}o", "}e"):
                atoms[key] = "-"
        method, _, rest = str(atoms.get("r", "")).partition(" ")
        target, _, protocol = rest.rpartition(" ")
        atoms["r"] = f"{method} {redact_target(target)} {protocol}"
        atoms["q"] = redact_query(str(atoms.get("q") or ""))
        atoms["U"] = _TOKEN.sub(REDACTED, str(atoms.get("U") or ""))
        atoms["f"] = redact_target(str(atoms.get("f") or "-"))
        return atoms
