"""Public `/verify`: check a packet (and optionally the original) against the home's trust material, or
look up whether a hash is deposited. No sign-in; nothing about the depositor is shown.

The trust material is what `GET /v1/log/keys` publishes (log vkey, SM2 key, witness policy, TSA root,
packet root). A witness policy or TSA root is passed only when this depository actually uses witnesses or
a TSA: with one given, `evidence.verify` requires the packet to carry cosignatures or a token.
"""

from __future__ import annotations

import re

from flask import Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WResponse

from depository.console import queries
from depository.console.web import public_bp, services
from depository.packets import packet_material
from depository.wiring import Services
from evidence.errors import EvidenceError
from evidence.summary import Summary, grouped, summarize
from evidence.verify import Check, Trust, verify_packet

HEX_RE = re.compile(r"^[0-9a-fA-F]{64}$")
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def home_trust(s: Services) -> Trust:
    notary = s.notary
    policy = getattr(notary, "policy_text", None) or None if notary is not None else None
    tsa_ca = notary.tsa_ca_pem if notary is not None and getattr(notary, "stamper", None) is not None else None
    ca = packet_material(s.config.home).ca_path
    return Trust(log_vkey=s.keys.vkey, log_sm2_pem=s.keys.sm2_public_pem, witness_policy=policy,
                 tsa_ca_pem=tsa_ca, packet_ca_pem=ca.read_bytes() if ca.is_file() else None)


def _lookup() -> tuple[str, str, queries.PublicAnswer | None, str | None]:
    sha = request.args.get("sha256", "").strip()
    dep = request.args.get("deposit", "").strip()
    if not sha:
        return sha, dep, None, None
    if not HEX_RE.match(sha):
        return sha, dep, None, "A SHA-256 hash is 64 hexadecimal characters (0-9, a-f)."
    if dep and not ID_RE.match(dep):
        return sha, dep, None, "That is not a deposit id."
    return sha, dep, queries.public_lookup(services(), sha.lower(), dep or None), None


@public_bp.get("/")
def root() -> WResponse:
    """`/` is not a raw 404: people land on the console (which signs them in) or can verify without one."""
    return redirect(url_for("console.index"))


@public_bp.get("/verify")
def verify_page() -> str:
    sha, dep, answer, error = _lookup()
    return render_template("console/verify.html", sha256=sha, deposit=dep, answer=answer, lookup_error=error,
                           checks=None, summary=None, groups=None, packet_error=None)


@public_bp.post("/verify")
def verify_upload() -> Response:
    packet = request.files.get("packet")
    original = request.files.get("file")
    checks: list[Check] | None = None
    packet_error = None
    if packet is None or not packet.filename:
        packet_error = "Choose the evidence packet (a PDF) to check."
    else:
        pdf = packet.stream.read()
        data = original.stream.read() if original is not None and original.filename else None
        try:
            checks = verify_packet(pdf, file=data, trust=home_trust(services()))
        except EvidenceError as e:
            packet_error = f"This file is not a readable evidence packet: {e.diagnostics()}"
    with_file = bool(original is not None and original.filename)
    summary: Summary | None = None if checks is None else summarize(checks, file_given=with_file)
    status = 200 if packet_error is None else 422
    return Response(render_template("console/verify.html", sha256="", deposit="", answer=None,
                                    lookup_error=None, checks=checks, summary=summary,
                                    groups=grouped(checks) if checks is not None else None,
                                    packet_error=packet_error, with_file=with_file),
                    status=status)
