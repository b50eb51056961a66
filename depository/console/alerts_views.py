"""The alerts inbox for rights holders: the registered work beside what was found, the score, the capture,
and the workflow actions (confirm / false positive / notice sent / resolved) of `monitoring.workflow`.

Everything goes through `services.monitoring` (the same service as `/v1/alerts`), scoped to the signed-in
person's tenant. A viewer sees alerts but cannot act on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WResponse

from depository.console.web import bp, current_user, require_upload_role, services
from depository.deposits import Deposit
from depository.errors import DepositoryError, NotFound
from depository.monitoring.workflow import STATUSES, TRANSITIONS

ACTION_LABELS = {"confirmed": "Confirm infringement", "false-positive": "Mark false positive",
                 "notice-sent": "Notice sent", "resolved": "Resolved (copy removed)"}
PREVIEWABLE = ("image/png", "image/jpeg", "image/gif", "image/webp")


@dataclass
class AlertView:
    id: str
    status: str
    score: float
    method: str
    page_url: str
    matched_url: str
    created_at: datetime
    work: Deposit | None
    capture_id: str
    history: list[dict[str, Any]]
    actions: list[tuple[str, str]]

    @property
    def work_preview(self) -> bool:
        return bool(self.work and self.work.content_stored and self.work.content_type in PREVIEWABLE)


def _monitoring() -> Any:
    m = services().monitoring
    if m is None:
        raise NotFound("monitoring is not enabled on this depository")
    return m


def _view(row: Any, tenant_id: str) -> AlertView:
    try:
        work: Deposit | None = services().deposits.get(tenant_id, row.work_deposit_id)
    except NotFound:
        work = None
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return AlertView(row.id, row.status, float(row.score), row.method, row.page_url, row.matched_url, created,
                     work, row.capture_deposit_id, json.loads(row.history_json),
                     [(s, ACTION_LABELS[s]) for s in sorted(TRANSITIONS.get(row.status, ()))])


@bp.get("/alerts")
def alerts() -> str:
    tenant_id = current_user().tenant_id
    status = request.args.get("status", "")
    status = status if status in STATUSES else ""
    rows = _monitoring().alerts(tenant_id, status=status or None, limit=200)
    return render_template("console/alerts.html", alerts=[_view(r, tenant_id) for r in rows], status=status,
                           statuses=STATUSES, error=request.args.get("error"))


@bp.post("/alerts/<alert_id>/status")
@require_upload_role
def alert_status(alert_id: str) -> WResponse:
    status = request.form.get("status", "")
    note = (request.form.get("note") or "").strip() or None
    back = request.form.get("back_status", "")
    try:
        _monitoring().set_status(current_user().tenant_id, alert_id, status, note)
    except NotFound:
        raise
    except DepositoryError as e:  # a move the workflow refuses (e.g. changed meanwhile): say so on the page
        return redirect(url_for("console.alerts", status=back or None, error=e.detail) + f"#{alert_id}", code=303)
    return redirect(url_for("console.alerts", status=back or None) + f"#{alert_id}", code=303)


@bp.get("/alerts/<alert_id>/packet.pdf")
def alert_packet(alert_id: str) -> Response:
    from depository.monitoring.packet import build_infringement_packet
    from depository.packets import wants_preliminary

    row = _monitoring().alert_row(current_user().tenant_id, alert_id)
    resp = Response(build_infringement_packet(services(), row,
                                              preliminary=wants_preliminary(request.args.get("preliminary"))),
                    mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f'attachment; filename="infringement-packet-{row.id}.pdf"'
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


@bp.get("/alerts/<alert_id>/capture.warc.gz")
def alert_capture(alert_id: str) -> Response:
    m = _monitoring()
    tenant_id = current_user().tenant_id
    row = m.alert_row(tenant_id, alert_id)
    data = m.capture_bytes(tenant_id, row.capture_deposit_id)
    if data is None:
        raise NotFound("the capture file is not stored")
    resp = Response(data, mimetype="application/warc")
    resp.headers["Content-Disposition"] = f'attachment; filename="{row.capture_deposit_id}.warc.gz"'
    return resp


@bp.get("/deposits/<deposit_id>/preview")
def deposit_preview(deposit_id: str) -> Response:
    """The stored original of an image deposit, for the inbox's side-by-side view (never served as HTML)."""
    from depository.packets import stored_original

    s = services()
    d = s.deposits.get(current_user().tenant_id, deposit_id)
    data = stored_original(s, d) if d.content_type in PREVIEWABLE else None
    if data is None:
        raise NotFound("no previewable original is stored for this deposit")
    resp = Response(data, mimetype=d.content_type)
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["Content-Disposition"] = "inline"
    return resp


