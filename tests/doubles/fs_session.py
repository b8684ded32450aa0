"""Stand-ins for what mod_python3 hands a script: a ``freeswitch.Session`` and the ``freeswitch``
module, modelled on the real ``dir(session)`` / ``dir(freeswitch)`` captured in
tests/fixtures/freeswitch/python/probe_records.jsonl (FreeSWITCH 1.10.12, CPython 3.11).

Only the members the Apolo hook touches are implemented; each call is recorded in ``calls``.
"""

from __future__ import annotations

import sys
import types
import uuid as uuid_mod
from pathlib import Path
from typing import Any

FS_SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "fs_scripts"


def add_fs_scripts_to_path() -> Path:
    """fs_scripts/ is FreeSWITCH's scripts dir, not a package: import its modules by name."""
    if str(FS_SCRIPTS_DIR) not in sys.path:
        sys.path.insert(0, str(FS_SCRIPTS_DIR))
    return FS_SCRIPTS_DIR


class FakeSession:
    """Like ``freeswitch.Session`` (a SWIG ``CoreSession``) on a channel in the dialplan."""

    def __init__(
        self,
        variables: dict[str, str] | None = None,
        uuid: str | None = None,
        answered: bool = False,
    ) -> None:
        self._uuid = uuid or str(uuid_mod.uuid4())
        self.variables: dict[str, str] = {"uuid": self._uuid, **(variables or {})}
        self._answered = answered
        self._ready = True
        self._cause = "NONE"  # what hangupCause() says while the channel is up (see probe)
        self.calls: list[tuple[Any, ...]] = []

    # -- channel variables: a missing one reads as None; setting "" (or None) deletes it,
    #    like switch_channel_set_variable.
    def getVariable(self, name: str) -> str | None:
        self.calls.append(("getVariable", name))
        return self.variables.get(name)

    def setVariable(self, name: str, value: str | None) -> None:
        self.calls.append(("setVariable", name, value))
        if value:
            self.variables[name] = str(value)
        else:
            self.variables.pop(name, None)

    def get_uuid(self) -> str:
        self.calls.append(("get_uuid",))
        return self._uuid

    def execute(self, app: str, data: str = "") -> None:
        self.calls.append(("execute", app, data))

    def hangup(self, cause: str = "normal_clearing") -> None:
        self.calls.append(("hangup", cause))
        if self._ready:
            self._ready = False
            self._cause = cause.upper()

    def answered(self) -> bool:
        return self._answered

    def ready(self) -> bool:
        return self._ready

    def hangupCause(self) -> str:
        return self._cause

    def consoleLog(self, level: str, msg: str) -> None:
        self.calls.append(("consoleLog", level, msg))

    # -- helpers for assertions
    @property
    def hangups(self) -> list[str]:
        return [c[1] for c in self.calls if c[0] == "hangup"]

    @property
    def executed(self) -> list[tuple[str, str]]:
        return [(c[1], c[2]) for c in self.calls if c[0] == "execute"]


class FakeFreeswitchModule(types.ModuleType):
    """The ``freeswitch`` module's logging entry point; ``logs`` holds (level, message)."""

    def __init__(self) -> None:
        super().__init__("freeswitch")
        self.logs: list[tuple[str, str]] = []

    def consoleLog(self, level: str, msg: str) -> None:
        self.logs.append((level, msg))

    def consoleCleanLog(self, msg: str) -> None:
        self.logs.append(("clean", msg))


def install_fake_freeswitch() -> FakeFreeswitchModule:
    """Put a fresh stand-in at ``sys.modules['freeswitch']`` (undo with ``remove_fake_...``)."""
    module = FakeFreeswitchModule()
    sys.modules["freeswitch"] = module
    return module


def remove_fake_freeswitch() -> None:
    if isinstance(sys.modules.get("freeswitch"), FakeFreeswitchModule):
        del sys.modules["freeswitch"]
