"""Deposits API: intake (file, hash-only, batch), lookup, proofs and matters.

Every read is scoped to the caller's tenant, and a deposit of another tenant answers 404 exactly like a
missing one (existence does not leak).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, jsonify, request

from depository.api.auth import principal
from depository.api.params import UnsupportedMediaType, body_bytes, paging
from depository.deposits import Deposit, DepositRequest, merge_refs, request_fingerprint
from depository.errors import BadRequest, ValidationFailed
from depository.inputs import MAX_JSON_DEPTH, check_json_depth
from depository.kinds import REF_RE, validate_metadata
from depository.proofs import build_proof
from depository.uploads import HashingSpool, deposit_spooled_file
from depository.wiring import Services
from evidence.leaf import KINDS

bp = Blueprint("deposits", __name__)
MAX_WAIT_S = 30.0


def services() -> Services:
    services_: Services = current_app.extensions["depository"]
    return services_


HALT_NOTICE = ("integration is halted: the stored log failed its check before signing, so no new checkpoint "
               "is signed; this deposit is durably recorded and will be integrated once an audit passes")


@bp.after_request
def _say_if_halted(resp: Response) -> Response:
    """While integration is halted (depository.integrity), every deposit answer says so: a header on each,
    and a `notice` member in JSON object bodies of successful answers. Stored idempotent answers are
    replayed byte for byte; they get the header only."""
    try:
        halt = services().log.halts.current()
    except Exception:  # the database is away: the route has answered already (and /healthz says so)
        return resp
    if halt is None:
        return resp
    resp.headers["Depository-Integration"] = f'halted; since="{halt.raised_at.isoformat()}"'
    if resp.status_code < 300 and resp.mimetype == "application/json" and "Idempotent-Replayed" not in resp.headers:
        body = orjson.loads(resp.get_data())
        if isinstance(body, dict):
            body["notice"] = HALT_NOTICE
            resp.set_data(orjson.dumps(body))
    return resp


def _wait_arg() -> float:
    raw = request.args.get("wait")
    if raw is None:
        return 0.0
    try:
        wait = float(raw)
    except ValueError as e:
        raise BadRequest("wait must be a number of seconds") from e
    if not 0 <= wait <= MAX_WAIT_S:
        raise BadRequest(f"wait must be between 0 and {MAX_WAIT_S:g} seconds")
    return wait


def _json_body() -> Any:
    """The body as JSON (orjson: several times faster than the stdlib on a 10,000-deposit batch, and it
    refuses what JSON forbids, such as NaN or lone surrogates). Integers beyond 64 bits become doubles, the
    numbers RFC 8785 (and so the leaf's meta hash) knows."""
    raw = body_bytes()
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"request body is not valid JSON: {e}") from e
    # Deposit metadata nests at most MAX_JSON_DEPTH (validate_metadata), plus the batch's two levels.
    check_json_depth(value, "the request body", MAX_JSON_DEPTH + 3)
    return value


def _json_response(obj: Any, status: int) -> Response:
    return Response(orjson.dumps(obj), status=status, mimetype="application/json")


def _with_status(deps: list[Deposit]) -> list[dict[str, Any]]:
    s = services()
    statuses = s.deposits_status([d.leaf_index for d in deps])
    out = []
    for d in deps:
        d.status = statuses[d.leaf_index]
        out.append(d.to_json())
    return out


def _idempotency(body: bytes) -> tuple[str, bytes] | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise BadRequest("Idempotency-Key must be 1 to 255 printable characters")
    return key, request_fingerprint(request.path.encode() + b"\0" + body)


def _finish(result: Any, status: int, wrap: Any) -> Response:
    if isinstance(result, tuple):  # an idempotent replay: the stored answer, byte for byte
        code, body = result
        resp = Response(body, status=code, mimetype="application/json")
        resp.headers["Idempotent-Replayed"] = "true"
        return resp
    deps: list[Deposit] = result
    wait = _wait_arg()
    if wait and deps:
        services().log.wait_for_size(max(d.leaf_index for d in deps) + 1, wait)
        items = _with_status(deps)
    else:
        items = [_plain(d) for d in deps]  # just committed: pending (no queries on the hot path)
    resp = jsonify(wrap(items))
    resp.status_code = status
    return resp


@bp.post("/v1/deposits")
def create_deposit() -> Response:
    p = principal("deposit")
    s = services()
    s.check_backpressure(p)
    ctype = request.mimetype
    if ctype == "multipart/form-data":
        return _create_from_file(p.tenant_id)
    if ctype != "application/json":
        raise UnsupportedMediaType("send multipart/form-data (file, kind, metadata) or application/json (hash only)")
    body = request.get_data(cache=True)
    req = DepositRequest.from_json(_json_body())
    idem = _idempotency(body)

    def answer(deps: list[Deposit]) -> tuple[int, str]:
        return 201, json.dumps(_plain(deps[0]))

    result = s.deposits.create_many(p.tenant_id, [req], idempotency=idem, response_builder=answer)
    return _finish(result, 201, lambda items: items[0])


def _plain(d: Deposit) -> dict[str, Any]:
    d.status = "pending"
    return d.to_json()


def _create_from_file(tenant_id: str) -> Response:
    s = services()
    upload = request.files.get("file")
    if upload is None or not isinstance(upload.stream, HashingSpool):
        raise BadRequest("multipart deposit needs a 'file' part")
    kind = request.form.get("kind", "")
    if kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}")
    try:
        metadata = json.loads(request.form.get("metadata") or "{}")
    except RecursionError as e:
        raise ValidationFailed("metadata nests too deep") from e
    except ValueError as e:
        raise ValidationFailed(f"metadata is not valid JSON: {e}") from e
    metadata = merge_refs(metadata, request.form.get("matter") or None, request.form.get("follows") or None)
    validate_metadata(kind, metadata)
    spool: HashingSpool = upload.stream
    h = spool.hasher
    idem = _idempotency(b"file\0" + h.sha256 + h.sm3 + json.dumps(metadata, sort_keys=True).encode())

    def answer(deps: list[Deposit]) -> tuple[int, str]:
        return 201, json.dumps(_plain(deps[0]))

    result = deposit_spooled_file(s, tenant_id, upload, kind, metadata, idempotency=idem, response_builder=answer)
    return _finish(result, 201, lambda items: items[0])


@bp.post("/v1/deposits/batch")
def create_batch() -> Response:
    p = principal("deposit")
    s = services()
    s.check_backpressure(p)
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("send application/json: {\"deposits\": [...]}")
    body = request.get_data(cache=True)
    obj = _json_body()
    if not isinstance(obj, dict) or not isinstance(obj.get("deposits"), list) or set(obj) != {"deposits"}:
        raise ValidationFailed('the body must be {"deposits": [<hash-only deposit>, ...]}')
    items = obj["deposits"]
    if not 1 <= len(items) <= s.config.max_batch_deposits:
        raise ValidationFailed(f"a batch holds 1 to {s.config.max_batch_deposits} deposits; got {len(items)}")
    reqs = [DepositRequest.from_json(item, where=f"deposits[{i}]") for i, item in enumerate(items)]
    idem = _idempotency(body)

    def answer(deps: list[Deposit]) -> tuple[int, str]:
        return 201, orjson.dumps({"deposits": [d.summary("pending") for d in deps]}).decode()

    result = s.deposits.create_many(p.tenant_id, reqs, idempotency=idem, response_builder=answer)
    if isinstance(result, tuple):
        return _finish(result, 201, None)
    # A batch answer lists each deposit's identity and place, not its metadata echoed back 10,000 times.
    wait = _wait_arg()
    if wait and result:
        s.log.wait_for_size(max(d.leaf_index for d in result) + 1, wait)
    if wait:
        statuses = s.deposits_status([d.leaf_index for d in result])
        return _json_response({"deposits": [d.summary(statuses[d.leaf_index]) for d in result]}, 201)
    return _json_response({"deposits": [d.summary("pending") for d in result]}, 201)  # just committed


@bp.get("/v1/deposits/<deposit_id>")
def get_deposit(deposit_id: str) -> Response:
    p = principal("read")
    d = services().deposits.get(p.tenant_id, deposit_id)
    return jsonify(_with_status([d])[0])


@bp.get("/v1/deposits")
def find_deposits() -> Response:
    p = principal("read")
    sha256 = request.args.get("sha256")
    matter = request.args.get("matter")
    limit, offset = paging()
    if matter is not None and not REF_RE.match(matter):
        raise BadRequest("matter must be 1-128 characters of letters, digits and _.:/#-")
    kind = request.args.get("kind")
    if kind is not None and kind not in KINDS:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}")
    deps = services().deposits.find(p.tenant_id, sha256=sha256, matter=matter, kind=kind,
                                    limit=limit, offset=offset)
    return jsonify({"deposits": _with_status(deps)})


@bp.get("/v1/deposits/<deposit_id>/proof")
def get_proof(deposit_id: str) -> Response:
    p = principal("proof")
    s = services()
    d = s.deposits.get(p.tenant_id, deposit_id)
    return jsonify(build_proof(s, d))


@bp.get("/v1/matters/<path:ref>")
def get_matter(ref: str) -> Response:
    p = principal("read")
    s = services()
    deps = s.deposits.find(p.tenant_id, matter=ref, limit=1000) if REF_RE.match(ref) else []
    if not deps:
        from depository.errors import NotFound

        raise NotFound(f"no deposits in matter {ref}")
    items = _with_status(deps)
    want_proofs = request.args.get("proofs", "1") != "0"
    if want_proofs:
        for item, d in zip(items, deps, strict=True):
            item["proof"] = build_proof(s, d, allow_pending=True)
    return jsonify({"matter": ref, "deposits": items})


__all__ = ["bp"]
