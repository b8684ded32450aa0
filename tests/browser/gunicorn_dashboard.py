"""gunicorn config for the browser tests (``GUNICORN_CMD_ARGS=--config THIS_FILE``).

Registers the dashboard blueprint in each worker until the lead registers it in
``sidecar/app.py``; once that is done, this hook does nothing.
"""

from __future__ import annotations

from typing import Any


def post_worker_init(worker: Any) -> None:
    from sidecar.web import bp

    app = worker.wsgi
    if bp.name not in app.blueprints:
        app.register_blueprint(bp)
