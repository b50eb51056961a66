"""Leaf data: the exact SPEC lines, strict parsing, RFC 8785 metadata hash, round-trip properties."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evidence.errors import FormatError
from evidence.leaf import KINDS, LeafData, meta_hash, new_salt, truncate_to_ms

CONTENT = b"lease agreement"
META_HEX = hashlib.sha256(b'{"matter":"M-1"}').hexdigest()
WHEN = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def _leaf(**changes: object) -> LeafData:
    fields: dict[str, object] = {
        "id": "dep_01",
        "kind": "contract",
        "sha256": hashlib.sha256(CONTENT).digest(),
        "sm3": hashlib.new("sm3", CONTENT).digest(),
        "size": len(CONTENT),
        "received": WHEN,
        "depositor": "tenant-7",
        "meta": meta_hash({"matter": "M-1"}),
        "salt": bytes(range(16)),
    }
    fields.update(changes)
    return LeafData(**fields)  # type: ignore[arg-type]


def test_exact_bytes() -> None:
    leaf = _leaf()
    expected = (
        "evidence-deposit/v1\n"
        "id dep_01\n"
        "kind contract\n"
        f"sha256 {hashlib.sha256(CONTENT).hexdigest()}\n"
        f"sm3 {hashlib.new('sm3', CONTENT).hexdigest()}\n"
        "size 15\n"
        "received 2026-01-02T03:04:05.678Z\n"
        "depositor tenant-7\n"
        f"meta {META_HEX}\n"
        "salt 000102030405060708090a0b0c0d0e0f\n"
    ).encode()
    assert leaf.to_bytes() == expected
    assert LeafData.from_bytes(expected) == leaf
    assert leaf.leaf_hash() == hashlib.sha256(b"\x00" + expected).digest()


def test_hash_only_size_dash_and_zero_ms() -> None:
    leaf = _leaf(size=None, received=datetime(2026, 1, 2, tzinfo=UTC))
    data = leaf.to_bytes()
    assert b"\nsize -\n" in data and b"\nreceived 2026-01-02T00:00:00.000Z\n" in data
    assert LeafData.from_bytes(data) == leaf
    assert LeafData.from_bytes(_leaf(size=0).to_bytes()).size == 0


def test_meta_hash_is_rfc8785() -> None:
    md = {"b": [1, 2.5, "x"], "a": {"z": None, "é": True}, "n": 1e21}
    canonical = '{"a":{"z":null,"é":true},"b":[1,2.5,"x"],"n":1e+21}'.encode()
    assert meta_hash(md) == hashlib.sha256(canonical).digest()
    # Key order and whitespace in the sender's JSON do not matter.
    assert meta_hash(
        json.loads('{ "n": 1e21, "a": {"é": true, "z": null}, "b": [1, 2.5, "x"] }')
    ) == meta_hash(md)
    with pytest.raises(FormatError):
        meta_hash({"x": float("nan")})
    with pytest.raises(FormatError):
        meta_hash([1, 2])  # type: ignore[arg-type]


def _replace_line(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


GOOD = _leaf().to_bytes()


@pytest.mark.parametrize(
    "bad",
    [
        _replace_line(GOOD, b"evidence-deposit/v1", b"evidence-deposit/v2"),
        _replace_line(GOOD, b"id dep_01", b"ID dep_01"),
        _replace_line(GOOD, b"id dep_01", b"id dep 01"),
        _replace_line(GOOD, b"id dep_01", b"id dep.01"),
        _replace_line(GOOD, b"id dep_01", b"id " + b"a" * 65),
        _replace_line(GOOD, b"id dep_01", b"id  dep_01"),
        _replace_line(GOOD, b"kind contract", b"kind Contract"),
        _replace_line(GOOD, b"kind contract", b"kind receipt"),
        _replace_line(GOOD, b"size 15", b"size 015"),
        _replace_line(GOOD, b"size 15", b"size -1"),
        _replace_line(GOOD, b"size 15", b"size"),
        _replace_line(GOOD, b"2026-01-02T03:04:05.678Z", b"2026-01-02T03:04:05.678+00:00"),
        _replace_line(GOOD, b"2026-01-02T03:04:05.678Z", b"2026-01-02T03:04:05Z"),
        _replace_line(GOOD, b"2026-01-02T03:04:05.678Z", b"2026-02-30T03:04:05.678Z"),
        _replace_line(GOOD, b"salt 000102", b"salt 00010"),
        _replace_line(GOOD, b"0a0b0c", b"0A0B0C"),
        _replace_line(GOOD, b"depositor tenant-7\n", b""),  # missing line
        _replace_line(GOOD, b"depositor tenant-7\n", b"depositor tenant-7\nextra x\n"),  # extra key
        _replace_line(GOOD, b"kind contract\n", b"") + b"kind contract\n",  # order
        GOOD[:-1],  # no final newline
        GOOD + b"\n",
        GOOD.replace(b"\n", b"\r\n"),
        _replace_line(GOOD, b"tenant-7", "tenänt".encode()),
    ],
)
def test_strict_parse(bad: bytes) -> None:
    with pytest.raises(FormatError):
        LeafData.from_bytes(bad)


def test_sha256_hex_case_is_strict() -> None:
    upper = GOOD.replace(
        hashlib.sha256(CONTENT).hexdigest().encode(), hashlib.sha256(CONTENT).hexdigest().upper().encode()
    )
    assert upper != GOOD
    with pytest.raises(FormatError):
        LeafData.from_bytes(upper)


def test_constructor_validates() -> None:
    for bad in (
        {"id": ""},
        {"depositor": "x y"},
        {"kind": "receipt"},
        {"sha256": b"\x00" * 31},
        {"salt": b"\x00" * 32},
        {"size": -1},
        {"size": True},
        {"received": datetime(2026, 1, 2)},  # naive
        {"received": WHEN + timedelta(microseconds=1)},  # sub-millisecond
        {"received": WHEN.astimezone(timezone(timedelta(hours=8)))},  # not UTC
    ):
        with pytest.raises(FormatError):
            _leaf(**bad)


def test_truncate_to_ms_and_salt() -> None:
    beijing = datetime(2026, 1, 2, 11, 4, 5, 678999, tzinfo=timezone(timedelta(hours=8)))
    assert truncate_to_ms(beijing) == WHEN
    assert truncate_to_ms(beijing).tzinfo is UTC
    assert len(new_salt()) == 16 and new_salt() != new_salt()


_ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
_times = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999000)).map(
    lambda d: d.replace(microsecond=d.microsecond - d.microsecond % 1000, tzinfo=UTC)
)


@given(
    id=_ids,
    kind=st.sampled_from(KINDS),
    sha256=st.binary(min_size=32, max_size=32),
    sm3=st.binary(min_size=32, max_size=32),
    size=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
    received=_times,
    depositor=_ids,
    meta=st.binary(min_size=32, max_size=32),
    salt=st.binary(min_size=16, max_size=16),
)
def test_round_trip_property(
    id: str,
    kind: str,
    sha256: bytes,
    sm3: bytes,
    size: int | None,
    received: datetime,
    depositor: str,
    meta: bytes,
    salt: bytes,
) -> None:
    leaf = LeafData(id, kind, sha256, sm3, size, received, depositor, meta, salt)
    data = leaf.to_bytes()
    assert LeafData.from_bytes(data) == leaf
    assert LeafData.from_bytes(data).to_bytes() == data


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=8), st.booleans(), st.none()),
    )
)
def test_meta_hash_ignores_key_order(md: dict[str, object]) -> None:
    reordered = dict(reversed(list(md.items())))
    assert meta_hash(reordered) == meta_hash(md)


# ---- canonical JSON: the fast path must be byte-identical to RFC 8785 -------------------------------------

_keys = st.text(min_size=0, max_size=6)  # any code point, including astral ones and U+E000..U+FFFF
_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
_json_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4), max_leaves=20)


@given(st.dictionaries(_keys, _json_values, max_size=6))
def test_canonical_json_matches_rfc8785(value: dict[str, object]) -> None:
    import rfc8785

    from evidence.leaf import canonical_json

    try:
        want = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError):
        with pytest.raises((rfc8785.CanonicalizationError, ValueError)):
            canonical_json(value)
        return
    assert canonical_json(value) == want


def test_canonical_json_edges() -> None:
    import rfc8785

    from evidence.leaf import canonical_json

    # Sorting by UTF-16 code units differs from code points for astral vs U+E000..U+FFFF keys.
    for value in ({"\U0001f600": 1, "\ue000": 2, "a": 3}, {"x": "\x00\x1f\x7f\u2028\"\\"}, {"n": -(2**53) + 1},
                  {"f": 1e21, "g": -0.0, "h": 0.1}, {"nested": [{"b": 1, "a": [True, None]}]}, {"中文": "租赁合同"}):
        assert canonical_json(value) == rfc8785.dumps(value)
    with pytest.raises(rfc8785.CanonicalizationError):
        canonical_json({"big": 2**53})
    with pytest.raises(FormatError):
        meta_hash({"s": "\ud800"})  # a lone surrogate has no UTF-8 form
