"""Reading a signed packet PDF offline: its signatures (pyHanko validation) and its signed attachments.

Order matters. First every signed byte range is checked on the raw bytes (`evidence.byterange`), before
any parsing: a changed byte inside a signed range then reads "altered after signing", whatever else it
broke (a compressed stream, the cross-reference table), and nothing is extracted from an altered file.
Only then is the PDF parsed, its signatures validated, and the attachments read, from the revision the
packet signature covers, not from the latest revision, so an attachment swapped in a later incremental
update is never the one checked. The signature checks:

* `pdf-signature`: each signature is intact (digest of the signed byte ranges) and valid (the CMS
  signature), and its signer chains to trust/packet-ca.pem when given (else to the root shipped in
  the packet, reported as untrusted);
* `pdf-coverage`: the last revision of the file is covered by a signature or a document timestamp,
  and what follows the packet signature is at most validation data and timestamps (pyHanko's
  difference analysis: modification level LTA_UPDATES or none);
* `pdf-document-timestamp`: a document timestamp (PAdES B-LTA), when present, is intact and valid and
  its TSA chains to trust/tsa-ca.pem when given.

Validation uses only the certificates and CRLs inside the PDF's DSS: no fetching.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import pem, x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from evidence.byterange import scan
from evidence.errors import FormatError

# pyHanko logs a warning for every unparsable byte range in damaged files; the check names the problem.
logging.getLogger("pyhanko").setLevel(logging.ERROR)

SIGNATURE_EXPLANATION = ("The PDF signature shows the packet, pages and attachments, is exactly as the "
                         "depository issued it.")
COVERAGE_EXPLANATION = ("Everything in the file must be covered by a signature or document timestamp; "
                        "anything appended afterwards could change what a reader sees.")
DOC_TS_EXPLANATION = ("A document timestamp on the last revision (PAdES B-LTA) fixes when the signature and "
                      "its validation data existed.")


@dataclass
class SignedPacket:
    """The attachments of the signed revision, by name, and the PDF-level checks."""

    files: dict[str, bytes]
    checks: list[Any] = field(default_factory=list)
    altered: bool = False


def _certs(blob: bytes | None) -> list[x509.Certificate]:
    if not blob:
        return []
    if pem.detect(blob):
        return [x509.Certificate.load(der) for _, _, der in pem.unarmor(blob, multiple=True)]
    return [x509.Certificate.load(blob)]


def _attachments(root: Any) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        tree = root["/Names"]["/EmbeddedFiles"]
    except KeyError:
        return out
    stack = [tree]
    while stack:
        node = stack.pop()
        if "/Kids" in node:
            stack.extend(k.get_object() for k in node["/Kids"])
        names = node.get("/Names")
        if names is None:
            continue
        names = names.get_object()
        for i in range(0, len(names) - 1, 2):
            spec = names[i + 1].get_object()
            ef = spec["/EF"]
            stream = (ef.get("/UF") or ef["/F"]).get_object()
            out[str(names[i])] = stream.data
    return out


def read_signed_packet(pdf: bytes, packet_ca_pem: bytes | None, tsa_ca_pem: bytes | None) -> SignedPacket:
    """Parse, validate signatures and extract the signed attachments; FormatError if not a signed PDF."""
    from evidence.verify import Check

    ranges = scan(pdf)
    altered = ranges.altered()
    if altered is not None:
        return SignedPacket({}, [Check("pdf-signature", False, f"altered after signing: {altered}",
                                       SIGNATURE_EXPLANATION, facts={"finding": "altered"})], altered=True)
    if not pdf.lstrip()[:5] == b"%PDF-":
        raise FormatError("not a PDF (no %PDF- header)")
    if not ranges.signatures:
        raise FormatError("not a signed evidence packet: the PDF has no signature")
    damaged = ranges.damaged()
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        sigs = list(reader.embedded_signatures)
    except Exception as e:  # pyHanko raises PdfReadError, ValueError, KeyError... on damaged files
        if damaged is not None:  # the signed bytes are intact; only a signature value is not
            return SignedPacket({}, [Check("pdf-signature", False, damaged, SIGNATURE_EXPLANATION,
                                           facts={"finding": "damaged"})], altered=True)
        raise FormatError(f"not a readable PDF (truncated or damaged): {type(e).__name__}: {e}") from e
    regular = [s for s in sigs if s.sig_object_type == "/Sig"]
    if not regular:
        raise FormatError("not a signed evidence packet: the PDF has no signature")
    packet_sig = regular[0]
    try:
        files = _attachments(reader.get_historical_root(packet_sig.signed_revision))
    except Exception as e:
        raise FormatError(f"not an evidence packet: attachments unreadable: {type(e).__name__}: {e}") from e

    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except Exception:
        dss = None
    shipped = _certs(files.get("signer-chain.pem"))
    trusted_packet = bool(packet_ca_pem)
    roots = _certs(packet_ca_pem) if trusted_packet else shipped[-1:]
    tsa_roots = _certs(tsa_ca_pem)
    for name, data in files.items():
        if not tsa_ca_pem and name.endswith("tsa-chain.pem"):
            tsa_roots += _certs(data)[-1:]

    def context(trust_roots: list[x509.Certificate]) -> ValidationContext:
        kwargs: dict[str, Any] = {"trust_roots": trust_roots, "allow_fetching": False,
                                  "revocation_mode": "soft-fail"}
        return dss.as_validation_context(kwargs) if dss is not None else ValidationContext(**kwargs)

    checks = []
    sig_ok, details = True, []
    last_cover = None
    for s in sigs:
        try:
            if s.sig_object_type == "/DocTimeStamp":
                st: Any = validate_pdf_timestamp(s, validation_context=context(tsa_roots or roots))
            else:
                st = validate_pdf_signature(s, signer_validation_context=context(roots),
                                            ts_validation_context=context(tsa_roots or roots))
        except Exception as e:
            sig_ok = False
            details.append(f"{s.field_name}: cannot validate: {type(e).__name__}: {e}")
            continue
        last_cover = (s, st)
        if s.sig_object_type == "/DocTimeStamp":
            continue
        who = st.signing_cert.subject.human_friendly
        if not (st.intact and st.valid):
            sig_ok = False
            details.append(f"{s.field_name}: {'digest mismatch' if not st.intact else 'signature invalid'}")
        elif trusted_packet and not st.trusted:
            sig_ok = False
            details.append(f"{s.field_name}: signer {who} does not chain to trust/packet-ca.pem")
        else:
            details.append(f"{s.field_name}: valid, signer {who}" + (
                " (trusted root)" if trusted_packet else " (untrusted keys: root shipped in the packet)"))
    if damaged is not None:
        sig_ok = False
        details.insert(0, damaged)
    checks.append(Check("pdf-signature", sig_ok, "; ".join(details), SIGNATURE_EXPLANATION))

    cover_ok, cover_detail = False, "no signature covers the end of the file"
    if last_cover is not None:
        s, st = last_cover
        if st.coverage == SignatureCoverageLevel.ENTIRE_FILE and sigs[-1] is s:
            cover_ok, cover_detail = True, f"{s.field_name} covers the whole file"
        else:
            cover_detail = f"bytes after the last signature ({s.field_name}) are not signed"
    packet_status = None
    if cover_ok and len(sigs) > 1:
        try:
            packet_status = validate_pdf_signature(packet_sig, signer_validation_context=context(roots),
                                                   ts_validation_context=context(tsa_roots or roots))
            level = packet_status.modification_level
            if level is not None and level.name not in ("NONE", "LTA_UPDATES"):
                cover_ok = False
                cover_detail = f"changes after the packet signature: {level.name}"
        except Exception as e:
            cover_ok, cover_detail = False, f"difference analysis failed: {type(e).__name__}: {e}"
    checks.append(Check("pdf-coverage", cover_ok, cover_detail, COVERAGE_EXPLANATION))

    doc_ts = [s for s in sigs if s.sig_object_type == "/DocTimeStamp"]
    if not doc_ts:
        checks.append(Check("pdf-document-timestamp", False,
                            "no document timestamp" + (" but trust/tsa-ca.pem requires one" if tsa_ca_pem
                                                       else ": the packet was signed without a TSA, so its "
                                                       "signing time rests on the depository's clock"),
                            DOC_TS_EXPLANATION, "failed" if tsa_ca_pem else "not present",
                            facts={"finding": "missing-required"} if tsa_ca_pem else {}))
    else:
        ok, parts = True, []
        for s in doc_ts:
            try:
                st = validate_pdf_timestamp(s, validation_context=context(tsa_roots))
            except Exception as e:
                ok = False
                parts.append(f"{s.field_name}: cannot validate: {type(e).__name__}: {e}")
                continue
            good = st.intact and st.valid and (st.trusted or not tsa_ca_pem)
            ok = ok and good
            when = st.timestamp.isoformat() if getattr(st, "timestamp", None) else "?"
            parts.append(f"{s.field_name}: {'valid' if good else 'INVALID'} at {when}" + (
                " (trusted TSA root)" if tsa_ca_pem else " (untrusted keys: TSA chain from the packet)"))
        checks.append(Check("pdf-document-timestamp", ok, "; ".join(parts), DOC_TS_EXPLANATION))
    return SignedPacket(files, checks)
