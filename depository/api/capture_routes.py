"""On-demand web captures: `POST /v1/captures` (202 + the capture resource), `GET /v1/captures/<id>`,
`GET /v1/captures/<id>/artefacts/<name>`.

Tenant-scoped: another tenant's capture answers 404 like a missing one. Creating needs the `deposit`
scope (a capture deposits), reading the `read` scope. The API only queues: the capture runs in the worker
(rq) or, without Redis, on a background thread (see `depository.capture.service`).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from depository.api.auth import principal
from depository.capture.service import Captures, capture_json
from depository.errors import BadRequest, ValidationFailed

bp = Blueprint("captures", __name__)


def _captures() -> Captures:
    c: Captures = current_app.extensions["depository"].captures
    return c


@bp.post("/v1/captures")
def create_capture() -> Response:
    p = principal("deposit")
    try:
        obj = json.loads(request.get_data(cache=True) or b"null")
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"request body is not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = set(obj) - {"url", "matter", "operator"}
    if unknown:
        raise ValidationFailed(f"unknown field(s): {', '.join(sorted(unknown))}")
    rec = _captures().create(p.tenant_id, obj.get("url"), matter=obj.get("matter"), operator=obj.get("operator"))
    resp = jsonify(capture_json(rec))
    resp.status_code = 202
    resp.headers["Location"] = f"/v1/captures/{rec['id']}"
    return resp


@bp.get("/v1/captures/<capture_id>")
def get_capture(capture_id: str) -> Response:
    p = principal("read")
    return jsonify(capture_json(_captures().get(p.tenant_id, capture_id)))


@bp.get("/v1/captures/<capture_id>/artefacts/<name>")
def get_artefact(capture_id: str, name: str) -> Response:
    p = principal("read")
    entry, data = _captures().artefact(p.tenant_id, capture_id, name)
    resp = Response(data, mimetype=entry["content_type"].split(";")[0])
    resp.headers["Content-Disposition"] = f'attachment; filename="{capture_id}-{name}"'
    resp.headers["Depository-Deposit"] = entry["deposit_id"]
    return resp


@bp.get("/v1/captures/<capture_id>/packet.pdf")
def get_packet(capture_id: str) -> Response:
    """The signed evidence packet of the capture (409 until court-ready, unless `?preliminary=1`)."""
    from depository.packets import STATUS_HEADER, wants_preliminary

    p = principal("proof")
    pdf, status = _captures().packet(p.tenant_id, capture_id,
                                     preliminary=wants_preliminary(request.args.get("preliminary")))
    resp = Response(pdf, mimetype="application/pdf")
    resp.headers[STATUS_HEADER] = status
    resp.headers["Content-Disposition"] = f'attachment; filename="{capture_id}-packet.pdf"'
    return resp


def _openapi_paths() -> dict[str, Any]:
    from depository.api.openapi import SECURED, errors, json_body, ok, path_param

    obj: dict[str, Any] = {"type": "object"}
    cid = path_param("capture_id", "capture id (cap_...)")
    return {
        "/v1/captures": {"post": {
            "summary": "Capture a web page in a real browser (async)", "security": SECURED,
            "responses": {**ok(obj, "the capture, queued", "202"), **errors(400, 401, 403, 422)},
            "requestBody": {**json_body({
                "type": "object", "required": ["url"], "additionalProperties": False,
                "properties": {"url": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^https?://"},
                               "matter": {"type": "string"}, "operator": {"type": "string"}}}), "required": True}}},
        "/v1/captures/{capture_id}": {"get": {
            "summary": "A capture: status, progress, its deposits", "security": SECURED, "parameters": [cid],
            "responses": {**ok(obj), **errors(401, 403, 404)}}},
        "/v1/captures/{capture_id}/packet.pdf": {"get": {
            "summary": "The signed evidence packet of a finished capture", "security": SECURED, "parameters": [cid],
            "responses": {"200": {"description": "PDF", "content": {"application/pdf": {}}},
                          **errors(401, 403, 404, 409)}}},
        "/v1/captures/{capture_id}/artefacts/{name}": {"get": {
            "summary": "One artefact of a finished capture", "security": SECURED,
            "parameters": [cid, path_param("name", "artefact name (manifest.json, capture.warc.gz, ...)")],
            "responses": {"200": {"description": "the artefact's bytes"}, **errors(401, 403, 404)}}},
    }


OPENAPI_PATHS = _openapi_paths()
