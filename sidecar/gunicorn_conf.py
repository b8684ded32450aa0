"""Gunicorn's configuration module for ``apolo serve`` (``-c python:sidecar.gunicorn_conf``).

The settings themselves are passed on the command line. What this module does is import the
heavy libraries (Flask and its stack, psycopg, redis-py, lxml, prometheus_client) once, in
gunicorn's master, before it forks the workers: their code and data pages are then shared by
every worker instead of copied into each (about 18 MB less PSS per worker, issue #17). Only
modules are imported: the app is still made in each worker, after the fork, and nothing here
opens a connection, starts a thread or creates a metric.
"""

import flask  # noqa: F401
import jinja2  # noqa: F401
import lxml.etree  # noqa: F401
import prometheus_client  # noqa: F401
import psycopg  # noqa: F401
import psycopg_pool  # noqa: F401
import redis  # noqa: F401
import werkzeug  # noqa: F401
