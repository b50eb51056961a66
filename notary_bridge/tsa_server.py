"""HTTP transport for the TSA core (RFC 3161 §3.4): `POST /` or `POST /tsa`, DER in, DER out.

The server is thin on purpose: `notary_bridge.tsa.answer_request` is the TSA; this module only moves
bytes. `application/timestamp-query` in, `application/timestamp-reply` out. A body that is not a
TimeStampReq gets HTTP 400 with an RFC 9457 problem+json body (a client bug must not look like a TSA
outage, so never 500); a request we decline to stamp gets HTTP 200 with a `rejection` TimeStampResp, as
RFC 3161 has it.

Home layout (`depository tsa serve` and the demo; `init_tsa_material` creates it):

    <home>/tsa/tsa-key.pem     the TSA's private key (PKCS#8, mode 0600)
    <home>/tsa/tsa-cert.pem    its certificate (EKU timeStamping, critical), issued by:
    <home>/tsa/tsa-ca.pem      the root that verifiers trust (`openssl ts -verify -CAfile`)

The demo CA's private key is deliberately not kept: it exists only to issue this one certificate, and
keeping it beside the TSA key would let anyone who reads the home mint a second "trusted" TSA.

Tests start a server with `ServerThread(create_app(core))` on an ephemeral port on 127.0.0.1 and stop it
with `stop()` (or a `with` block), which shuts the loop down, closes the socket and joins the thread.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from notary_bridge import pki, serving
from notary_bridge.errors import TimestampError
from notary_bridge.tsa import QUERY_TYPE, REPLY_TYPE, TimestampRequestError, TsaCore, answer_request

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "ServerThread",
    "TsaMaterial",
    "create_app",
    "init_tsa_material",
    "load_core",
    "run_tsa_server",
    "serve",
    "tsa_material",
]

log = logging.getLogger(__name__)

PATHS = ("/", "/tsa")
# A TimeStampReq is ~100 bytes; anything near this size is not one.
MAX_REQUEST_BYTES = 64 * 1024


class TsaApp:
    """The WSGI application around one `TsaCore`."""

    def __init__(self, core: TsaCore) -> None:
        self.core = core

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route, check the media type and size, and hand the body to the core."""
        if request.path not in PATHS:
            return _problem(404, "Not Found", f"no TSA at {request.path}; POST to / or /tsa")
        if request.method != "POST":
            response = _problem(405, "Method Not Allowed", "POST a DER TimeStampReq")
            response.headers["Allow"] = "POST"
            return response
        if request.mimetype != QUERY_TYPE:
            return _problem(415, "Unsupported Media Type", f"Content-Type must be {QUERY_TYPE}")
        too_large = _problem(
            413, "Content Too Large", f"a TimeStampReq is far below {MAX_REQUEST_BYTES} bytes"
        )
        if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
            return too_large
        body = request.get_data(cache=False)
        if len(body) > MAX_REQUEST_BYTES:
            return too_large
        try:
            reply = answer_request(body, self.core)
        except TimestampRequestError as e:
            log.info("TSA: bad request from %s: %s", request.remote_addr, e.diagnostics())
            return _problem(400, "Bad Request", e.diagnostics())
        return Response(reply, status=200, mimetype=REPLY_TYPE)


def create_app(core: TsaCore) -> TsaApp:
    """The WSGI app serving `core` (gunicorn, werkzeug, or `ServerThread` in tests)."""
    return TsaApp(core)


def _problem(status: int, title: str, detail: str) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


class ServerThread(serving.ServerThread):
    """The TSA app on a background thread (see `serving.ServerThread`); its URL ends in `/`."""

    def __init__(self, app: TsaApp, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(app, host, port, name="tsa-http")

    @property
    def url(self) -> str:
        return super().url + "/"


def serve(host: str, port: int, core: TsaCore) -> None:
    """Serve `core` on host:port until interrupted (blocking; the CLI's `tsa serve`)."""
    server = make_server(host, port, create_app(core), threaded=True)
    log.info("TSA listening on http://%s:%d/", host, server.server_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("TSA stopping")
    finally:
        server.server_close()


@dataclass(frozen=True)
class TsaMaterial:
    """Where a home keeps the TSA's key and certificates."""

    key_path: Path
    cert_path: Path
    ca_path: Path

    def all_exist(self) -> bool:
        return all(p.exists() for p in (self.key_path, self.cert_path, self.ca_path))

    def any_exist(self) -> bool:
        return any(p.exists() for p in (self.key_path, self.cert_path, self.ca_path))


def tsa_material(home_dir: Path) -> TsaMaterial:
    """The TSA file paths inside a home (see the module docstring)."""
    base = Path(home_dir) / "tsa"
    return TsaMaterial(base / "tsa-key.pem", base / "tsa-cert.pem", base / "tsa-ca.pem")


def init_tsa_material(home_dir: Path, name: str, key_type: pki.KeyType = "ec-p256") -> TsaMaterial:
    """Create the TSA key, certificate and CA in the home if they are missing; idempotent.

    All three files exist or none is written: a half-written set would pair a key with the wrong
    certificate. If only some exist, refuse (TimestampError) rather than overwrite a key that may
    already have signed tokens. ECDSA P-256 by default: OpenSSL 3.0 verifies ECDSA and RSA tokens but
    not Ed25519 ones.
    """
    material = tsa_material(home_dir)
    if material.all_exist():
        return material
    if material.any_exist():
        raise TimestampError(
            f"TSA material in {material.key_path.parent} is incomplete; "
            "refusing to overwrite it (move the directory away to start over)"
        )
    material.key_path.parent.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = pki.make_ca(f"{name} TSA Root CA", key_type)
    tsa_key, tsa_cert = pki.make_tsa_cert(ca_key, ca_cert, f"{name} TSA", key_type)
    serving.write_atomic(material.ca_path, ca_cert, 0o644)
    serving.write_atomic(material.cert_path, tsa_cert, 0o644)
    serving.write_atomic(material.key_path, tsa_key, 0o600)
    log.info("created TSA material in %s", material.key_path.parent)
    return material


def load_core(home_dir: Path) -> TsaCore:
    """The TSA core for a home's material; TimestampError if it was never initialised."""
    material = tsa_material(home_dir)
    if not material.all_exist():
        raise TimestampError(f"no TSA material in {material.key_path.parent}; run init_tsa_material first")
    cert_pem = material.cert_path.read_bytes()
    # tsa-ca.pem holds every root this home's TSA ever had (newest first, after a key rotation); tokens
    # embed only the issuer of the current certificate.
    issuer = x509.load_pem_x509_certificate(cert_pem).issuer
    roots = [c.public_bytes(serialization.Encoding.PEM)
             for c in x509.load_pem_x509_certificates(material.ca_path.read_bytes()) if c.subject == issuer]
    return TsaCore(material.key_path.read_bytes(), cert_pem, roots or [material.ca_path.read_bytes()])


def run_tsa_server(home_dir: Path, host: str, port: int) -> None:
    """Serve the home's TSA (`depository tsa serve --port P`); blocks until interrupted."""
    serve(host, port, load_core(home_dir))


