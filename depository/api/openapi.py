"""`GET /openapi.json`: OpenAPI 3.1 for every API route (a test compares it with Flask's URL map).

Each routes module that adds API paths declares them in its own `OPENAPI_PATHS` dict; this module merges
them, so a route and its description live side by side.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

bp = Blueprint("openapi", __name__)

PROBLEM = {"description": "RFC 9457 problem", "content": {"application/problem+json": {
    "schema": {"$ref": "#/components/schemas/Problem"}}}}
HEX64 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
KIND = {"type": "string", "enum": ["contract", "invoice", "license", "copyright", "web-capture", "other"]}
SECURED: list[dict[str, list[str]]] = [{"apiKey": []}]


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def ok(schema: dict[str, Any], description: str = "OK", status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, **json_body(schema)}}


def errors(*codes: int) -> dict[str, Any]:
    return {str(c): PROBLEM for c in codes}


def path_param(name: str, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


DEPOSIT_ID = path_param("deposit_id", "deposit id (dep_...)")
HASH_DEPOSIT = {
    "type": "object", "required": ["kind", "sha256", "sm3"], "additionalProperties": False,
    "properties": {"kind": KIND, "sha256": HEX64, "sm3": HEX64, "size": {"type": "integer", "minimum": 0},
                   "filename": {"type": "string", "minLength": 1, "maxLength": 255},
                   "content_type": {"type": "string"}, "metadata": {"type": "object"},
                   "matter": {"type": "string"}, "follows": {"type": "string"}},
}
DEPOSIT = {"type": "object", "required": ["id", "kind", "sha256", "sm3", "leaf_index", "status", "received"],
           "properties": {"id": {"type": "string"}, "kind": KIND, "sha256": HEX64, "sm3": HEX64,
                          "size": {"type": ["integer", "null"]}, "leaf_index": {"type": "integer"},
                          "received": {"type": "string", "format": "date-time"},
                          "status": {"type": "string", "enum": ["pending", "sequenced", "timestamped", "witnessed"]},
                          "metadata": {"type": "object"}}}
WAIT = {"name": "wait", "in": "query", "required": False,
        "schema": {"type": "number", "minimum": 0, "maximum": 30},
        "description": "seconds to wait for the deposit to be in a checkpoint"}
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
               "schema": {"type": "string", "minLength": 1, "maxLength": 255}}

CORE_PATHS: dict[str, Any] = {
    "/v1/deposits": {
        "post": {"summary": "Deposit a file (multipart) or its hashes (JSON)", "security": SECURED,
                 "parameters": [WAIT, IDEMPOTENCY],
                 "requestBody": {"required": True, "content": {
                     "application/json": {"schema": HASH_DEPOSIT},
                     "multipart/form-data": {"schema": {"type": "object", "required": ["file", "kind"], "properties": {
                         "file": {"type": "string", "format": "binary"}, "kind": KIND,
                         "metadata": {"type": "string", "description": "JSON object"},
                         "matter": {"type": "string"}, "follows": {"type": "string"}}}}}},
                 "responses": {**ok(DEPOSIT, "Committed (acknowledged)", "201"),
                               **errors(400, 401, 403, 409, 413, 422, 429, 503)}},
        "get": {"summary": "Find the caller's deposits", "security": SECURED, "parameters": [
            {"name": "sha256", "in": "query", "schema": HEX64},
            {"name": "matter", "in": "query", "schema": {"type": "string"}},
            {"name": "kind", "in": "query", "schema": KIND},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
            "responses": {**ok({"type": "object", "properties": {"deposits": {"type": "array", "items": DEPOSIT}}}),
                          **errors(400, 401, 403)}},
    },
    "/v1/deposits/batch": {
        "post": {"summary": "Deposit up to 10,000 hash-only deposits in one transaction", "security": SECURED,
                 "parameters": [WAIT, IDEMPOTENCY],
                 "requestBody": {"required": True, **json_body({
                     "type": "object", "required": ["deposits"], "additionalProperties": False,
                     "properties": {"deposits": {"type": "array", "minItems": 1, "maxItems": 10000,
                                                 "items": HASH_DEPOSIT}}})},
                 "responses": {**ok({"type": "object", "properties": {"deposits": {"type": "array", "items": DEPOSIT}}},
                                    "Committed, in the order sent", "201"),
                               **errors(400, 401, 403, 409, 413, 422, 429, 503)}},
    },
    "/v1/deposits/{deposit_id}": {"get": {
        "summary": "A deposit and its status", "security": SECURED, "parameters": [DEPOSIT_ID],
        "responses": {**ok(DEPOSIT), **errors(401, 403, 404)}}},
    "/v1/deposits/{deposit_id}/proof": {"get": {
        "summary": "The proof bundle (evidence-proof/v1)", "security": SECURED, "parameters": [DEPOSIT_ID],
        "responses": {**ok({"$ref": "#/components/schemas/ProofBundle"}), **errors(401, 403, 404, 409)}}},
    "/v1/deposits/{deposit_id}/packet.pdf": {"get": {
        "summary": "The signed evidence packet (PDF)", "security": SECURED, "parameters": [DEPOSIT_ID],
        "responses": {"200": {"description": "PDF", "content": {"application/pdf": {}}},
                      **errors(401, 403, 404, 409)}}},
    "/v1/matters/{ref}": {"get": {
        "summary": "A matter's deposits in order, with their proofs", "security": SECURED,
        "parameters": [path_param("ref", "matter reference")],
        "responses": {**ok({"type": "object"}), **errors(401, 403, 404)}}},
    "/v1/log/keys": {"get": {"summary": "Verifier keys, SM2 public key, witness policy, CA certificates",
                             "responses": ok({"type": "object"})}},
    "/checkpoint": {"get": {"summary": "Latest checkpoint (C2SP signed note with cosignatures)",
                            "responses": {"200": {"description": "signed note",
                                                  "content": {"text/plain": {}}}, **errors(404)}}},
    "/tile/{rest}": {"get": {"summary": "C2SP tlog-tiles hash tile, e.g. 0/x001/234.p/8",
                             "parameters": [path_param("rest", "tile path after /tile/")],
                             "responses": {"200": {"description": "hashes",
                                                   "content": {"application/octet-stream": {}}}, **errors(404)}}},
    "/healthz": {"get": {"summary": "Health of database, log, witnesses, TSA",
                         "responses": {**ok({"type": "object"}), "503": {"description": "degraded"}}}},
    "/metrics": {"get": {"summary": "Prometheus metrics",
                         "responses": {"200": {"description": "text", "content": {"text/plain": {}}}}}},
    "/openapi.json": {"get": {"summary": "This document", "responses": ok({"type": "object"})}},
}

COMPONENTS = {
    "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "dpk_... API key"}},
    "schemas": {
        "Problem": {"type": "object", "required": ["type", "title", "status"], "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"}, "instance": {"type": "string"}}},
        "ProofBundle": {"type": "object", "required": ["format", "deposit_id", "leaf_data", "leaf_index", "tree_size",
                                                       "inclusion_proof", "checkpoint"],
                        "properties": {"format": {"const": "evidence-proof/v1"}}},
    },
}


def _with_common_errors(op: dict[str, Any]) -> dict[str, Any]:
    """What any operation may answer besides its own codes: 405 to another method (TRACE included), 400
    for a NUL byte in the path or query, 415 to a body of another content type, 429 when rate-limited."""
    extra = [400, 405]
    if "requestBody" in op:
        extra.append(415)
    if op.get("security"):
        extra.append(429)
    return {**op, "responses": {**errors(*extra), **op["responses"]}}


def document(extra_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    paths = dict(CORE_PATHS)
    paths.update(extra_paths or {})
    paths = {p: {m: _with_common_errors(op) for m, op in ops.items()} for p, ops in paths.items()}
    return {"openapi": "3.1.0",
            "info": {"title": "Evidence depository API", "version": "1",
                     "description": "Deposits, proofs and evidence packets; errors are RFC 9457 problem+json."},
            "paths": paths, "components": COMPONENTS}


@bp.get("/openapi.json")
def openapi() -> Response:
    extra: dict[str, Any] = {}
    for module in current_app.extensions.get("openapi_paths", []):
        extra.update(module)
    return jsonify(document(extra))
