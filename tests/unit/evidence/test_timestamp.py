"""evidence.timestamp: tokens from the project's TSA core parse, verify, and fail each check on its own."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from evidence.errors import FormatError, SignatureError, VerificationError
from evidence.timestamp import normalize_hash_name, parse_token, verify_token
from notary_bridge import pki
from notary_bridge.tsa import DEFAULT_POLICY_OID, LocalTimeStamper, TsaCore, answer_request

DIGEST = hashlib.sha256(b"checkpoint body\n").digest()
# Frozen clock: now (so the fresh test certificates are valid), with a fixed fraction of a second.
FROZEN = dt.datetime.now(dt.UTC).replace(microsecond=250000)


def _token(core: TsaCore, digest: bytes = DIGEST, *, nonce: int | None = 42, cert_req: bool = True) -> bytes:
    from asn1crypto import tsp

    req: dict[str, object] = {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
        "cert_req": cert_req,
    }
    if nonce is not None:
        req["nonce"] = nonce
    resp = tsp.TimeStampResp.load(answer_request(tsp.TimeStampReq(req).dump(), core))
    assert resp["status"]["status"].native == "granted"
    return resp["time_stamp_token"].dump()


@pytest.fixture(scope="module", params=pki.KEY_TYPES)
def tsa(request: pytest.FixtureRequest) -> tuple[TsaCore, bytes]:
    ca_key, ca_cert = pki.make_ca("Test TSA Root", request.param)
    key, cert = pki.make_tsa_cert(ca_key, ca_cert, "Test TSA", request.param)
    return TsaCore(key, cert, [ca_cert], clock=lambda: FROZEN), ca_cert


def test_round_trip_parses_what_was_stamped(tsa: tuple[TsaCore, bytes]) -> None:
    core, ca = tsa
    token = _token(core)
    info = verify_token(token, DIGEST, "SHA-256", [ca], nonce=42)
    assert info == parse_token(token)
    assert info.gen_time == FROZEN
    assert info.message_imprint == DIGEST
    assert info.hash_algorithm == "sha256"
    assert info.nonce == 42
    assert info.policy_oid == DEFAULT_POLICY_OID
    assert info.tsa_name is not None and "Test TSA" in info.tsa_name
    assert info.tsa_cert == core.cert.dump()
    embedded = [
        x509.load_der_x509_certificate(c).public_bytes(serialization.Encoding.PEM) for c in info.certs
    ]
    assert ca in embedded


def test_local_timestamper_returns_verified_token(tsa: tuple[TsaCore, bytes]) -> None:
    core, ca = tsa
    key = core._key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    stamper = LocalTimeStamper(key, _pem(core.cert.dump()), [ca])
    token = stamper.timestamp(DIGEST, "sha256")
    assert verify_token(token, DIGEST, "sha256", [ca]).message_imprint == DIGEST


def test_altered_imprint_fails(tsa: tuple[TsaCore, bytes]) -> None:
    core, ca = tsa
    other = hashlib.sha256(b"another body\n").digest()
    with pytest.raises(VerificationError, match=f"message imprint: got {DIGEST.hex()}, want {other.hex()}"):
        verify_token(_token(core), other, "sha256", [ca])


def test_other_hash_algorithm_fails(tsa: tuple[TsaCore, bytes]) -> None:
    core, ca = tsa
    with pytest.raises(VerificationError, match="algorithm: got sha256, want sha512"):
        verify_token(_token(core), hashlib.sha512(b"x").digest(), "sha512", [ca])


def test_wrong_ca_fails(tsa: tuple[TsaCore, bytes]) -> None:
    core, _ = tsa
    _, other_ca = pki.make_ca("Some Other Root")
    with pytest.raises(VerificationError, match="chain"):
        verify_token(_token(core), DIGEST, "sha256", [other_ca])


def test_wrong_nonce_fails(tsa: tuple[TsaCore, bytes]) -> None:
    core, ca = tsa
    with pytest.raises(VerificationError, match="nonce: got 42, want 43"):
        verify_token(_token(core), DIGEST, "sha256", [ca], nonce=43)


def test_missing_nonce_fails_when_one_was_sent(tsa: tuple[TsaCore, bytes]) -> None:
    core, ca = tsa
    with pytest.raises(VerificationError, match="nonce: got None, want 7"):
        verify_token(_token(core, nonce=None), DIGEST, "sha256", [ca], nonce=7)


def test_flipped_signature_byte_fails(tsa: tuple[TsaCore, bytes]) -> None:
    core, ca = tsa
    token = _token(core)
    signature = cms.ContentInfo.load(token)["content"]["signer_infos"][0]["signature"].native
    assert token.count(signature) == 1
    broken = signature[:-1] + bytes([signature[-1] ^ 0x01])
    with pytest.raises(SignatureError, match="token signature"):
        verify_token(token.replace(signature, broken), DIGEST, "sha256", [ca])


def test_tampered_tst_info_fails_message_digest(tsa: tuple[TsaCore, bytes]) -> None:
    core, ca = tsa
    token = _token(core)
    # Move genTime by a second inside the signed TSTInfo: the message-digest attribute no longer matches.
    stamp = FROZEN.strftime("%Y%m%d%H%M%S.25Z").encode()
    later = (FROZEN + dt.timedelta(seconds=1)).strftime("%Y%m%d%H%M%S.25Z").encode()
    assert token.count(stamp) == 1
    with pytest.raises(SignatureError, match="message-digest attribute"):
        verify_token(token.replace(stamp, later), DIGEST, "sha256", [ca])


def test_token_without_certificates_fails(tsa: tuple[TsaCore, bytes]) -> None:
    core, ca = tsa
    token = _token(core, cert_req=False)
    assert parse_token(token).certs == ()
    with pytest.raises(VerificationError, match="signer certificate: not embedded"):
        verify_token(token, DIGEST, "sha256", [ca])


def _cert_with_eku(ca_key_pem: bytes, ca_cert_pem: bytes, *, critical: bool) -> tuple[bytes, bytes]:
    """A would-be TSA certificate whose EKU is timeStamping but NOT critical (RFC 3161 §2.3 forbids)."""
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sloppy TSA")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=400))
        .not_valid_after(now + dt.timedelta(days=400))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=critical)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def test_non_critical_eku_fails() -> None:
    ca_key, ca_cert = pki.make_ca("EKU Root")
    key, cert = _cert_with_eku(ca_key, ca_cert, critical=False)
    token = _token(TsaCore(key, cert, [ca_cert], clock=lambda: FROZEN))
    with pytest.raises(VerificationError, match="extendedKeyUsage: got non-critical, want critical"):
        verify_token(token, DIGEST, "sha256", [ca_cert])
    # The same construction with a critical EKU verifies: the failure above is the EKU alone.
    key, cert = _cert_with_eku(ca_key, ca_cert, critical=True)
    verify_token(_token(TsaCore(key, cert, [ca_cert], clock=lambda: FROZEN)), DIGEST, "sha256", [ca_cert])


def test_signer_cert_is_not_a_tsa_cert_fails() -> None:
    ca_key, ca_cert = pki.make_ca("Signer Root")
    key, cert = pki.make_signer_cert(ca_key, ca_cert, "Packet Signer")
    token = _token(TsaCore(key, cert, [ca_cert]))
    with pytest.raises(VerificationError, match=r"extendedKeyUsage: got .*want timeStamping only"):
        verify_token(token, DIGEST, "sha256", [ca_cert])


def test_gen_time_outside_certificate_validity_fails() -> None:
    ca_key, ca_cert = pki.make_ca("Time Root")
    key, cert = pki.make_tsa_cert(ca_key, ca_cert, "Time TSA")
    long_ago = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    token = _token(TsaCore(key, cert, [ca_cert], clock=lambda: long_ago))
    with pytest.raises(VerificationError, match="chain"):
        verify_token(token, DIGEST, "sha256", [ca_cert])


GARBAGE = [b"", b"\x30\x03\x02\x01\x01", b"not der at all", b"\x30\x80" + b"\x00" * 10]


@pytest.mark.parametrize("blob", GARBAGE)
def test_garbage_is_a_format_error(blob: bytes) -> None:
    with pytest.raises(FormatError):
        parse_token(blob)


def test_trailing_bytes_are_a_format_error(tsa: tuple[TsaCore, bytes]) -> None:
    core, _ = tsa
    with pytest.raises(FormatError):
        parse_token(_token(core) + b"\x00")


def test_hash_names() -> None:
    assert normalize_hash_name("SHA-256") == "sha256"
    assert normalize_hash_name("sha3-256") == "sha3_256"
    with pytest.raises(FormatError, match="want one of"):
        normalize_hash_name("sha1")


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
