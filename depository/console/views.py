"""Deposits (search, detail with timeline, one-click packet, upload) and matters."""

from __future__ import annotations

import json
import re
from datetime import date

from flask import Response, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WResponse

from depository.console import queries
from depository.console.intake import deposit_upload
from depository.console.web import bp, current_user, require_upload_role, services, wants_json
from depository.deposits import Deposit
from depository.errors import BadRequest, NotFound
from depository.kinds import REF_RE
from depository.packets import (
    COURT_READY,
    STATUS_HEADER,
    build_packet_status,
    deposit_readiness,
    never_court_ready,
    wants_preliminary,
)
from evidence.leaf import KINDS

HEX_RE = re.compile(r"^[0-9a-fA-F]{64}$")


def _date_arg(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as e:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD)") from e


def _packet_response(pdf: bytes, filename: str) -> Response:
    resp = Response(pdf, mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


@bp.get("/")
def index() -> WResponse:
    return redirect(url_for("console.deposits"))


@bp.get("/deposits")
def deposits() -> str:
    kind = request.args.get("kind", "")
    f = queries.Search(q=request.args.get("q", "").strip()[:128], kind=kind if kind in KINDS else "",
                       party=request.args.get("party", "").strip()[:255],
                       matter=request.args.get("matter", "").strip()[:128],
                       since=_date_arg("since"), until=_date_arg("until"))
    try:
        page_no = int(request.args.get("page", "1"))
    except ValueError:
        page_no = 1
    page = queries.search(services(), current_user().tenant_id, f, page_no)
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template("console/deposits.html", page=page, f=f, kinds=KINDS, args=args)


@bp.get("/deposits/<deposit_id>")
def deposit(deposit_id: str) -> str:
    s = services()
    d = s.deposits.get(current_user().tenant_id, deposit_id)  # NotFound for another tenant's id too
    queries.with_status(s, [d])
    steps = queries.timeline(s, d)
    ready = None if d.status == "pending" else deposit_readiness(s, d)
    return render_template("console/deposit.html", d=d, steps=steps, readiness=ready,
                           never_ready=never_court_ready(s),
                           metadata_json=json.dumps(d.metadata, indent=2, ensure_ascii=False))


@bp.get("/deposits/<deposit_id>/packet.pdf")
def deposit_packet(deposit_id: str) -> Response:
    """The court-ready packet in one click (409 with Retry-After while the deposit awaits a checkpoint or
    its witnesses and timestamp); `?preliminary=1` for the marked preliminary packet."""
    s = services()
    d = s.deposits.get(current_user().tenant_id, deposit_id)
    pdf, status = build_packet_status(s, [d], preliminary=wants_preliminary(request.args.get("preliminary")))
    name = f"evidence-packet-{d.id}.pdf" if status == COURT_READY else f"preliminary-evidence-packet-{d.id}.pdf"
    resp = _packet_response(pdf, name)
    resp.headers[STATUS_HEADER] = status
    return resp


@bp.get("/upload")
@require_upload_role
def upload_form() -> str:
    return render_template("console/upload.html", kinds=KINDS,
                           max_bytes=services().config.max_upload_bytes)


@bp.post("/deposits")
@require_upload_role
def upload() -> WResponse:
    """The upload: JSON for the page's XMLHttpRequest, a redirect for a plain form post."""
    user = current_user()
    d = deposit_upload(services(), user.tenant_id, user.id, request.files.get("file"), request.form)
    where = url_for("console.deposit", deposit_id=d.id)
    if wants_json():
        d.status = "pending"
        resp = jsonify({"id": d.id, "sha256": d.sha256, "url": where})
        resp.status_code = 201
        return resp
    return redirect(where, code=303)


@bp.get("/matters")
def matters() -> str:
    return render_template("console/matters.html", matters=queries.matters(services(), current_user().tenant_id))


def _matter_deposits(ref: str) -> list[Deposit]:
    if not REF_RE.match(ref):
        raise NotFound("no such matter")
    s = services()
    deps = s.deposits.find(current_user().tenant_id, matter=ref, limit=1000)
    if not deps:
        raise NotFound(f"no deposits in matter {ref}")
    return queries.with_status(s, deps)


@bp.get("/matter-packet.pdf")
def matter_packet() -> Response:
    """The matter packet: every deposit of the matter in one signed PDF (`?matter=<ref>`)."""
    ref = request.args.get("matter", "")
    deps = _matter_deposits(ref)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", ref)
    pdf, status = build_packet_status(services(), deps, matter=ref,
                                      preliminary=wants_preliminary(request.args.get("preliminary")))
    resp = _packet_response(pdf, f"matter-packet-{safe}.pdf" if status == COURT_READY
                            else f"preliminary-matter-packet-{safe}.pdf")
    resp.headers[STATUS_HEADER] = status
    return resp


@bp.get("/matters/<path:ref>")
def matter(ref: str) -> str:
    """The matter packet waits for all its deposits: court-ready only when every one is witnessed to quorum
    and timestamped (a 'witnessed' status means both, and a quorum exists unless never_court_ready says)."""
    deps = _matter_deposits(ref)
    s = services()
    never = never_court_ready(s)
    in_checkpoint = all(d.status != "pending" for d in deps)
    waiting = [d for d in deps if d.status != "witnessed"]
    ready = in_checkpoint and never is None and not waiting
    return render_template("console/matter.html", ref=ref, deposits=deps, ready=ready,
                           in_checkpoint=in_checkpoint, never_ready=never, waiting=waiting)
