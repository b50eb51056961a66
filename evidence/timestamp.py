"""RFC 3161 timestamp tokens: parse and verify, offline.

A token is a DER `TimeStampToken` (RFC 3161 §2.4.2): a CMS `ContentInfo` whose SignedData encapsulates a
`TSTInfo`. `parse_token` reads one without judging it; `verify_token` makes every check an outside
verifier (OpenSSL's `ts -verify`, a court expert) would make, so that a token we accept is one they accept:

1. message imprint: the hash algorithm and digest are the ones the caller expects (got/want);
2. nonce: equal to the one sent, when the caller sent one (replay of an old answer);
3. signer: exactly one SignerInfo, whose certificate is inside the token (RFC 3161 certReq);
4. signed attributes: content-type is id-ct-TSTInfo, message-digest is the digest of the TSTInfo;
5. ESSCertID / ESSCertIDv2 (RFC 2634 / RFC 5035): binds the signature to that certificate;
6. the signature over the signed attributes (RSA PKCS#1 v1.5 / PSS, ECDSA, Ed25519);
7. the certificate's extendedKeyUsage is exactly id-kp-timeStamping and critical (RFC 3161 §2.3);
8. the certificate chains to one of the caller's CA certificates at genTime (pyhanko-certvalidator,
   no fetching: revocation is not checked here; packets carry revocation data separately).

Nothing here touches the network or the disk. Failures raise `FormatError` (not a token) or
`VerificationError` / `SignatureError` whose message names the failed check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from asn1crypto import cms, pem, tsp, x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathError, ValidationError
from pyhanko_certvalidator.sig_validate import DefaultSignatureValidator, SignatureValidationContext

from evidence.errors import FormatError, SignatureError, VerificationError
from evidence.loops import run_coroutine

__all__ = ["HASH_ALGORITHMS", "TokenInfo", "normalize_hash_name", "parse_token", "verify_token"]

# Imprint algorithms we accept (asn1crypto names, which are also hashlib names). SHA-1 is refused: a
# token over a SHA-1 imprint proves little today.
HASH_ALGORITHMS = ("sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512")

T = TypeVar("T")


@dataclass(frozen=True)
class TokenInfo:
    """What a token says. Parsing fills it in; only `verify_token` says it is true.

    `tsa_cert` is the DER of the certificate named by the SignerInfo (None if the token does not carry
    it); `certs` is every certificate embedded in the token, DER, in token order.
    """

    gen_time: dt.datetime
    serial: int
    policy_oid: str
    hash_algorithm: str
    message_imprint: bytes
    nonce: int | None
    tsa_name: str | None
    tsa_cert: bytes | None = field(repr=False)
    certs: tuple[bytes, ...] = field(repr=False)


@dataclass(frozen=True)
class _Parsed:
    info: TokenInfo
    tst_info_der: bytes
    signer_info: cms.SignerInfo
    signer_cert: x509.Certificate | None
    certs: tuple[x509.Certificate, ...]


def normalize_hash_name(name: str) -> str:
    """`"SHA-256"`, `"sha256"` → `"sha256"`; raises FormatError for names outside HASH_ALGORITHMS."""
    norm = name.strip().lower().replace("-", "")
    norm = {"sha3256": "sha3_256", "sha3384": "sha3_384", "sha3512": "sha3_512"}.get(norm, norm)
    if norm not in HASH_ALGORITHMS:
        raise FormatError(f"hash algorithm {name!r}: want one of {', '.join(HASH_ALGORITHMS)}")
    return norm


def parse_token(der: bytes) -> TokenInfo:
    """Read a DER TimeStampToken; raises FormatError if it is not one. Checks nothing else."""
    return _parse(der).info


def verify_token(
    token_der: bytes,
    digest: bytes,
    hash_algorithm: str,
    ca_pems: Sequence[bytes],
    *,
    nonce: int | None = None,
    intermediate_pems: Sequence[bytes] = (),
) -> TokenInfo:
    """Verify a token over `digest` (made with `hash_algorithm`) and return what it says.

    Every certificate in `ca_pems` (each item may hold several PEM blocks, or be DER) is a trust anchor,
    as with OpenSSL's `-CAfile`; `intermediate_pems` are untrusted helpers for path building, beside
    the certificates inside the token. `nonce`, when given, must equal the token's nonce.
    Raises FormatError, VerificationError or SignatureError naming the failed check.
    """
    want_alg = normalize_hash_name(hash_algorithm)
    parsed = _parse(token_der)
    info = parsed.info

    if info.hash_algorithm != want_alg:
        raise VerificationError(f"message imprint algorithm: got {info.hash_algorithm}, want {want_alg}")
    if info.message_imprint != digest:
        raise VerificationError(f"message imprint: got {info.message_imprint.hex()}, want {digest.hex()}")
    if nonce is not None and info.nonce != nonce:
        raise VerificationError(f"nonce: got {info.nonce}, want {nonce}")

    cert = parsed.signer_cert
    if cert is None:
        raise VerificationError("signer certificate: not embedded in the token (request certReq)")
    _check_signed_attributes(parsed, cert)
    _check_signature(parsed.signer_info, cert)
    _check_eku(cert)
    _check_chain(cert, parsed.certs, ca_pems, intermediate_pems, info.gen_time)
    return info


def _parse(der: bytes) -> _Parsed:
    try:
        content_info = cms.ContentInfo.load(bytes(der), strict=True)
        if content_info["content_type"].native != "signed_data":
            raise FormatError(
                f"token content type: got {content_info['content_type'].native}, want signed_data"
            )
        signed_data: cms.SignedData = content_info["content"]
        encap = signed_data["encap_content_info"]
        if encap["content_type"].native != "tst_info":
            raise FormatError(f"encapsulated content type: got {encap['content_type'].native}, want tst_info")
        tst_info_der = encap["content"].contents
        tst_info = tsp.TSTInfo.load(tst_info_der, strict=True)
        imprint = tst_info["message_imprint"]
        signer_infos = signed_data["signer_infos"]
        if len(signer_infos) != 1:
            raise FormatError(f"signer infos: got {len(signer_infos)}, want exactly 1")
        signer_info: cms.SignerInfo = signer_infos[0]
        certs = tuple(c.chosen for c in signed_data["certificates"] if isinstance(c.chosen, x509.Certificate))
        signer_cert = _find_signer(signer_info, certs)
        tsa = tst_info["tsa"]
        info = TokenInfo(
            gen_time=tst_info["gen_time"].native.astimezone(dt.UTC),
            serial=int(tst_info["serial_number"].native),
            policy_oid=tst_info["policy"].dotted,
            hash_algorithm=str(imprint["hash_algorithm"]["algorithm"].native),
            message_imprint=bytes(imprint["hashed_message"].native),
            nonce=tst_info["nonce"].native,
            tsa_name=_general_name_text(tsa) if tsa.native is not None else None,
            tsa_cert=signer_cert.dump() if signer_cert is not None else None,
            certs=tuple(c.dump() for c in certs),
        )
        # Touch the lazily parsed parts a verifier will read, so malformed DER fails here, as FormatError.
        _ = signer_info["signed_attrs"].native, signer_info["signature"].native
    except FormatError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
        raise FormatError(f"not an RFC 3161 TimeStampToken: {e}") from e
    return _Parsed(info, tst_info_der, signer_info, signer_cert, certs)


def _find_signer(signer_info: cms.SignerInfo, certs: Sequence[x509.Certificate]) -> x509.Certificate | None:
    sid = signer_info["sid"]
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            if (
                cert.issuer == sid.chosen["issuer"]
                and cert.serial_number == sid.chosen["serial_number"].native
            ):
                return cert
        elif cert.key_identifier == sid.chosen.native:
            return cert
    return None


def _general_name_text(name: x509.GeneralName) -> str:
    if name.name == "directory_name":
        return str(name.chosen.human_friendly)
    return f"{name.name}:{name.native}"


def _unique_attr(attrs: cms.CMSAttributes, name: str) -> Any | None:
    found = [a for a in attrs if a["type"].native == name]
    if not found:
        return None
    if len(found) > 1 or len(found[0]["values"]) != 1:
        raise VerificationError(f"signed attribute {name}: got several, want exactly one")
    return found[0]["values"][0]


def _check_signed_attributes(parsed: _Parsed, cert: x509.Certificate) -> None:
    attrs = parsed.signer_info["signed_attrs"]
    if attrs.native is None:
        raise VerificationError("signed attributes: absent, want content-type, message-digest, ESSCertID")
    content_type = _unique_attr(attrs, "content_type")
    if content_type is None or content_type.native != "tst_info":
        got = None if content_type is None else content_type.native
        raise VerificationError(f"content-type attribute: got {got}, want tst_info")

    md_name = parsed.signer_info["digest_algorithm"]["algorithm"].native
    try:
        actual = hashlib.new(md_name, parsed.tst_info_der).digest()
    except (ValueError, TypeError) as e:
        raise VerificationError(f"signer digest algorithm {md_name!r}: unsupported") from e
    message_digest = _unique_attr(attrs, "message_digest")
    if message_digest is None or message_digest.native != actual:
        got = None if message_digest is None else message_digest.native.hex()
        raise SignatureError(f"message-digest attribute: got {got}, want {actual.hex()}")

    v2 = _unique_attr(attrs, "signing_certificate_v2")
    v1 = _unique_attr(attrs, "signing_certificate")
    if v2 is not None:
        ess = v2["certs"][0]
        alg = ess["hash_algorithm"]["algorithm"].native
        label = "ESSCertIDv2"
    elif v1 is not None:
        ess = v1["certs"][0]
        alg = "sha1"
        label = "ESSCertID"
    else:
        raise VerificationError(
            "ESSCertID: no signing-certificate(-v2) attribute binds the signer certificate"
        )
    want_hash = hashlib.new(alg, cert.dump()).digest()
    got_hash = ess["cert_hash"].native
    if got_hash != want_hash:
        raise VerificationError(f"{label} certificate hash: got {got_hash.hex()}, want {want_hash.hex()}")
    issuer_serial = ess["issuer_serial"]
    if issuer_serial.native is not None:
        names = [n.chosen for n in issuer_serial["issuer"] if n.name == "directory_name"]
        if issuer_serial["serial_number"].native != cert.serial_number or cert.issuer not in names:
            raise VerificationError(f"{label} issuer/serial: does not name the signer certificate")


def _check_signature(signer_info: cms.SignerInfo, cert: x509.Certificate) -> None:
    signed_bytes = signer_info["signed_attrs"].untag().dump()
    try:
        DefaultSignatureValidator().validate_signature(
            signer_info["signature"].native,
            signed_bytes,
            cert.public_key,
            signer_info["signature_algorithm"],
            context=SignatureValidationContext(
                contextual_md_algorithm=signer_info["digest_algorithm"]["algorithm"].native
            ),
        )
    except InvalidSignature as e:
        raise SignatureError(
            f"token signature: does not verify with the key of {cert.subject.human_friendly} ({e or 'bad'})"
        ) from e
    except (ValueError, TypeError, AssertionError) as e:
        raise SignatureError(f"token signature: algorithm or key unusable: {e}") from e


def _check_eku(cert: x509.Certificate) -> None:
    try:
        ext = cx509.load_der_x509_certificate(cert.dump()).extensions.get_extension_for_oid(
            cx509.OID_EXTENDED_KEY_USAGE
        )
    except cx509.ExtensionNotFound as e:
        raise VerificationError("TSA certificate extendedKeyUsage: absent, want critical timeStamping") from e
    usages = list(ext.value)  # type: ignore[call-overload]
    if usages != [ExtendedKeyUsageOID.TIME_STAMPING]:
        got = ", ".join(u.dotted_string for u in usages)
        raise VerificationError(f"TSA certificate extendedKeyUsage: got {got}, want timeStamping only")
    if not ext.critical:
        raise VerificationError("TSA certificate extendedKeyUsage: got non-critical, want critical")


def _load_certs(blobs: Sequence[bytes]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for blob in blobs:
        try:
            if pem.detect(blob):
                out.extend(x509.Certificate.load(der) for _, _, der in pem.unarmor(blob, multiple=True))
            else:
                out.append(x509.Certificate.load(blob))
        except (ValueError, TypeError) as e:
            raise FormatError(f"CA certificate: not PEM or DER: {e}") from e
    return out


def _check_chain(
    cert: x509.Certificate,
    token_certs: Sequence[x509.Certificate],
    ca_pems: Sequence[bytes],
    intermediate_pems: Sequence[bytes],
    gen_time: dt.datetime,
) -> None:
    roots = _load_certs(ca_pems)
    if not roots:
        raise VerificationError("TSA certificate chain: no CA certificate given")
    context = ValidationContext(
        trust_roots=roots,
        moment=gen_time,
        allow_fetching=False,
        revocation_mode="soft-fail",
    )
    others = [c for c in token_certs if c is not cert] + _load_certs(intermediate_pems)
    validator = CertificateValidator(cert, intermediate_certs=others, validation_context=context)
    try:
        run_coroutine(validator.async_validate_usage(set(), extended_key_usage={"time_stamping"}))
    except (PathError, ValidationError) as e:
        raise VerificationError(
            f"TSA certificate chain: {cert.subject.human_friendly} does not chain to a given CA "
            f"at {gen_time.isoformat()}: {e}"
        ) from e


