"""notary_bridge.tsa: the in-process TSA core, LocalTimeStamper, FallbackTimeStamper (no network)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

import pytest
from asn1crypto import cms, tsp

from evidence.timestamp import parse_token, verify_token
from notary_bridge import pki
from notary_bridge.errors import TimestampError
from notary_bridge.tsa import (
    DEFAULT_POLICY_OID,
    FallbackTimeStamper,
    LocalTimeStamper,
    TimeStamper,
    TimestampRequestError,
    TimeStampResp,
    TsaCore,
    answer_request,
)

DIGEST = hashlib.sha256(b"tlog body\n").digest()


@pytest.fixture(scope="module")
def material() -> tuple[bytes, bytes, bytes]:
    ca_key, ca_cert = pki.make_ca("Unit TSA Root")
    key, cert = pki.make_tsa_cert(ca_key, ca_cert, "Unit TSA")
    return key, cert, ca_cert


def _request(alg: str = "sha256", digest: bytes = DIGEST, **extra: object) -> bytes:
    fields: dict[str, object] = {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": alg}, "hashed_message": digest},
        "cert_req": True,
        **extra,
    }
    return tsp.TimeStampReq(fields).dump()


def _status(resp_der: bytes) -> tuple[str, set[str] | None]:
    status = TimeStampResp.load(resp_der)["status"]
    return status["status"].native, status["fail_info"].native


def test_local_timestamper_round_trip(material: tuple[bytes, bytes, bytes]) -> None:
    key, cert, ca = material
    stamper: TimeStamper = LocalTimeStamper(key, cert, [ca])
    before = dt.datetime.now(dt.UTC)
    token = stamper.timestamp(DIGEST, "sha256")
    info = verify_token(token, DIGEST, "sha256", [ca])
    assert before <= info.gen_time <= dt.datetime.now(dt.UTC)
    assert info.nonce is not None
    assert info.policy_oid == DEFAULT_POLICY_OID
    # A TimeStampToken (ContentInfo of SignedData), not a TimeStampResp.
    assert cms.ContentInfo.load(token)["content_type"].native == "signed_data"


def test_local_timestamper_sha512(material: tuple[bytes, bytes, bytes]) -> None:
    key, cert, ca = material
    digest = hashlib.sha512(b"x").digest()
    token = LocalTimeStamper(key, cert, [ca]).timestamp(digest, "sha512")
    assert verify_token(token, digest, "sha512", [ca]).hash_algorithm == "sha512"


def test_frozen_clock_sets_gen_time(material: tuple[bytes, bytes, bytes]) -> None:
    key, cert, ca = material
    frozen = dt.datetime.now(dt.UTC).replace(microsecond=123000)
    token = LocalTimeStamper(key, cert, [ca], clock=lambda: frozen).timestamp(DIGEST, "sha256")
    assert parse_token(token).gen_time == frozen


def test_local_timestamper_refuses_its_own_token_under_another_ca(
    material: tuple[bytes, bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    key, cert, _ = material
    _, other_ca = pki.make_ca("Not The Issuer")
    with caplog.at_level(logging.WARNING, logger="notary_bridge.tsa"):
        with pytest.raises(TimestampError, match="token rejected: TSA certificate chain"):
            LocalTimeStamper(key, cert, [other_ca]).timestamp(DIGEST, "sha256")
    assert "does not verify" in caplog.text
    assert "PRIVATE KEY" not in caplog.text


def test_wrong_digest_length_is_refused(material: tuple[bytes, bytes, bytes]) -> None:
    key, cert, ca = material
    with pytest.raises(TimestampError, match="status rejection"):
        LocalTimeStamper(key, cert, [ca]).timestamp(DIGEST[:20], "sha256")


def test_sha1_is_refused(material: tuple[bytes, bytes, bytes]) -> None:
    key, cert, ca = material
    with pytest.raises(TimestampError, match="want one of"):
        LocalTimeStamper(key, cert, [ca]).timestamp(hashlib.sha1(b"x").digest(), "sha1")


@pytest.mark.parametrize(
    ("request_der", "fail_info"),
    [
        (_request("sha1", hashlib.sha1(b"x").digest()), "bad_alg"),
        (_request("sha256", b"\x00" * 31), "bad_data_format"),
        (_request(req_policy="1.2.3.4"), "unaccepted_policy"),
        (
            _request(extensions=[{"extn_id": "1.2.3.4.5", "critical": False, "extn_value": b"\x05\x00"}]),
            "unaccepted_extensions",
        ),
    ],
)
def test_core_rejects_what_it_will_not_stamp(
    material: tuple[bytes, bytes, bytes], request_der: bytes, fail_info: str
) -> None:
    key, cert, ca = material
    assert _status(answer_request(request_der, TsaCore(key, cert, [ca]))) == ("rejection", {fail_info})


def test_core_grants_its_own_policy(material: tuple[bytes, bytes, bytes]) -> None:
    key, cert, ca = material
    resp = answer_request(_request(req_policy=DEFAULT_POLICY_OID), TsaCore(key, cert, [ca]))
    assert _status(resp) == ("granted", None)


def test_core_omits_certificates_unless_asked(material: tuple[bytes, bytes, bytes]) -> None:
    key, cert, ca = material
    resp = tsp.TimeStampResp.load(answer_request(_request(cert_req=False), TsaCore(key, cert, [ca])))
    assert parse_token(resp["time_stamp_token"].dump()).certs == ()


@pytest.mark.parametrize("body", [b"", b"hello", b"\x30\x00", _request()[:-3], _request() + b"\x00"])
def test_core_raises_on_bytes_that_are_not_a_request(
    material: tuple[bytes, bytes, bytes], body: bytes
) -> None:
    key, cert, ca = material
    with pytest.raises(TimestampRequestError, match="not a DER TimeStampReq"):
        answer_request(body, TsaCore(key, cert, [ca]))


def test_fallback_uses_the_first_that_verifies(
    material: tuple[bytes, bytes, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    key, cert, ca = material
    _, other_ca = pki.make_ca("Wrong Anchor")
    broken = LocalTimeStamper(key, cert, [other_ca])
    good = LocalTimeStamper(key, cert, [ca])
    with caplog.at_level(logging.WARNING, logger="notary_bridge.tsa"):
        token = FallbackTimeStamper([broken, good]).timestamp(DIGEST, "sha256")
    verify_token(token, DIGEST, "sha256", [ca])
    assert "trying the next" in caplog.text


def test_fallback_fails_when_all_fail(material: tuple[bytes, bytes, bytes]) -> None:
    key, cert, _ = material
    _, other_ca = pki.make_ca("Wrong Anchor")
    broken = LocalTimeStamper(key, cert, [other_ca])
    with pytest.raises(TimestampError, match="all 2 TSAs failed"):
        FallbackTimeStamper([broken, broken]).timestamp(DIGEST, "sha256")


def test_constructors_refuse_missing_trust(material: tuple[bytes, bytes, bytes]) -> None:
    key, cert, _ = material
    with pytest.raises(TimestampError):
        LocalTimeStamper(key, cert, [])
    with pytest.raises(TimestampError):
        FallbackTimeStamper([])
