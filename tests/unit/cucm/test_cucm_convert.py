"""File names and typed values."""

from __future__ import annotations

import socket
import struct
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.cucm.convert import epoch_to_utc, ipv4_from_le, to_int
from sidecar.cucm.errors import CucmFileError
from sidecar.cucm.filename import parse_file_name


@pytest.mark.parametrize(
    ("name", "cluster", "node", "seq"),
    [
        ("cdr_StandAloneCluster_02_201510091036_254831", "StandAloneCluster", 2, 254831),
        ("cmr_my_cluster-b_01_7_202501311259_3", "my_cluster-b_01", 7, 3),
        ("cdr_a_1_202001010000_0", "a", 1, 0),
    ],
)
def test_file_names_are_parsed_from_the_right(name: str, cluster: str, node: int, seq: int) -> None:
    parsed = parse_file_name(name)
    assert (parsed.kind, parsed.cluster, parsed.node, parsed.seq) == (
        name[:3],
        cluster,
        node,
        seq,
    )
    stamp = name.rsplit("_", 2)[1]
    assert parsed.stamp == datetime.strptime(stamp, "%Y%m%d%H%M").replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "cdr.txt",
        "xyz_cluster_1_202001010000_1",
        "cdr__1_202001010000_1",
        "cdr_cluster_1_202013010000_1",
        "cdr_cluster_1_20200101000_1",
        "cdr_clu/ster_1_202001010000_1",
        "cdr_../../etc_1_202001010000_1",
        "cdr_cluster_x_202001010000_1",
    ],
)
def test_bad_file_names_are_refused(name: str) -> None:
    with pytest.raises(CucmFileError):
        parse_file_name(name)


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ipv4_is_little_endian_packed(packed: int) -> None:
    if packed == 0:
        assert ipv4_from_le(packed) is None
        return
    assert ipv4_from_le(packed) == socket.inet_ntoa(struct.pack("<I", packed))
    signed = packed - 2**32 if packed >= 2**31 else packed
    assert ipv4_from_le(signed) == ipv4_from_le(packed)


def test_integers_are_bigint_and_empty_is_null() -> None:
    assert to_int("") is None
    assert to_int(" 1459617833 ") == 1459617833
    assert to_int(str(2**63 - 1)) == 2**63 - 1
    for bad in ("1.5", "1e3", "0x10", str(2**63), "٣"):
        with pytest.raises(ValueError):
            to_int(bad)
    with pytest.raises(ValueError):
        ipv4_from_le(2**32)


def test_epoch_zero_means_never() -> None:
    assert epoch_to_utc(0) is None and epoch_to_utc(None) is None
    assert epoch_to_utc(1744993930) == datetime(2025, 4, 18, 16, 32, 10, tzinfo=UTC)
    with pytest.raises(ValueError):
        epoch_to_utc(10**13)
