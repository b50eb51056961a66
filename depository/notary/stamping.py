"""Timestamping checkpoints with RFC 3161 tokens over SHA-256 of their body (every checkpoint gets one).

TSA trust anchors: `$DEPOSITORY_HOME/tsa/tsa-ca.pem` (one or several PEM roots), the same file the built-in
TSA writes (`notary_bridge.tsa_server`), because Config has no separate setting for it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from depository.config import Config
from depository.errors import ConfigError
from depository.log import PublishedCheckpoint
from depository.notary.backoff import Backoff
from depository.notary.store import NotaryStore
from evidence.errors import EvidenceError
from evidence.timestamp import parse_token
from notary_bridge.errors import TimestampError
from notary_bridge.tsa import FallbackTimeStamper, HttpTimeStamper, TimeStamper

log = logging.getLogger(__name__)
TSA_TIMEOUT_S = 10.0


def tsa_ca_path(home: Path) -> Path:
    """Where a home keeps the TSA root(s) its tokens must chain to."""
    return Path(home) / "tsa" / "tsa-ca.pem"


def build_stamper(config: Config) -> tuple[TimeStamper | None, bytes | None]:
    """A FallbackTimeStamper over config.tsa_urls, trusting `$home/tsa/tsa-ca.pem`."""
    if not config.tsa_urls:
        return None, None
    ca_path = tsa_ca_path(config.home)
    try:
        ca_pem = ca_path.read_bytes()
    except OSError as e:
        raise ConfigError(f"tsa_urls is set but the TSA root {ca_path} cannot be read: {e.strerror}") from e
    stampers: list[TimeStamper] = [HttpTimeStamper(url, ca_pem, timeout=TSA_TIMEOUT_S) for url in config.tsa_urls]
    return FallbackTimeStamper(stampers), ca_pem


class Stamping:
    """Get, verify and store tokens; read them back with their certificate chain."""

    def __init__(self, store: NotaryStore, stamper: TimeStamper | None, tsa_ca_pem: bytes | None,
                 backoff: Backoff) -> None:
        self.store = store
        self.stamper = stamper
        self.tsa_ca_pem = tsa_ca_pem
        self.backoff = backoff

    def timestamp(self, cp: PublishedCheckpoint) -> bool:
        """Get, verify and store a token over SHA-256(checkpoint body); True if the checkpoint has one."""
        if self.stamper is None:
            return False
        if self.store.has_token(cp.id):
            self.store.set_flag(cp.id, timestamped=True)
            return True
        if not self.backoff.ready():
            return False
        digest = hashlib.sha256(cp.body.encode("utf-8")).digest()
        try:
            token = self.stamper.timestamp(digest, "sha256")  # verified by the stamper (chain, imprint, nonce)
            info = parse_token(token)
        except (TimestampError, EvidenceError) as e:
            self.backoff.failed(e.diagnostics())
            log.warning("timestamping checkpoint %d (size %d) failed: %s", cp.id, cp.size, e.diagnostics())
            return False
        self.backoff.succeeded()
        self.store.store_token(cp.id, token, info.gen_time, info.tsa_name or self.stamper.label)
        return True

    def token_for(self, cp: PublishedCheckpoint) -> tuple[bytes | None, str | None]:
        """(DER token, PEM chain: the TSA's certificate first, its root last) or (None, None)."""
        token = self.store.token(cp.id)
        if token is None:
            return None, None
        return token, self.chain_pem(token)

    def chain_pem(self, token: bytes) -> str | None:
        info = parse_token(token)
        roots = x509.load_pem_x509_certificates(self.tsa_ca_pem) if self.tsa_ca_pem else []
        if info.tsa_cert is None:
            return "".join(r.public_bytes(Encoding.PEM).decode() for r in roots) or None
        tsa_cert = x509.load_der_x509_certificate(info.tsa_cert)
        issuers = [r for r in roots if r.subject == tsa_cert.issuer] or roots
        chain = [tsa_cert, *[r for r in issuers if r != tsa_cert]]
        return "".join(c.public_bytes(Encoding.PEM).decode() for c in chain)
