"""The hook under mod_python3's real threading model, in a small embedding program.

mod_python3 (src/mod/languages/mod_python3/mod_python3.c, eval_some_python) runs every call on the
session's own thread with a brand-new PyThreadState: PyThreadState_New, PyEval_AcquireThread,
PyImport_ImportModule + PyImport_ReloadModule of the module the dialplan names, handler(session,
args), then PyThreadState_Clear/Delete. Clearing the thread state empties every threading.local,
which is why apolo_fs pools its keep-alive connections at module level. This test embeds CPython
the same way (C, compiled here; skipped without a compiler or Python headers) and checks that
(a) a threading.local really is empty on every call and (b) the pooled connection survives.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from doubles.fs_session import FS_SCRIPTS_DIR

TESTS_DIR = Path(__file__).resolve().parents[2]

HARNESS_C = r"""
#include <Python.h>
#include <pthread.h>
#include <stdlib.h>

static PyThreadState *main_ts;
static int calls_per_thread;

/* One dialplan `python apolo_authorize` invocation, the way eval_some_python does it. */
static void one_call(void) {
    PyThreadState *ts = PyThreadState_New(main_ts->interp);
    PyEval_AcquireThread(ts);
    PyObject *driver = PyImport_ImportModule("mp3_driver");
    PyObject *session = driver ? PyObject_CallMethod(driver, "new_session", NULL) : NULL;
    PyObject *mod = session ? PyImport_ImportModule("apolo_authorize") : NULL;
    PyObject *reloaded = mod ? PyImport_ReloadModule(mod) : NULL;
    PyObject *fn = reloaded ? PyObject_GetAttrString(reloaded, "handler") : NULL;
    PyObject *res = fn ? PyObject_CallFunction(fn, "(Os)", session, "") : NULL;
    PyObject *rep = res ? PyObject_CallMethod(driver, "report", "(O)", session) : NULL;
    if (!rep) PyErr_Print();
    Py_XDECREF(rep); Py_XDECREF(res); Py_XDECREF(fn); Py_XDECREF(reloaded);
    Py_XDECREF(mod); Py_XDECREF(session); Py_XDECREF(driver);
    PyThreadState_Clear(ts);
    PyEval_ReleaseThread(ts);
    PyThreadState_Delete(ts);
}

static void *session_thread(void *unused) {
    for (int i = 0; i < calls_per_thread; i++) one_call();
    return NULL;
}

int main(int argc, char **argv) {
    int threads = atoi(argv[1]);
    calls_per_thread = atoi(argv[2]);
    Py_Initialize();
    main_ts = PyThreadState_Get();
    PyEval_SaveThread();
    for (int i = 0; i < threads; i++) {  /* one after another, like calls that do not overlap */
        pthread_t t;
        pthread_create(&t, NULL, session_thread, NULL);
        pthread_join(t, NULL);
    }
    PyEval_RestoreThread(main_ts);
    Py_Finalize();
    return 0;
}
"""

DRIVER_PY = """
import json, sys, threading
from doubles.fs_session import FakeSession
import apolo_fs

_probe = threading.local()

def new_session():
    return FakeSession({"caller_id_number": "100001", "destination_number": "51987654321"})

def report(session):
    survived = getattr(_probe, "mark", False)
    _probe.mark = True
    print(json.dumps({
        "result": session.variables.get("apolo_result"),
        "thread": threading.get_ident(),
        "threading_local_survived": survived,
        "pool": [id(c) for c in apolo_fs._client.idle],
    }), flush=True)
"""


class _Counter(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        super().setup()
        type(self).connections += 1

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps(
            {"authorized": True, "reason": "authorized", "uuid": request["uuid"],
             "account": "100001", "max_duration": 60, "rate": None, "reservation_id": 1,
             "sched_hangup_seconds": 59}
        ).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Counter.connections = 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _build(tmp_path: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    include = Path(sysconfig.get_paths()["include"])
    libdir = sysconfig.get_config_var("LIBDIR")
    if not cc or not (include / "Python.h").exists() or not libdir:
        pytest.skip("needs a C compiler and CPython headers")
    (tmp_path / "harness.c").write_text(HARNESS_C)
    exe = tmp_path / "harness"
    cmd = [cc, "-o", str(exe), str(tmp_path / "harness.c"), f"-I{include}", f"-L{libdir}",
           f"-Wl,-rpath,{libdir}", f"-lpython{sysconfig.get_config_var('LDVERSION')}",
           "-lpthread", "-ldl", "-lm"]  # fmt: skip
    built = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if built.returncode != 0:
        pytest.skip(f"cannot build an embedding program here: {built.stderr[-300:]}")
    return exe


def test_pooled_keepalive_survives_mod_python3_thread_states(tmp_path: Path, server: str) -> None:
    exe = _build(tmp_path)
    (tmp_path / "mp3_driver.py").write_text(DRIVER_PY)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(FS_SCRIPTS_DIR), str(TESTS_DIR), str(tmp_path)]),
        "PYTHONHOME": sys.base_prefix,
        "PYTHONDONTWRITEBYTECODE": "1",
        "APOLO_SIDECAR_URL": server,
    }
    run = subprocess.run(
        [str(exe), "3", "4"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(records) == 12, run.stderr
    assert all(r["result"] == "authorized" for r in records)
    # The premise: per-thread state does not outlive one invocation, not even on the same thread.
    assert not any(r["threading_local_survived"] for r in records)
    # The pool does: one connection object, one TCP connection, for all 12 calls on 3 threads.
    assert len({tuple(r["pool"]) for r in records}) == 1
    assert _Counter.connections == 1
