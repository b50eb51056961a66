"""notary_bridge.tsa_server: HTTP status codes via werkzeug's test client; the home layout."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from asn1crypto import tsp
from werkzeug.test import Client

from evidence.timestamp import verify_token
from notary_bridge import pki
from notary_bridge.errors import TimestampError
from notary_bridge.tsa import TsaCore
from notary_bridge.tsa_server import create_app, init_tsa_material, load_core, tsa_material

DIGEST = hashlib.sha256(b"body\n").digest()
QUERY = tsp.TimeStampReq(
    {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": DIGEST},
        "nonce": 99,
        "cert_req": True,
    }
).dump()


@pytest.fixture(scope="module")
def ca_and_client() -> tuple[bytes, Client]:
    ca_key, ca_cert = pki.make_ca("Server Root")
    key, cert = pki.make_tsa_cert(ca_key, ca_cert, "Server TSA")
    return ca_cert, Client(create_app(TsaCore(key, cert, [ca_cert])))


@pytest.mark.parametrize("path", ["/", "/tsa"])
def test_post_query_gets_reply(ca_and_client: tuple[bytes, Client], path: str) -> None:
    ca, client = ca_and_client
    r = client.post(path, data=QUERY, content_type="application/timestamp-query")
    assert r.status_code == 200
    assert r.mimetype == "application/timestamp-reply"
    token = tsp.TimeStampResp.load(r.get_data())["time_stamp_token"].dump()
    assert verify_token(token, DIGEST, "sha256", [ca], nonce=99).nonce == 99


@pytest.mark.parametrize("body", [b"", b"garbage", QUERY[:10]])
def test_bad_body_is_400_problem(ca_and_client: tuple[bytes, Client], body: bytes) -> None:
    _, client = ca_and_client
    r = client.post("/", data=body, content_type="application/timestamp-query")
    assert r.status_code == 400
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["status"] == 400


def test_wrong_media_type_is_415(ca_and_client: tuple[bytes, Client]) -> None:
    _, client = ca_and_client
    r = client.post("/", data=QUERY, content_type="application/octet-stream")
    assert r.status_code == 415


def test_get_is_405_and_other_paths_404(ca_and_client: tuple[bytes, Client]) -> None:
    _, client = ca_and_client
    r = client.get("/")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    assert client.post("/other", data=QUERY, content_type="application/timestamp-query").status_code == 404


def test_oversized_body_is_413(ca_and_client: tuple[bytes, Client]) -> None:
    _, client = ca_and_client
    r = client.post("/", data=b"\x30" * 70000, content_type="application/timestamp-query")
    assert r.status_code == 413


def test_init_creates_layout_once(tmp_path: Path) -> None:
    first = init_tsa_material(tmp_path, "Demo")
    assert first == tsa_material(tmp_path)
    assert first.key_path == tmp_path / "tsa" / "tsa-key.pem"
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    contents = [p.read_bytes() for p in (first.key_path, first.cert_path, first.ca_path)]
    init_tsa_material(tmp_path, "Demo")
    assert [p.read_bytes() for p in (first.key_path, first.cert_path, first.ca_path)] == contents
    core = load_core(tmp_path)
    assert "Demo TSA" in core.cert.subject.human_friendly


def test_init_refuses_partial_material(tmp_path: Path) -> None:
    material = init_tsa_material(tmp_path, "Demo")
    material.cert_path.unlink()
    key = material.key_path.read_bytes()
    with pytest.raises(TimestampError, match="incomplete"):
        init_tsa_material(tmp_path, "Demo")
    assert material.key_path.read_bytes() == key


def test_load_core_without_material_says_so(tmp_path: Path) -> None:
    with pytest.raises(TimestampError, match="no TSA material"):
        load_core(tmp_path)
