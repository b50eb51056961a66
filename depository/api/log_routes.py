"""The log's public face: C2SP tlog-tiles read API (`/checkpoint`, `/tile/...`) and `/v1/log/keys`.

Entry bundles (`/tile/entries/...`) are deliberately not served: leaf data belongs to its depositor.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from depository.errors import NotFound
from depository.wiring import Services
from evidence import tiles
from evidence.errors import FormatError

bp = Blueprint("log", __name__)


def services() -> Services:
    services_: Services = current_app.extensions["depository"]
    return services_


@bp.get("/checkpoint")
def checkpoint() -> Response:
    cp = services().log.latest_checkpoint()
    note = services().notary_checkpoint_text(cp) if services().notary else cp.note
    resp = Response(note, mimetype="text/plain; charset=utf-8")
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/tile/<path:rest>")
def tile(rest: str) -> Response:
    try:
        coord = tiles.parse_tile_path("tile/" + rest)
    except FormatError as e:
        raise NotFound(f"not a tile path: {e}") from e
    data = services().log.tile_bytes(coord.level, coord.index, coord.width)
    resp = Response(data, mimetype="application/octet-stream")
    # Full tiles never change; partial ones are replaced by wider ones but a given width never changes.
    resp.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return resp


@bp.get("/v1/log/keys")
def keys() -> Response:
    return jsonify(services().public_keys())
