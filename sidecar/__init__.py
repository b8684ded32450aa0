"""Apolo sidecar: the Flask app FreeSWITCH and operators talk to.

The WSGI application is ``sidecar:create_app()``. Flask is imported only when the app
is created, so ``sidecar.rating`` (the pure core) stays free of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    from sidecar.app import create_app as _create_app

    return _create_app(overrides)
