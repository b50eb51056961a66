"""Sealing evidence packets: the packet signer's key material and the PAdES signature (pyHanko).

`evidence.packet` lays the packet out (pages and attachments); this module gathers what it needs from
the services (proof bundle, deposit facts, the stored original) and signs the result:

* PAdES baseline with the signer chain and its CRL written into the DSS *in the signed revision*
  (`SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE`), so validation needs no network and no later,
  unsigned revision is needed for validation data;
* with a TSA configured, a signature timestamp (B-T), the DSS (B-LT) and a document timestamp on the
  last revision (B-LTA), its own validation data added *before* it (`update_before_ts`), so the file's
  last revision is always covered by a signature or a document timestamp (SPEC.md "The packet PDF").
  Without a TSA the packet is PAdES B-B with long-term validation data: one revision, whole file signed.

Key material lives in `$home/packet/` (created by `init_packet_material`, idempotent):

    packet-ca.pem       the root that verifiers trust (trust/packet-ca.pem)
    signer-cert.pem     the signing certificate, issued by the root
    signer-key.pem      its private key (PKCS#8, 0600)
    packet-crl.pem      an (empty) CRL signed by the root, embedded as revocation data

The root's private key is not kept (as for the demo TSA): it exists only to issue the signer
certificate and the CRL, and keeping it would let anyone who reads the home mint a second signer.
"""

from __future__ import annotations

import asyncio
import io
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asn1crypto import cms, crl, pem, x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.signers.pdf_signer import (
    DSSContentSettings,
    PdfSignatureMetadata,
    PdfSigner,
    SigDSSPlacementPreference,
    TimestampDSSContentSettings,
)
from pyhanko.sign.timestamps.api import TimeStamper as PyHankoTimeStamper
from pyhanko_certvalidator import ValidationContext

from depository.deposits import Deposit
from depository.errors import Conflict, DepositoryError, NotCourtReady
from depository.proofs import build_bundle
from depository.wiring import Services
from evidence.capture_packet import CapturePages
from evidence.loops import outside_event_loop
from evidence.packet import Comparison, DepositFacts, PacketEntry, PacketInput, render_packet
from evidence.readiness import Readiness, packet_readiness
from notary_bridge import pki
from notary_bridge.errors import TimestampError
from notary_bridge.serving import write_atomic
from notary_bridge.tsa import FallbackTimeStamper, HttpTimeStamper, TimeStamper

log = logging.getLogger(__name__)

SIGNATURE_FIELD = "EvidencePacketSignature"
TIMESTAMP_FIELD = "EvidencePacketArchiveTimestamp"


class PacketError(DepositoryError):
    """The packet could not be signed (material missing or broken, TSA failure)."""

    status = 500
    type_slug = "packet-signing"
    title = "Packet signing failed"


@dataclass(frozen=True)
class PacketMaterial:
    """Where a home keeps the packet signer's key, certificates and CRL."""

    ca_path: Path
    cert_path: Path
    key_path: Path
    crl_path: Path

    def all_exist(self) -> bool:
        return all(p.exists() for p in (self.ca_path, self.cert_path, self.key_path, self.crl_path))

    def any_exist(self) -> bool:
        return any(p.exists() for p in (self.ca_path, self.cert_path, self.key_path, self.crl_path))

    def chain_pem(self) -> bytes:
        """Signer certificate then root: the signer-chain.pem attachment."""
        return self.cert_path.read_bytes() + self.ca_path.read_bytes()


def packet_material(home: Path) -> PacketMaterial:
    base = Path(home) / "packet"
    return PacketMaterial(base / "packet-ca.pem", base / "signer-cert.pem", base / "signer-key.pem",
                          base / "packet-crl.pem")


def init_packet_material(home: Path, name: str = "Evidence Depository") -> PacketMaterial:
    """Create the packet CA, signer certificate and CRL in `$home/packet/` if missing; idempotent.

    All four files or none: a partial set is refused (PacketError) rather than overwritten, since the
    old key may already have signed packets that verifiers check against the old root.
    """
    m = packet_material(home)
    if m.all_exist():
        return m
    if m.any_exist():
        raise PacketError(f"packet material in {m.ca_path.parent} is incomplete; refusing to overwrite it "
                          "(move the directory away to start over)")
    m.ca_path.parent.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = pki.make_ca(f"{name} Packet Root CA")
    key, cert = pki.make_signer_cert(ca_key, ca_cert, f"{name} Evidence Packet Signer")
    crl_pem = pki.make_crl(ca_key, ca_cert)
    write_atomic(m.crl_path, crl_pem, 0o644)
    write_atomic(m.ca_path, ca_cert, 0o644)
    write_atomic(m.cert_path, cert, 0o644)
    write_atomic(m.key_path, key, 0o600)
    log.info("created packet signing material in %s", m.ca_path.parent)
    return m




def _certs(blob: bytes) -> list[x509.Certificate]:
    if pem.detect(blob):
        return [x509.Certificate.load(der) for _, _, der in pem.unarmor(blob, multiple=True)]
    return [x509.Certificate.load(blob)]


def _crl(blob: bytes) -> crl.CertificateList:
    if pem.detect(blob):
        _, _, der = pem.unarmor(blob)
        return crl.CertificateList.load(der)
    return crl.CertificateList.load(blob)


class PyHankoStamper(PyHankoTimeStamper):
    """Our `TimeStamper` behind pyHanko's interface (pyHanko's own HTTP client is aiohttp-based).

    The token our stamper returns is already verified against the TSA's CA; the blocking call runs in a
    worker thread so pyHanko's event loop is not held up.
    """

    def __init__(self, stamper: TimeStamper) -> None:
        super().__init__(include_nonce=False)
        self.stamper = stamper

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        try:
            der = await asyncio.to_thread(self.stamper.timestamp, message_digest, md_algorithm)
        except TimestampError as e:
            raise PacketError(f"timestamp for the packet signature: {e.diagnostics()}") from e
        return cms.ContentInfo.load(der)


_ADAPTERS: weakref.WeakKeyDictionary[TimeStamper, PyHankoStamper] = weakref.WeakKeyDictionary()


def _adapter(stamper: TimeStamper) -> PyHankoStamper:
    """One adapter per stamper, kept while the stamper lives: pyHanko caches the size-estimation token
    it asks for first, so steady-state signing costs two tokens (signature and document timestamp)."""
    adapter = _ADAPTERS.get(stamper)
    if adapter is None:
        adapter = _ADAPTERS[stamper] = PyHankoStamper(stamper)
    return adapter


class _NoFetchNotice(logging.Filter):
    """Drop pyHanko's notice that fetching is off: packets embed their own CRL on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_NoFetchNotice())


def seal_packet(pdf: bytes, material: PacketMaterial, *, timestamper: TimeStamper | None = None,
                tsa_ca_pems: Sequence[bytes] = (), signer_name: str = "Evidence Depository") -> bytes:
    """Sign an unsigned packet: PAdES with LT data in the signed revision; B-LTA when a TSA is given."""
    return outside_event_loop(_seal_packet, pdf, material, timestamper=timestamper, tsa_ca_pems=tsa_ca_pems,
                              signer_name=signer_name)


def _seal_packet(pdf: bytes, material: PacketMaterial, *, timestamper: TimeStamper | None = None,
                 tsa_ca_pems: Sequence[bytes] = (), signer_name: str = "Evidence Depository") -> bytes:
    """The signing itself (pyHanko drives asyncio: see evidence.loops).

    `tsa_ca_pems` are the TSA's trust anchors (needed to build its validation data); both the packet
    root and these roots are used only to assemble validation data, never fetched from the network.
    """
    if not material.all_exist():
        raise PacketError(f"no packet signing material in {material.ca_path.parent}; run "
                          "init_packet_material (depository init) first")
    try:
        signer = signers.SimpleSigner.load(str(material.key_path), str(material.cert_path),
                                           ca_chain_files=(str(material.ca_path),))
    except (OSError, ValueError) as e:
        raise PacketError(f"packet signer key or certificate unreadable: {e}") from e
    if signer is None:
        raise PacketError("packet signer key or certificate unreadable")
    roots = _certs(material.ca_path.read_bytes()) + [c for b in tsa_ca_pems for c in _certs(b)]
    vc = ValidationContext(trust_roots=roots, crls=[_crl(material.crl_path.read_bytes())],
                           allow_fetching=False, revocation_mode="soft-fail")
    ts = _adapter(timestamper) if timestamper is not None else None
    meta = PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD, md_algorithm="sha256", subfilter=SigSeedSubFilter.PADES,
        reason="Evidence packet: proof of deposit, integrity and time", name=signer_name,
        location="electronic evidence depository", embed_validation_info=True, validation_context=vc,
        use_pades_lta=ts is not None, timestamp_field_name=TIMESTAMP_FIELD if ts is not None else None,
        dss_settings=DSSContentSettings(
            placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE, include_vri=False,
            next_ts_settings=TimestampDSSContentSettings(include_vri=False, update_before_ts=True)),
    )
    out = io.BytesIO()
    try:
        PdfSigner(meta, signer, timestamper=ts).sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)),
                                                         output=out)
    except PacketError:
        raise
    except Exception as e:  # pyHanko raises many types (SigningError, PdfError, validation errors)
        raise PacketError(f"signing the packet failed: {type(e).__name__}: {e}") from e
    return out.getvalue()


# --- from services ---------------------------------------------------------------------------------


def packet_timestamper(s: Services) -> tuple[TimeStamper | None, list[bytes]]:
    """The TSA for the document timestamp and its CA PEMs: the notary's stamper, else config.tsa_urls.

    Returns (None, []) when no TSA is configured: the packet is then signed without timestamps.
    """
    notary = s.notary
    for attr in ("timestamper", "stamper"):
        stamper = getattr(notary, attr, None) if notary is not None else None
        if isinstance(stamper, TimeStamper):
            return stamper, _stamper_cas(stamper, s)
    if not s.config.tsa_urls:
        return None, []
    ca_path = s.config.home / "tsa" / "tsa-ca.pem"
    if not ca_path.is_file():
        raise PacketError(f"TSA configured but {ca_path} is missing: cannot verify its tokens")
    ca = ca_path.read_bytes()
    stampers: list[TimeStamper] = [HttpTimeStamper(url, ca) for url in s.config.tsa_urls]
    return (stampers[0] if len(stampers) == 1 else FallbackTimeStamper(stampers)), [ca]


def _stamper_cas(stamper: TimeStamper, s: Services) -> list[bytes]:
    cas = getattr(stamper, "ca_pems", None)
    if cas:
        return list(cas)
    inner = getattr(stamper, "stampers", None)
    if inner:
        return [c for st in inner for c in _stamper_cas(st, s)]
    ca_path = s.config.home / "tsa" / "tsa-ca.pem"
    return [ca_path.read_bytes()] if ca_path.is_file() else []


def deposit_facts(s: Services, d: Deposit) -> DepositFacts:
    try:
        name = str(s.tenants.get(d.tenant_id).name)
    except DepositoryError:
        name = d.tenant_id
    return DepositFacts(
        deposit_id=d.id, depositor_id=d.tenant_id, depositor_name=name, kind=d.kind, filename=d.filename,
        size=d.size, content_type=d.content_type, sha256=d.sha256, sm3=d.sm3, received=d.received)


def stored_original(s: Services, d: Deposit) -> bytes | None:
    """The decrypted original when the tenant stores content and this deposit's content was stored."""
    if not d.content_stored:
        return None
    tenant: Any = s.tenants.get(d.tenant_id)
    if not tenant.wrapped_content_key:
        return None
    return s.content.read(d.tenant_id, d.id, tenant.content_cipher, tenant.wrapped_content_key)


def packet_input(s: Services, deposits: Sequence[Deposit], *, matter: str | None = None,
                 comparison: Comparison | None = None, originals: dict[str, bytes] | None = None,
                 capture: CapturePages | None = None) -> PacketInput:
    """Gather bundles, facts and originals; Conflict (409, retry) if a deposit is not in a checkpoint yet.

    `originals` supplies content kept outside the content store (monitoring's WARC captures), by deposit id.
    """
    material = init_packet_material(s.config.home)
    entries = []
    for d in deposits:
        bundle = build_bundle(s, d)
        if bundle is None:
            raise Conflict(f"deposit {d.id} is not in a checkpoint yet; retry shortly", retry_after=1)
        original = (originals or {}).get(d.id)
        entries.append(PacketEntry(deposit_facts(s, d), bundle,
                                   original if original is not None else stored_original(s, d)))
    if matter is None and len(deposits) > 1:
        refs = {d.metadata.get("matter") for d in deposits}
        matter = str(refs.pop()) if len(refs) == 1 and None not in refs else None
    return PacketInput(entries=entries, public_base_url=s.config.public_base_url,
                       service_name=s.keys.origin, generated_at=datetime.now(UTC),
                       signer_chain_pem=material.chain_pem(), matter=matter, comparison=comparison,
                       capture=capture)


#: Seconds a client should wait before asking again for a packet whose evidence is on its way.
NOT_READY_RETRY_S = 10


def never_court_ready(s: Services) -> str | None:
    """Why this depository cannot make a court-ready packet at all (no TSA, no witness quorum), or None."""
    notary = s.notary
    lacks = []
    if notary is None or getattr(notary, "stamper", None) is None:
        lacks.append("no timestamp authority (TSA)")
    policy = getattr(notary, "policy", None) if notary is not None else None
    if policy is None or policy.quorum == "none":
        lacks.append("no witness quorum")
    return " and ".join(lacks) if lacks else None


def require_court_ready(s: Services, rs: Sequence[Readiness]) -> None:
    """NotCourtReady (409) naming what is missing per deposit; Retry-After when it can still arrive."""
    pending = [r for r in rs if not r.court_ready]
    if not pending:
        return
    what = "; ".join(f"{r.deposit_id} lacks {' and '.join(r.missing)}" for r in pending[:5])
    if len(pending) > 5:
        what += f"; and {len(pending) - 5} more deposit(s)"
    never = never_court_ready(s)
    if never is not None:
        raise NotCourtReady(f"this depository has {never}, so its packets are preliminary: {what}. Ask for the "
                            "preliminary packet explicitly (?preliminary=1, or --preliminary)",
                            extra={"missing": {r.deposit_id: list(r.missing) for r in pending}})
    raise NotCourtReady(f"not court-ready yet: {what}. Retry later, or ask for the preliminary packet "
                        "(?preliminary=1, or --preliminary)", retry_after=NOT_READY_RETRY_S,
                        extra={"missing": {r.deposit_id: list(r.missing) for r in pending}})


def deposit_readiness(s: Services, d: Deposit) -> Readiness | None:
    """The readiness of one deposit's packet as it would be built now (None: not in a checkpoint yet)."""
    bundle = build_bundle(s, d)
    return None if bundle is None else packet_readiness([bundle])[0]


def build_packet(s: Services, deposits: Sequence[Deposit], *, matter: str | None = None,
                 comparison: Comparison | None = None, originals: dict[str, bytes] | None = None,
                 preliminary: bool = False, capture: CapturePages | None = None) -> bytes:
    """`build_packet_status` without the status: the PDF bytes."""
    return build_packet_status(s, deposits, matter=matter, comparison=comparison, originals=originals,
                               preliminary=preliminary, capture=capture)[0]


def build_packet_status(s: Services, deposits: Sequence[Deposit], *, matter: str | None = None,
                        comparison: Comparison | None = None, originals: dict[str, bytes] | None = None,
                        preliminary: bool = False, capture: CapturePages | None = None) -> tuple[bytes, str]:
    """The signed packet (one deposit) or matter packet (several) for `deposits`, as PDF bytes; with
    `comparison`, an infringement packet (a comparison page first).

    Court-ready only: unless `preliminary`, NotCourtReady (409) when any deposit's checkpoint lacks a
    witness quorum or a timestamp. A preliminary packet is marked so on every page (evidence.packet).
    Returns the PDF and COURT_READY or PRELIMINARY.
    """
    if not deposits:
        raise PacketError("a packet needs at least one deposit")
    material = init_packet_material(s.config.home)
    inp = packet_input(s, deposits, matter=matter, comparison=comparison, originals=originals, capture=capture)
    rs = packet_readiness([e.bundle for e in inp.entries])
    if not preliminary:
        require_court_ready(s, rs)
    pdf = render_packet(inp)
    stamper, cas = packet_timestamper(s)
    status = COURT_READY if all(r.court_ready for r in rs) else PRELIMINARY
    return seal_packet(pdf, material, timestamper=stamper, tsa_ca_pems=cas, signer_name=s.keys.origin), status


COURT_READY, PRELIMINARY = "court-ready", "preliminary"
#: Response header naming which of the two a served packet is (docs/formats.md).
STATUS_HEADER = "Evidence-Packet-Status"


def wants_preliminary(value: str | None) -> bool:
    """The `?preliminary=` flag: 1/true/yes asks for a preliminary packet rather than a 409."""
    return (value or "").strip().lower() in ("1", "true", "yes")
