"""Reconciliation rules and control settings (pure)."""

from __future__ import annotations

import pytest
from fixtures_path import FS_FIXTURES

from sidecar.control.frames import FrameParser
from sidecar.control.reconcile import channel_uuids, orphan_decisions
from sidecar.control.settings import load_control_settings, parse_switches

CONTROL = FS_FIXTURES / "esl" / "control"


def _show_channels_body(name: str) -> str:
    frames = FrameParser().feed((CONTROL / name).read_bytes())
    bodies = [f.text() for f in frames if f.content_type == "api/response"]
    return next(b for b in bodies if b.lstrip().startswith("{"))  # first: show channels as json


def test_channel_uuids_from_captured_show_channels() -> None:
    assert channel_uuids(_show_channels_body("06_show_zero_calls.from_fs.raw")) == set()
    three = channel_uuids(_show_channels_body("09_show_three_calls.from_fs.raw"))
    assert len(three) == 6  # three loopback calls, two channels each
    with pytest.raises(ValueError):
        channel_uuids("-ERR no_such_command Command not found!\n")


def test_orphans_are_released_only_after_the_grace() -> None:
    open_uuids = ["live", "gone", "hung-up"]
    release, missing = orphan_decisions(open_uuids, {"live"}, {"hung-up": 95.0}, 100.0, 10.0)
    assert release == [] and missing == {"gone": 100.0, "hung-up": 95.0}
    release, missing = orphan_decisions(open_uuids, {"live"}, missing, 105.0, 10.0)
    assert release == ["hung-up"]
    release, missing = orphan_decisions(["live", "gone"], {"live", "gone"}, missing, 200.0, 10.0)
    assert release == [] and missing == {}  # back on a switch: the clock starts again


def test_switch_list_and_defaults() -> None:
    switches = parse_switches("10.0.0.1:8021:Clue:Con, fs2:8022:secret")
    assert [(s.node, s.password) for s in switches] == [
        ("10.0.0.1:8021", "Clue:Con"),
        ("fs2:8022", "secret"),
    ]
    for bad in ("fs1:8021", "fs1:port:pw", ":8021:pw", "fs1:70000:pw"):
        with pytest.raises(ValueError):
            parse_switches(bad)
    cs = load_control_settings({"APOLO_FREESWITCH": "fs1:8021:pw"})
    assert cs.policy.extend_threshold == 60 and cs.policy.block_seconds == 3600
    assert cs.policy.announce_file == "" and cs.reconcile_seconds == 60
    assert cs.reconcile_grace_seconds == 120 and cs.event_format == "json"
    with pytest.raises(ValueError):
        load_control_settings({"APOLO_CONTROL_EVENT_FORMAT": "xml"})
