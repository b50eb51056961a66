"""Monitoring API: watches, scans, alerts (status workflow, infringement packet), notification endpoints.

Every route is scoped to the caller's tenant; another tenant's watch, alert or endpoint answers 404 like
a missing one. Reads need the `read` scope, changes the `deposit` scope, packets the `proof` scope.

Copyright works are fingerprinted by an app-wide after-request hook on the deposit upload route
(`_fingerprint_copyright_upload`): it runs once the deposit has committed and been answered 201, reads
the upload's spool (still open until the request is torn down) and never changes the response -- so the
upload route itself needs no edit and a fingerprinting failure cannot fail a deposit.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from depository.api.auth import principal
from depository.api.params import expensive
from depository.api.params import json_object as _json_object
from depository.api.params import paging as _paging
from depository.errors import BadRequest, ValidationFailed
from depository.inputs import storable_text
from depository.monitoring.service import Monitoring, alert_json
from depository.monitoring.watches import watch_json
from depository.monitoring.workflow import STATUSES
from depository.ratelimit import LocalRateLimiter
from depository.wiring import Services

bp = Blueprint("monitoring", __name__)
log = logging.getLogger(__name__)


def _services() -> Services:
    s: Services = current_app.extensions["depository"]
    return s


def _monitoring() -> Monitoring:
    m: Monitoring = _services().monitoring
    return m


def _created(body: dict[str, Any], location: str) -> Response:
    resp = jsonify(body)
    resp.status_code = 201
    resp.headers["Location"] = location
    return resp


# ---- watches ---------------------------------------------------------------------------------------

@bp.post("/v1/watches")
def create_watch() -> Response:
    p = principal("deposit")
    obj = _json_object()
    unknown = set(obj) - {"url", "interval_s", "kind"}
    if unknown:
        raise ValidationFailed(f"unknown field(s): {', '.join(sorted(unknown))}")
    row = _monitoring().watches.create(p.tenant_id, obj.get("url"), obj.get("interval_s"), obj.get("kind", "auto"))
    return _created(watch_json(row), f"/v1/watches/{row.id}")


@bp.get("/v1/watches")
def list_watches() -> Response:
    p = principal("read")
    limit, offset = _paging()
    return jsonify({"watches": [watch_json(w) for w in _monitoring().watches.list_for(p.tenant_id, limit, offset)]})


@bp.get("/v1/watches/<watch_id>")
def get_watch(watch_id: str) -> Response:
    p = principal("read")
    m = _monitoring()
    body = watch_json(m.watches.get(p.tenant_id, watch_id))
    body["recent_fetches"] = m.fetches(p.tenant_id, watch_id=watch_id, limit=50)
    return jsonify(body)


@bp.delete("/v1/watches/<watch_id>")
def delete_watch(watch_id: str) -> Response:
    p = principal("deposit")
    _monitoring().watches.delete(p.tenant_id, watch_id)
    return Response(status=204)


# ---- scans -----------------------------------------------------------------------------------------

@bp.post("/v1/scans")
def create_scan() -> Response:
    """A suspect URL (JSON `{"url": ...}`: fetched, matched, captured on a match) or an uploaded file
    (multipart `file`: matched only -- there is no page to capture)."""
    p = principal("deposit")
    m = _monitoring()
    with expensive(p.key_id, "scans", _scan_rate()):
        return _scan(p, m)


def _scan_rate() -> LocalRateLimiter:
    ext = current_app.extensions
    if "scan_rate" not in ext:
        per_minute = _services().config.scan_rate_per_minute
        ext["scan_rate"] = LocalRateLimiter(per_minute / 60, max(1, per_minute // 2))
    rate: LocalRateLimiter = ext["scan_rate"]
    return rate


def _scan(p: Any, m: Monitoring) -> Response:
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadRequest("multipart scan needs a 'file' part")
        spool: Any = upload.stream
        raw = spool.file if hasattr(spool, "file") else spool
        raw.seek(0)
        data = raw.read()
        matches = m.scan_bytes(p.tenant_id, data, upload.mimetype, upload.filename)
        return jsonify({"source": "upload", "filename": upload.filename, "matches": matches})
    obj = _json_object()
    url = obj.get("url")
    if set(obj) - {"url"} or not isinstance(url, str) or not url or len(url) > 4096 or not storable_text(url):
        raise ValidationFailed('send {"url": "<suspect page>"} or a multipart file')
    try:
        m.fetcher._check_url(url)
    except Exception as e:
        raise ValidationFailed(str(e)) from e
    return jsonify(m.scan_url(p.tenant_id, url).to_json())


# ---- alerts ----------------------------------------------------------------------------------------

@bp.get("/v1/alerts")
def list_alerts() -> Response:
    p = principal("read")
    limit, offset = _paging()
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
    rows = _monitoring().alerts(p.tenant_id, status=status, limit=limit, offset=offset)
    return jsonify({"alerts": [alert_json(r) for r in rows]})


@bp.get("/v1/alerts/<alert_id>")
def get_alert(alert_id: str) -> Response:
    p = principal("read")
    m = _monitoring()
    body = alert_json(m.alert_row(p.tenant_id, alert_id))
    body["deliveries"] = m.notifier.deliveries(p.tenant_id, alert_id)
    return jsonify(body)


@bp.post("/v1/alerts/<alert_id>/status")
def set_alert_status(alert_id: str) -> Response:
    p = principal("deposit")
    obj = _json_object()
    status, note = obj.get("status"), obj.get("note")
    if not isinstance(status, str) or (note is not None and not isinstance(note, str)):
        raise ValidationFailed('send {"status": "...", "note": "..."?}')
    return jsonify(alert_json(_monitoring().set_status(p.tenant_id, alert_id, status, note)))


@bp.get("/v1/alerts/<alert_id>/packet.pdf")
def alert_packet(alert_id: str) -> Response:
    """The infringement packet: the work and the capture, both with proofs, and a comparison page."""
    from depository.monitoring.packet import build_infringement_packet

    p = principal("proof")
    s = _services()
    row = _monitoring().alert_row(p.tenant_id, alert_id)
    from depository.packets import wants_preliminary

    with expensive(p.key_id, "packets"):
        pdf = build_infringement_packet(s, row, preliminary=wants_preliminary(request.args.get("preliminary")))
    resp = Response(pdf, mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f'attachment; filename="infringement-packet-{row.id}.pdf"'
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


@bp.get("/v1/alerts/<alert_id>/capture.warc.gz")
def alert_capture(alert_id: str) -> Response:
    p = principal("read")
    m = _monitoring()
    row = m.alert_row(p.tenant_id, alert_id)
    data = m.capture_bytes(p.tenant_id, row.capture_deposit_id)
    if data is None:
        from depository.errors import NotFound

        raise NotFound("the capture file is not stored")
    resp = Response(data, mimetype="application/warc")
    resp.headers["Content-Disposition"] = f'attachment; filename="{row.capture_deposit_id}.warc.gz"'
    return resp


# ---- notification endpoints ------------------------------------------------------------------------

def _endpoint_json(row: Any, secret: str | None = None) -> dict[str, Any]:
    key = "url" if row.channel == "webhook" else "address"
    out: dict[str, Any] = {"id": row.id, "channel": row.channel, key: row.target,
                           "created_at": row.created_at.isoformat()}
    if secret is not None:
        out["secret"] = secret  # shown once
    return out


@bp.post("/v1/webhooks")
def create_webhook() -> Response:
    p = principal("deposit")
    obj = _json_object()
    if set(obj) != {"url"}:
        raise ValidationFailed('send {"url": "https://..."}')
    row, secret = _monitoring().notifier.create_endpoint(p.tenant_id, "webhook", obj["url"])
    return _created(_endpoint_json(row, secret), f"/v1/webhooks/{row.id}")


@bp.post("/v1/webhooks/<endpoint_id>/rotate-secret")
def rotate_webhook_secret(endpoint_id: str) -> Response:
    """A new signing secret, shown once; deliveries from now on are signed with it."""
    p = principal("deposit")
    row, secret = _monitoring().notifier.rotate_secret(p.tenant_id, endpoint_id)
    return jsonify(_endpoint_json(row, secret))


@bp.post("/v1/alert-emails")
def create_alert_email() -> Response:
    p = principal("deposit")
    obj = _json_object()
    if set(obj) != {"address"}:
        raise ValidationFailed('send {"address": "name@example.com"}')
    row, _ = _monitoring().notifier.create_endpoint(p.tenant_id, "email", obj["address"])
    return _created(_endpoint_json(row), f"/v1/alert-emails/{row.id}")


@bp.get("/v1/webhooks")
@bp.get("/v1/alert-emails")
def list_endpoints() -> Response:
    p = principal("read")
    channel = "webhook" if request.path.endswith("/webhooks") else "email"
    rows = [r for r in _monitoring().notifier.endpoints(p.tenant_id) if r.channel == channel]
    return jsonify({"endpoints": [_endpoint_json(r) for r in rows]})


@bp.delete("/v1/webhooks/<endpoint_id>")
@bp.delete("/v1/alert-emails/<endpoint_id>")
def delete_endpoint(endpoint_id: str) -> Response:
    p = principal("deposit")
    _monitoring().notifier.delete_endpoint(p.tenant_id, endpoint_id)
    return Response(status=204)


# ---- the copyright fingerprint hook ----------------------------------------------------------------

@bp.after_app_request
def _fingerprint_copyright_upload(resp: Response) -> Response:
    if (request.endpoint != "deposits.create_deposit" or resp.status_code != 201
            or request.mimetype != "multipart/form-data" or request.form.get("kind") != "copyright"):
        return resp
    try:
        tenant_id = g.principal.tenant_id
        deposit_id = json.loads(resp.get_data())["id"]
        upload = request.files["file"]
        raw: Any = getattr(upload.stream, "file", upload.stream)
        raw.seek(0)
        _monitoring().register_work(tenant_id, deposit_id, raw.read(), upload.mimetype, upload.filename)
    except Exception:  # the deposit stands; a work without fingerprints is only not monitored
        log.exception("fingerprinting copyright deposit failed")
    return resp


# ---- OpenAPI (merged into /openapi.json by depository.api.openapi) --------------------------------

def _openapi_paths() -> dict[str, Any]:
    from depository.api.openapi import SECURED, errors, json_body, ok, path_param

    obj: dict[str, Any] = {"type": "object"}
    url = {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^https?://"}
    status = {"type": "string", "enum": ["new", "confirmed", "false-positive", "notice-sent", "resolved"]}
    paging = [{"name": n, "in": "query", "required": False, "schema": {"type": "integer"}} for n in ("limit", "offset")]
    watch_id, alert_id = path_param("watch_id", "watch id (wat_...)"), path_param("alert_id", "alert id (alr_...)")
    endpoint_id = path_param("endpoint_id", "endpoint id (whk_... or eml_...)")

    def op(summary: str, responses: dict[str, Any], *codes: int, **extra: Any) -> dict[str, Any]:
        return {"summary": summary, "security": SECURED, "responses": {**responses, **errors(401, 403, *codes)},
                **extra}

    deleted = {"204": {"description": "deleted"}}
    return {
        "/v1/watches": {
            "post": op("Watch a URL or feed", ok(obj, "the watch", "201"), 400, 422, requestBody={**json_body({
                "type": "object", "required": ["url", "interval_s"], "additionalProperties": False,
                "properties": {"url": url, "interval_s": {"type": "integer", "minimum": 1},
                               "kind": {"type": "string", "enum": ["auto", "page", "feed"]}}}), "required": True}),
            "get": op("The tenant's watches", ok(obj), 400, parameters=paging)},
        "/v1/watches/{watch_id}": {
            "get": op("A watch and its recent fetches", ok(obj), 404, parameters=[watch_id]),
            "delete": op("Stop watching", deleted, 404, parameters=[watch_id])},
        "/v1/scans": {"post": op("Check a suspect URL (or uploaded file) now", ok(obj), 400, 413, 422, requestBody={
            "required": True, "content": {
                "application/json": {"schema": {"type": "object", "required": ["url"], "additionalProperties": False,
                                                "properties": {"url": url}}},
                "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                                   "properties": {"file": {"type": "string", "format": "binary"}}}}}})},
        "/v1/alerts": {"get": op("The tenant's alerts", ok(obj), 400, parameters=[
            *paging, {"name": "status", "in": "query", "required": False, "schema": status}])},
        "/v1/alerts/{alert_id}": {"get": op("An alert with its delivery log", ok(obj), 404, parameters=[alert_id])},
        "/v1/alerts/{alert_id}/status": {"post": op(
            "Move an alert along its workflow", ok(obj), 400, 404, 409, 422, parameters=[alert_id],
            requestBody={**json_body({"type": "object", "required": ["status"],
                                      "properties": {"status": status, "note": {"type": "string"}}}),
                         "required": True})},
        "/v1/alerts/{alert_id}/packet.pdf": {"get": op(
            "The signed infringement packet", {"200": {"description": "PDF", "content": {"application/pdf": {}}}},
            404, 409, parameters=[alert_id])},
        "/v1/alerts/{alert_id}/capture.warc.gz": {"get": op(
            "The capture (WARC)", {"200": {"description": "WARC", "content": {"application/warc": {}}}}, 404,
            parameters=[alert_id])},
        "/v1/webhooks": {
            "post": op("Add a webhook endpoint (the secret is shown once)", ok(obj, "the endpoint", "201"), 400, 422,
                       requestBody={**json_body({"type": "object", "required": ["url"], "additionalProperties": False,
                                                 "properties": {"url": url}}), "required": True}),
            "get": op("The tenant's webhook endpoints", ok(obj))},
        "/v1/webhooks/{endpoint_id}": {"delete": op("Remove a webhook endpoint", deleted, 404,
                                                    parameters=[endpoint_id])},
        "/v1/webhooks/{endpoint_id}/rotate-secret": {"post": op(
            "Replace the endpoint's signing secret (the new one is shown once)", ok(obj), 404,
            parameters=[endpoint_id])},
        "/v1/alert-emails": {
            "post": op("Add an alert email address", ok(obj, "the endpoint", "201"), 400, 422, requestBody={
                **json_body({"type": "object", "required": ["address"], "additionalProperties": False,
                             "properties": {"address": {"type": "string", "format": "email"}}}), "required": True}),
            "get": op("The tenant's alert email addresses", ok(obj))},
        "/v1/alert-emails/{endpoint_id}": {"delete": op("Remove an alert email address", deleted, 404,
                                                        parameters=[endpoint_id])},
    }


OPENAPI_PATHS = _openapi_paths()
