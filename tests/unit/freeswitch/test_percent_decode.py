"""percent_decode: the fast path must give exactly what urllib's unquote_to_bytes gives."""

from urllib.parse import quote_from_bytes, unquote_to_bytes

from fixtures_path import FS_FIXTURES
from hypothesis import given
from hypothesis import strategies as st

from sidecar.freeswitch.xml_cdr import percent_decode

# bytes rich in the characters that matter: %, hex digits, backslash, x, and anything else
_PIECES = st.one_of(
    st.sampled_from([b"%", b"\\", b"x", b"%4", b"%41", b"%zz", b"%0a", b"\\x41", b"%5C"]),
    st.binary(max_size=4),
)


@given(st.lists(_PIECES, max_size=40).map(b"".join))
def test_same_as_unquote_to_bytes_on_any_bytes(data: bytes) -> None:
    assert percent_decode(data) == unquote_to_bytes(data)


@given(st.binary(max_size=300))
def test_undoes_percent_encoding(raw: bytes) -> None:
    assert percent_decode(quote_from_bytes(raw, safe="").encode()) == raw


def test_real_encode_true_spool_files() -> None:
    files = sorted((FS_FIXTURES / "xml_cdr" / "urlencoded" / "err_log_dir").glob("*.cdr.xml"))
    assert files
    for path in files:
        data = path.read_bytes().strip()
        assert percent_decode(data) == unquote_to_bytes(data)
        assert percent_decode(data).lstrip().startswith(b"<")
