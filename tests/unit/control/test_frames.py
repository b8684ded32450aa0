"""Event-socket framing against the raw captures of a real FreeSWITCH 1.10.12."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from fixtures_path import FS_FIXTURES

from sidecar.control.frames import (
    Frame,
    FrameError,
    FrameParser,
    decode_event,
    encode_command,
)

CONTROL = FS_FIXTURES / "esl" / "control"
CAPTURES = json.loads((CONTROL / "scenarios.json").read_text())["captures"]
EVENT_TYPES = ("text/event-plain", "text/event-json")


@pytest.mark.parametrize("capture", CAPTURES, ids=[c["id"] for c in CAPTURES])
def test_every_capture_splits_into_the_frames_it_holds(capture: dict) -> None:
    raw = (CONTROL / capture["files"]["from_fs"]).read_bytes()
    whole = FrameParser().feed(raw)
    counts = Counter(f.content_type for f in whole)
    assert dict(counts) == capture["frames_from_fs_by_content_type"]
    # fed in the chunks recv() really returned (frames split across and packed into reads)
    parser, chunked = FrameParser(), []
    for line in (CONTROL / capture["files"]["timeline"]).read_text().splitlines():
        entry = json.loads(line)
        if entry["dir"] == "from_fs" and entry.get("data"):
            chunked.extend(parser.feed(entry["data"].encode("utf-8", "surrogateescape")))
    assert chunked == whole


def _events(name: str) -> list:
    frames = FrameParser().feed((CONTROL / name).read_bytes())
    return [decode_event(f) for f in frames if f.content_type in EVENT_TYPES]


def test_plain_and_json_streams_of_the_same_calls_decode_to_the_same_values() -> None:
    plain = {e.get("Event-Sequence"): e for e in _events("07_live_calls_events_plain.from_fs.raw")}
    jsn = {e.get("Event-Sequence"): e for e in _events("07_live_calls_events_json.from_fs.raw")}
    common = sorted(set(plain) & set(jsn))
    assert len(common) > 10
    for seq in common:
        p, j = plain[seq], jsn[seq]
        assert p.name == j.name
        for key in ("Unique-ID", "Event-Date-Local", "Caller-Channel-Answered-Time"):
            assert p.get(key) == j.get(key)  # plain values are percent-decoded
    names = {e.name for e in plain.values()}
    assert {"CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE"} <= names


def test_background_job_body_is_the_same_in_plain_and_json() -> None:
    plain = [e for e in _events("13_bgapi_background_job_plain.from_fs.raw")]
    jsn = {e.get("Job-UUID"): e for e in _events("14_bgapi_background_job_json.from_fs.raw")}
    shared = [e for e in plain if e.get("Job-UUID") in jsn]
    assert shared
    for event in shared:
        assert event.body == jsn[event.get("Job-UUID")].body
        assert event.body  # the job's output, after the inner Content-Length


def test_api_response_body_is_exactly_content_length_bytes() -> None:
    frames = FrameParser().feed((CONTROL / "11_uuid_commands_live.from_fs.raw").read_bytes())
    bodies = [f.text() for f in frames if f.content_type == "api/response"]
    assert "+OK Deleted: 1\n" in bodies and "+OK Deleted: 0\n" in bodies
    assert "true" in bodies  # uuid_exists: no trailing newline


def test_partial_frame_waits_for_the_rest() -> None:
    parser = FrameParser()
    assert parser.feed(b"Content-Type: api/response\nContent-Length: 4\n\n+O") == []
    assert parser.feed(b"K\n") == [
        Frame({"Content-Type": "api/response", "Content-Length": "4"}, b"+OK\n")
    ]


@pytest.mark.parametrize(
    "raw",
    [
        b"Content-Type: api/response\nContent-Length: -1\n\n",
        b"Content-Type: api/response\nContent-Length: 12x\n\n",
        b"no colon here\n\n",
    ],
)
def test_malformed_frames_are_refused(raw: bytes) -> None:
    with pytest.raises(FrameError):
        FrameParser().feed(raw)


def test_hostile_json_event_is_refused() -> None:
    with pytest.raises(FrameError):
        decode_event(Frame({"Content-Type": "text/event-json"}, b"[1,2]"))
    with pytest.raises(FrameError):
        decode_event(Frame({"Content-Type": "text/event-json"}, b"{not json"))


def test_commands_cannot_smuggle_a_second_command() -> None:
    assert encode_command("api status") == b"api status\n\n"
    with pytest.raises(ValueError):
        encode_command("api status\n\napi hupall")
