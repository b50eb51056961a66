"""Certificates for the demo and for private consortia: a CA, a TSA, a PDF packet signer and a CRL.

Everything returns PEM bytes and touches no files: callers decide where key material lives (see
`notary_bridge.tsa_server` for the TSA's home layout). Choices, each for an outside verifier's sake:

* Certificates are valid from now - 1 day (clock skew between us and a verifier) for 10 years.
* Serials are random 159-bit integers (RFC 5280 §4.1.2.2: positive, at most 20 octets, unpredictable).
* Every certificate carries SubjectKeyIdentifier and AuthorityKeyIdentifier so path builders (OpenSSL,
  pyhanko-certvalidator, poppler) find the issuer without guessing by name.
* A CA has basicConstraints CA:TRUE, critical, and keyCertSign + cRLSign.
* A TSA certificate has extendedKeyUsage = timeStamping only, CRITICAL (RFC 3161 §2.3; OpenSSL's
  `ts -verify` rejects anything else), and digitalSignature + nonRepudiation.
* No CRL distribution point or AIA URL: a URL nobody serves makes validators fail or stall. Revocation
  data travels inside the evidence packet instead (`make_crl`, for PAdES B-LT).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec-p256", "rsa-2048", "ed25519"]
KEY_TYPES: tuple[KeyType, ...] = ("ec-p256", "rsa-2048", "ed25519")

VALIDITY = dt.timedelta(days=3650)
BACKDATE = dt.timedelta(days=1)
CRL_VALIDITY = dt.timedelta(days=3650)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def make_ca(common_name: str, key_type: KeyType = "ec-p256") -> tuple[bytes, bytes]:
    """A self-signed root CA: returns (PKCS#8 key PEM, certificate PEM)."""
    key = _new_key(key_type)
    name = _name(common_name)
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True, digital_signature=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    cert = builder.sign(key, _sign_hash(key))
    return _key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


def make_tsa_cert(
    ca_key_pem: bytes, ca_cert_pem: bytes, common_name: str, key_type: KeyType = "ec-p256"
) -> tuple[bytes, bytes]:
    """A TSA certificate issued by the CA: returns (key PEM, certificate PEM).

    EKU is timeStamping alone and critical, as RFC 3161 §2.3 demands and OpenSSL enforces.
    """
    return _issue(
        ca_key_pem,
        ca_cert_pem,
        common_name,
        key_type,
        eku=[ExtendedKeyUsageOID.TIME_STAMPING],
        eku_critical=True,
    )


def make_signer_cert(
    ca_key_pem: bytes, ca_cert_pem: bytes, common_name: str, key_type: KeyType = "ec-p256"
) -> tuple[bytes, bytes]:
    """A document-signing certificate for the PDF evidence packet: returns (key PEM, certificate PEM).

    Key usage digitalSignature + nonRepudiation (the signer vouches for the content); EKU carries
    emailProtection beside Microsoft/Adobe-recognised document signing so PDF readers accept it.
    """
    return _issue(
        ca_key_pem,
        ca_cert_pem,
        common_name,
        key_type,
        eku=[ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING],
        eku_critical=False,
    )


# id-kp-documentSigning, RFC 9336.
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")


def make_crl(ca_key_pem: bytes, ca_cert_pem: bytes, revoked: Iterable[int] = ()) -> bytes:
    """A signed CRL (PEM) listing the given serials, nextUpdate ten years out.

    An empty CRL is still useful: embedded in a packet it proves "not revoked as of thisUpdate" for
    PAdES B-LT without any fetch.
    """
    ca_key = _load_key(ca_key_pem)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + CRL_VALIDITY)
        .add_extension(x509.CRLNumber(_serial()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    crl = builder.sign(ca_key, _sign_hash(ca_key))
    return crl.public_bytes(serialization.Encoding.PEM)


def _issue(
    ca_key_pem: bytes,
    ca_cert_pem: bytes,
    common_name: str,
    key_type: KeyType,
    *,
    eku: list[x509.ObjectIdentifier],
    eku_critical: bool,
) -> tuple[bytes, bytes]:
    """An end-entity certificate for a signing key, issued by the CA."""
    ca_key = _load_key(ca_key_pem)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    key = _new_key(key_type)
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, content_commitment=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=eku_critical)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    cert = builder.sign(ca_key, _sign_hash(ca_key))
    return _key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


def _key_usage(
    *,
    digital_signature: bool = False,
    content_commitment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa-2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"key type {key_type!r}: want one of {', '.join(KEY_TYPES)}")


def _load_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError(f"unsupported CA key type {type(key).__name__}")
    return key


def _sign_hash(key: PrivateKey) -> hashes.SHA256 | None:
    """Ed25519 signs the message itself (no separate hash); RSA and ECDSA use SHA-256."""
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _serial() -> int:
    return secrets.randbits(159) | 1 << 158


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
