"""HTTP transport for the witness core (C2SP tlog-witness v1.0.0): `POST /add-checkpoint`, bytes only.

`notary_bridge.witness.Witness` is the witness; this module reads the body (bounded), hands it over and
writes the `Answer` back. The submission prefix is the root of the server's address, so a policy line
names the witness by `http://host:port` and clients POST to `<url>/add-checkpoint`.

`depository witness serve` runs `run_witness_server`, which creates the witness key and writes
`witness.vkey` *before* the socket listens, so whoever starts a witness can read its vkey as soon as the
port answers. Tests use `WitnessServerThread` on an ephemeral port on 127.0.0.1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from notary_bridge import serving
from notary_bridge.witness import MAX_BODY_BYTES, Answer, Witness, WitnessHome, load_witness

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["ADD_CHECKPOINT_PATH", "WitnessApp", "WitnessServerThread", "create_app", "run_witness_server"]

log = logging.getLogger(__name__)

ADD_CHECKPOINT_PATH = "/add-checkpoint"


class WitnessApp:
    """The WSGI application around one `Witness`."""

    def __init__(self, witness: Witness) -> None:
        self.witness = witness

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        response = self.dispatch(Request(environ))
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route and bound the body; the core decides everything else."""
        if request.path != ADD_CHECKPOINT_PATH:
            return _reply(Answer.text(404, f"no such endpoint {request.path}; POST {ADD_CHECKPOINT_PATH}"))
        if request.method != "POST":
            response = _reply(Answer.text(405, "POST a checkpoint"))
            response.headers["Allow"] = "POST"
            return response
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _reply(Answer.text(413, f"body larger than {MAX_BODY_BYTES} bytes"))
        # Read one byte past the limit so an unannounced (chunked) oversize body is caught too.
        body = request.stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            return _reply(Answer.text(413, f"body larger than {MAX_BODY_BYTES} bytes"))
        try:
            answer = self.witness.add_checkpoint(body)
        except Exception:
            # A bug or a broken disk: never cosign, never pretend the client erred.
            log.exception("witness failed on a request from %s", request.remote_addr)
            answer = Answer.text(500, "internal error; nothing was cosigned")
        if answer.status != 200:
            log.info("witness: %d for %s: %s", answer.status, request.remote_addr,
                     answer.body[:200].decode(errors="replace").strip())
        return _reply(answer)


def _reply(answer: Answer) -> Response:
    response = Response(answer.body, status=answer.status, content_type=answer.content_type)
    response.headers["Cache-Control"] = "no-store"
    return response


def create_app(witness: Witness) -> WitnessApp:
    return WitnessApp(witness)


class WitnessServerThread(serving.ServerThread):
    """A witness on a background thread (see `serving.ServerThread`); `url` is the submission prefix
    (no trailing slash), as a policy `witness` line carries it."""

    def __init__(self, app: WitnessApp, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(app, host, port, name="witness-http")


def run_witness_server(
    home: Path,
    name: str,
    host: str,
    port: int,
    log_vkeys: Sequence[str],
    *,
    sm2: bool = False,
    ready: Callable[[str, str], None] | None = None,
) -> None:
    """`depository witness serve`: keys first (vkey on disk), then listen; blocks until interrupted.

    `ready(url, vkey)` is called once the socket is bound (the CLI prints it).
    """
    witness = load_witness(home, name, log_vkeys, sm2=sm2)
    vkey = WitnessHome(Path(home)).vkey.read_text(encoding="utf-8").strip()
    server = make_server(host, port, create_app(witness), threaded=True)
    url = f"http://{host}:{server.server_port}"
    log.info("witness %s listening on %s", name, url)
    if ready is not None:
        ready(url, vkey)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("witness stopping")
    finally:
        server.server_close()
