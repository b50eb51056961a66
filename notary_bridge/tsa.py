"""RFC 3161 time-stamping: one `TimeStamper` interface, an in-process TSA, an HTTP client, a fallback chain.

    TimeStamper.timestamp(digest, hash_algorithm) -> DER TimeStampToken (a CMS ContentInfo, not the
    whole TimeStampResp), already verified.

* `TsaCore` + `answer_request` are the TSA itself, certomancer style: DER request in, DER response out,
  no HTTP (`notary_bridge.tsa_server` is the transport). `LocalTimeStamper` calls the core in-process.
* `HttpTimeStamper` talks to any RFC 3161 TSA over HTTP. rfc3161ng builds the request, always with the
  hash named and the digest passed (`digest=`, `hashname=`): given `data=` it hashes with SHA-1 whatever
  hashname says. Its verifier only knows RSA, so tokens are verified by `evidence.timestamp` instead.
* `FallbackTimeStamper` asks several TSAs in order.

Every token is verified before it is returned (chain to the configured CA, critical timeStamping EKU,
imprint, nonce): a TSA that answers with the wrong thing raises `TimestampError` and is logged, so a bad
token never reaches a checkpoint or a packet.

pyHanko's `DummyTimeStamper` was the model for the core, but it signs with RSA only, identifies the
signer by SHA-1 ESSCertID, stamps local time and ignores certReq; the core keeps its shape (TSTInfo ->
signed attributes -> SignedData) and fixes those, reusing pyHanko's attribute helpers.
"""

from __future__ import annotations

import abc
import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence

import requests
import rfc3161ng
from asn1crypto import algos, cms, core, pem, tsp, x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from pyhanko.sign.general import as_signing_certificate_v2, simple_cms_attribute

from evidence.errors import EvidenceError
from evidence.timestamp import HASH_ALGORITHMS, normalize_hash_name, verify_token
from notary_bridge.errors import TimestampError

__all__ = [
    "DEFAULT_POLICY_OID",
    "FallbackTimeStamper",
    "HttpTimeStamper",
    "LocalTimeStamper",
    "TimeStampResp",
    "TimeStamper",
    "TimestampRequestError",
    "TsaCore",
    "answer_request",
]

log = logging.getLogger(__name__)

# A policy OID for the demo / private-consortium TSA, under the "example" arc of RFC 7229 (1.3.6.1.4.1.
# 32473 is IANA's documentation PEN). A real deployment names its own policy.
DEFAULT_POLICY_OID = "1.3.6.1.4.1.32473.3161.1"

QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"

# Hashes rfc3161ng can name in a request (it has no SHA-3 OIDs).
_HTTP_HASHES = ("sha256", "sha384", "sha512")

Clock = Callable[[], dt.datetime]

_CRYPTO_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


class TimeStampResp(core.Sequence):
    """RFC 3161 TimeStampResp with the token OPTIONAL, as the RFC has it.

    asn1crypto's `tsp.TimeStampResp` marks `timeStampToken` mandatory, so it can neither build nor
    parse a `rejection` (which carries no token); this definition is used for both.
    """

    _fields = [  # noqa: RUF012 (asn1crypto's declarative schema)
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


class TimestampRequestError(TimestampError):
    """The bytes sent to our TSA are not a TimeStampReq at all (the HTTP transport answers 400)."""


class TimeStamper(abc.ABC):
    """Something that turns a digest into a verified RFC 3161 token."""

    label: str = "tsa"

    @abc.abstractmethod
    def timestamp(self, digest: bytes, hash_algorithm: str) -> bytes:
        """A DER TimeStampToken whose imprint is (`hash_algorithm`, `digest`), verified.

        Raises TimestampError when no verified token could be had.
        """


class TsaCore:
    """The TSA: answers TimeStampReq values with signed TimeStampResp values. No I/O.

    `chain_pems` are the certificates embedded after the TSA's own (its issuers, root last) when the
    request asks for certificates. `clock` is injectable so tests can freeze time.
    """

    def __init__(
        self,
        tsa_key_pem: bytes,
        tsa_cert_pem: bytes,
        chain_pems: Sequence[bytes] = (),
        policy_oid: str = DEFAULT_POLICY_OID,
        clock: Clock | None = None,
    ) -> None:
        key = serialization.load_pem_private_key(tsa_key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise TimestampError(f"TSA key type {type(key).__name__}: want RSA, ECDSA or Ed25519")
        self._key = key
        self.cert = _load_cert(tsa_cert_pem)
        self.chain = [c for blob in chain_pems for c in _load_certs(blob)]
        self.policy_oid = policy_oid
        self._clock: Clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def answer(self, req: tsp.TimeStampReq) -> TimeStampResp:
        """Grant or reject one parsed request (RFC 3161 §2.4.2 failure codes for what we refuse)."""
        if req["version"].native != "v1":
            return _rejection("bad_request", f"version {req['version'].native}: want v1")
        imprint = req["message_imprint"]
        alg = imprint["hash_algorithm"]["algorithm"].native
        if alg not in HASH_ALGORITHMS:
            return _rejection("bad_alg", f"hash algorithm {alg}: want one of {', '.join(HASH_ALGORITHMS)}")
        size = hashlib.new(alg).digest_size
        if len(imprint["hashed_message"].native) != size:
            return _rejection(
                "bad_data_format", f"{alg} digest of {len(imprint['hashed_message'].native)} bytes"
            )
        policy = req["req_policy"].native
        if policy is not None and req["req_policy"].dotted != self.policy_oid:
            return _rejection(
                "unaccepted_policy", f"policy {req['req_policy'].dotted}: want {self.policy_oid}"
            )
        if req["extensions"].native:
            return _rejection("unaccepted_extensions", "no request extensions are supported")
        token = self._sign(req, self._clock().astimezone(dt.UTC))
        return TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token})

    def _sign(self, req: tsp.TimeStampReq, now: dt.datetime) -> cms.ContentInfo:
        tst_info: dict[str, object] = {
            "version": "v1",
            "policy": self.policy_oid,
            "message_imprint": req["message_imprint"],
            "serial_number": secrets.randbits(127) | 1,
            "gen_time": now,
            "tsa": x509.GeneralName(name="directory_name", value=self.cert.subject),
        }
        if req["nonce"].native is not None:
            tst_info["nonce"] = req["nonce"]
        tst_info_der = tsp.TSTInfo(tst_info).dump()

        md, sig_alg = self._algorithms(req["message_imprint"]["hash_algorithm"]["algorithm"].native)
        signed_attrs = cms.CMSAttributes(
            [
                simple_cms_attribute("content_type", "tst_info"),
                simple_cms_attribute("signing_time", cms.Time({"utc_time": core.UTCTime(now)})),
                simple_cms_attribute("signing_certificate_v2", as_signing_certificate_v2(self.cert)),
                simple_cms_attribute("message_digest", hashlib.new(md, tst_info_der).digest()),
            ]
        )
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": {
                    "issuer_and_serial_number": {
                        "issuer": self.cert.issuer,
                        "serial_number": self.cert.serial_number,
                    }
                },
                "digest_algorithm": {"algorithm": md},
                "signed_attrs": signed_attrs,
                "signature_algorithm": {"algorithm": sig_alg},
                "signature": self._signature(signed_attrs.dump(), md),
            }
        )
        signed_data = {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": md})],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": cms.ParsableOctetString(tst_info_der),
            },
            "signer_infos": [signer_info],
        }
        if req["cert_req"].native:
            # RFC 3161 §2.4.1: certificates only when asked for, the signer's first.
            signed_data["certificates"] = [self.cert, *self.chain]
        return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})

    def _algorithms(self, imprint_alg: str) -> tuple[str, str]:
        """(digest algorithm, signature algorithm) for the SignerInfo.

        Ed25519 requires SHA-512 for signed attributes (RFC 8419 §3); RSA/ECDSA follow the imprint's SHA-2
        (RFC 5816), falling back to SHA-256 for SHA-3 imprints that OpenSSL 3.0 CMS cannot pair with them.
        """
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return "sha512", "ed25519"
        md = imprint_alg if imprint_alg in ("sha256", "sha384", "sha512") else "sha256"
        return md, f"{md}_{'rsa' if isinstance(self._key, rsa.RSAPrivateKey) else 'ecdsa'}"

    def _signature(self, data: bytes, md: str) -> bytes:
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(data)
        chosen = _CRYPTO_HASHES[md]
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), chosen)
        return self._key.sign(data, ec.ECDSA(chosen))


def answer_request(request_der: bytes, core_: TsaCore) -> bytes:
    """DER TimeStampReq in, DER TimeStampResp out: the whole TSA without transport.

    A request that parses but that we will not serve gets a `rejection` response (RFC 3161 §2.4.2);
    bytes that are not a TimeStampReq raise TimestampRequestError (HTTP 400), since there is no request
    to answer.
    """
    try:
        req = tsp.TimeStampReq.load(bytes(request_der), strict=True)
        _ = req.native  # parse every field now, so malformed DER fails here and not halfway through signing
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise TimestampRequestError(f"not a DER TimeStampReq ({len(request_der)} bytes)") from e
    resp = core_.answer(req)
    status = resp["status"]["status"].native
    if status != "granted":
        log.info("TSA rejected a request: %s", resp["status"]["status_string"].native)
    return resp.dump()


class LocalTimeStamper(TimeStamper):
    """The in-process TSA behind the `TimeStamper` interface (demo, tests, single-node deployments).

    Its tokens go through the same request/response DER and the same verification as remote ones, with
    `chain_pems` (the TSA's issuers, root last) as the trust anchors.
    """

    def __init__(
        self,
        tsa_key_pem: bytes,
        tsa_cert_pem: bytes,
        chain_pems: Sequence[bytes],
        policy_oid: str = DEFAULT_POLICY_OID,
        clock: Clock | None = None,
    ) -> None:
        if not chain_pems:
            raise TimestampError(
                "LocalTimeStamper needs the CA certificate(s) that issued the TSA certificate"
            )
        self.core = TsaCore(tsa_key_pem, tsa_cert_pem, chain_pems, policy_oid, clock)
        self.ca_pems = list(chain_pems)
        self.label = f"local:{self.core.cert.subject.human_friendly}"

    def timestamp(self, digest: bytes, hash_algorithm: str) -> bytes:
        """Ask the in-process core and verify its answer like any other TSA's."""
        alg = _hash_name(hash_algorithm)
        nonce = secrets.randbits(64)
        req = tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {"hash_algorithm": {"algorithm": alg}, "hashed_message": digest},
                "nonce": nonce,
                "cert_req": True,
            }
        )
        resp_der = answer_request(req.dump(), self.core)
        return _token_from_response(
            self.label, resp_der, digest, alg, nonce, self.ca_pems, self.core.policy_oid
        )


class HttpTimeStamper(TimeStamper):
    """An RFC 3161 TSA reached over HTTP(S); tokens verified against `ca_pems`.

    `ca_pems`: one PEM (several blocks allowed) or a list of them; every certificate in it is a trust
    anchor. `policy_oid`, when given, is requested and required in the token.
    """

    def __init__(
        self,
        url: str,
        ca_pems: bytes | Sequence[bytes],
        timeout: float = 10.0,
        *,
        policy_oid: str | None = None,
    ) -> None:
        self.url = url
        self.ca_pems = [ca_pems] if isinstance(ca_pems, bytes) else list(ca_pems)
        if not self.ca_pems:
            raise TimestampError(f"TSA {url}: no CA certificate to verify its tokens against")
        self.timeout = timeout
        self.policy_oid = policy_oid
        self.label = url

    def timestamp(self, digest: bytes, hash_algorithm: str) -> bytes:
        """POST a TimeStampReq (random nonce, certReq) and verify the token in the reply."""
        alg = _hash_name(hash_algorithm)
        if alg not in _HTTP_HASHES:
            raise TimestampError(f"TSA {self.url}: hash {alg}: want one of {', '.join(_HTTP_HASHES)}")
        if len(digest) != hashlib.new(alg).digest_size:
            raise TimestampError(
                f"{alg} digest: got {len(digest)} bytes, want {hashlib.new(alg).digest_size}"
            )
        nonce = secrets.randbits(64)
        # digest= with hashname= : rfc3161ng would SHA-1 `data=` regardless of hashname.
        request = rfc3161ng.make_timestamp_request(
            digest=digest,
            hashname=alg,
            nonce=nonce,
            include_tsa_certificate=True,
            tsa_policy_id=self.policy_oid,
        )
        body = rfc3161ng.encode_timestamp_request(request)
        try:
            with requests.Session() as session:
                reply = session.post(
                    self.url, data=body, headers={"Content-Type": QUERY_TYPE}, timeout=self.timeout
                )
                reply.raise_for_status()
                content = reply.content
        except requests.RequestException as e:
            log.warning("TSA %s unreachable or refused: %s", self.url, e)
            raise TimestampError(f"TSA {self.url}: request failed") from e
        return _token_from_response(self.label, content, digest, alg, nonce, self.ca_pems, self.policy_oid)


class FallbackTimeStamper(TimeStamper):
    """Several TSAs tried in order; the first verified token wins. Fails only if all fail."""

    def __init__(self, stampers: Sequence[TimeStamper]) -> None:
        if not stampers:
            raise TimestampError("FallbackTimeStamper needs at least one TSA")
        self.stampers = list(stampers)
        self.label = "fallback(" + ", ".join(s.label for s in self.stampers) + ")"

    def timestamp(self, digest: bytes, hash_algorithm: str) -> bytes:
        """Try each TSA in turn; a failure is logged and the next one asked."""
        failures: list[str] = []
        for stamper in self.stampers:
            try:
                return stamper.timestamp(digest, hash_algorithm)
            except TimestampError as e:
                log.warning("TSA %s failed, trying the next: %s", stamper.label, e.diagnostics())
                failures.append(f"{stamper.label}: {e.diagnostics()}")
        raise TimestampError(f"all {len(self.stampers)} TSAs failed: " + "; ".join(failures))


def _token_from_response(
    label: str,
    resp_der: bytes,
    digest: bytes,
    alg: str,
    nonce: int,
    ca_pems: Sequence[bytes],
    policy_oid: str | None,
) -> bytes:
    """Extract the token from a DER TimeStampResp, check status and verify it; TimestampError if not."""
    try:
        resp = TimeStampResp.load(resp_der, strict=True)
        status = resp["status"]["status"].native
        status_text = resp["status"]["status_string"].native
        fail_info = resp["status"]["fail_info"].native
    except (ValueError, TypeError, KeyError) as e:
        log.warning("TSA %s answered something that is not a TimeStampResp", label)
        raise TimestampError(f"TSA {label}: reply is not a DER TimeStampResp") from e
    if status not in ("granted", "granted_with_mods"):
        log.warning("TSA %s refused: status %s %s %s", label, status, status_text, fail_info)
        raise TimestampError(
            f"TSA {label}: status {status} ({'; '.join(status_text or [])}) {fail_info or ''}"
        )
    token = resp["time_stamp_token"]
    # An absent OPTIONAL field loads as Void. Not `token.native is None`: converting the whole token to
    # native values and then dumping it re-encodes every certificate (~0.13 s per token).
    if isinstance(token, core.Void):
        raise TimestampError(f"TSA {label}: status {status} but no token")
    token_der = token.dump()
    try:
        info = verify_token(token_der, digest, alg, ca_pems, nonce=nonce)
    except EvidenceError as e:
        log.warning("TSA %s returned a token that does not verify: %s", label, e.diagnostics())
        raise TimestampError(f"TSA {label}: token rejected: {e.diagnostics()}") from e
    if policy_oid is not None and info.policy_oid != policy_oid:
        log.warning("TSA %s used policy %s, want %s", label, info.policy_oid, policy_oid)
        raise TimestampError(f"TSA {label}: policy: got {info.policy_oid}, want {policy_oid}")
    return token_der


def _hash_name(name: str) -> str:
    try:
        return normalize_hash_name(name)
    except EvidenceError as e:
        raise TimestampError(e.diagnostics()) from e


def _rejection(fail_info: str, text: str) -> TimeStampResp:
    return TimeStampResp(
        {"status": {"status": "rejection", "status_string": [text], "fail_info": {fail_info}}}
    )


def _load_certs(blob: bytes) -> list[x509.Certificate]:
    try:
        if pem.detect(blob):
            return [x509.Certificate.load(der) for _, _, der in pem.unarmor(blob, multiple=True)]
        return [x509.Certificate.load(blob)]
    except (ValueError, TypeError) as e:
        raise TimestampError("certificate is neither PEM nor DER") from e


def _load_cert(blob: bytes) -> x509.Certificate:
    certs = _load_certs(blob)
    if len(certs) != 1:
        raise TimestampError(f"TSA certificate: got {len(certs)} certificates, want 1")
    return certs[0]
