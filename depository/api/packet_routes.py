"""`GET /v1/deposits/<id>/packet.pdf`: the one-click, signed evidence packet of one deposit."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from depository.api.auth import principal
from depository.api.params import expensive
from depository.packets import STATUS_HEADER, build_packet_status, wants_preliminary
from depository.wiring import Services

bp = Blueprint("packets", __name__)


@bp.get("/v1/deposits/<deposit_id>/packet.pdf")
def get_packet(deposit_id: str) -> Response:
    """404 for an unknown (or another tenant's) deposit, 409 + Retry-After while it awaits a checkpoint,
    409 `not-court-ready` while its checkpoint lacks a witness quorum or a timestamp, unless
    `?preliminary=1` asks for the preliminary packet (header Evidence-Packet-Status says which)."""
    p = principal("proof")
    s: Services = current_app.extensions["depository"]
    d = s.deposits.get(p.tenant_id, deposit_id)
    with expensive(p.key_id, "packets"):  # signing and timestamping a PDF: a few per key at once
        pdf, status = build_packet_status(s, [d], preliminary=wants_preliminary(request.args.get("preliminary")))
    resp = Response(pdf, mimetype="application/pdf")
    resp.headers[STATUS_HEADER] = status
    resp.headers["Content-Disposition"] = f'attachment; filename="evidence-packet-{d.id}.pdf"'
    resp.headers["Cache-Control"] = "private, no-store"
    return resp
