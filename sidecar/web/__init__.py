"""The operator dashboard: server-rendered pages under ``/dashboard`` (register ``bp``).

Pages read through the same repositories and services as the JSON API and write through
the same audited services; every page needs a logged-in user of the right role
(:mod:`sidecar.web.guard`). Static files (CSS and one script) are public.
"""

from sidecar.web import (
    accounts,
    alerts,
    audit_log,
    cdrs,
    controls,
    live,
    login,
    overview,
    rates,
    rating_admin,
)
from sidecar.web.blueprint import bp

__all__ = [
    "accounts",
    "alerts",
    "audit_log",
    "bp",
    "cdrs",
    "controls",
    "live",
    "login",
    "overview",
    "rates",
    "rating_admin",
]
