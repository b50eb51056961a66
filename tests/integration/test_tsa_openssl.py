"""RFC 3161 against real things on 127.0.0.1: our TSA server checked by OpenSSL, OpenSSL's TSA checked by us.

Servers run on ephemeral ports in threads and are stopped (shutdown, socket closed, thread joined) by
their fixtures; OpenSSL runs as a subprocess.
"""

from __future__ import annotations

import hashlib
import http.server
import logging
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from asn1crypto import tsp
from werkzeug.wrappers import Request, Response

from evidence.timestamp import parse_token, verify_token
from notary_bridge import pki
from notary_bridge.errors import TimestampError
from notary_bridge.tsa import FallbackTimeStamper, HttpTimeStamper, TimeStampResp, TsaCore, answer_request
from notary_bridge.tsa_server import ServerThread, TsaApp, create_app, init_tsa_material, load_core

BODY = b"example.com/log\n42\nq6X2nS0iL6o5QyFHcH+X0mDYH9pa6rAgM5xQ3h3q5A0=\n"
DIGEST = hashlib.sha256(BODY).digest()
OPENSSL_POLICY = "1.3.6.1.4.1.32473.3161.99"


def _openssl_verify(args: list[str], token: Path, ca: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "ts", "-verify", *args, "-in", str(token), "-token_in", "-CAfile", str(ca)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        init_tsa_material(Path(tmp), "Integration")
        yield Path(tmp)


@pytest.fixture(scope="module")
def our_tsa(home: Path) -> Iterator[ServerThread]:
    with ServerThread(create_app(load_core(home))) as server:
        yield server


def test_our_tsa_over_http_verified_by_openssl(our_tsa: ServerThread, home: Path, tmp_path: Path) -> None:
    ca_path = home / "tsa" / "tsa-ca.pem"
    stamper = HttpTimeStamper(our_tsa.url + "tsa", ca_path.read_bytes(), timeout=5)
    token = stamper.timestamp(DIGEST, "sha256")
    token_path = tmp_path / "token.tsr"
    token_path.write_bytes(token)
    body_path = tmp_path / "body.txt"
    body_path.write_bytes(BODY)

    by_digest = _openssl_verify(["-digest", DIGEST.hex()], token_path, ca_path)
    assert by_digest.returncode == 0, by_digest.stderr
    assert "Verification: OK" in by_digest.stdout
    by_data = _openssl_verify(["-data", str(body_path)], token_path, ca_path)
    assert by_data.returncode == 0, by_data.stderr
    assert "Verification: OK" in by_data.stdout

    other = hashlib.sha256(BODY + b"x").hexdigest()
    wrong = _openssl_verify(["-digest", other], token_path, ca_path)
    assert wrong.returncode != 0
    assert "Verification: OK" not in wrong.stdout
    _, other_ca = pki.make_ca("Stranger Root")
    other_ca_path = tmp_path / "other-ca.pem"
    other_ca_path.write_bytes(other_ca)
    stranger = _openssl_verify(["-digest", DIGEST.hex()], token_path, other_ca_path)
    assert stranger.returncode != 0


def test_our_tsa_answers_garbage_with_400(our_tsa: ServerThread) -> None:
    with requests.Session() as s:
        r = s.post(
            our_tsa.url, data=b"nope", headers={"Content-Type": "application/timestamp-query"}, timeout=5
        )
    assert r.status_code == 400
    assert r.headers["Content-Type"].startswith("application/problem+json")


def test_http_timestamper_rejects_a_tsa_under_another_ca(
    our_tsa: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    _, other_ca = pki.make_ca("Stranger Root")
    with caplog.at_level(logging.WARNING, logger="notary_bridge.tsa"):
        with pytest.raises(TimestampError, match="TSA certificate chain"):
            HttpTimeStamper(our_tsa.url, other_ca, timeout=5).timestamp(DIGEST, "sha256")
    assert "does not verify" in caplog.text


class _ReplayApp(TsaApp):
    """A TSA that answers every request with its first reply: a replay the nonce and imprint must catch."""

    def __init__(self, core: TsaCore) -> None:
        super().__init__(core)
        self.first: bytes | None = None

    def dispatch(self, request: Request) -> Response:
        if self.first is None:
            self.first = answer_request(request.get_data(), self.core)
        return Response(self.first, mimetype="application/timestamp-reply")


def test_http_timestamper_catches_a_replayed_token(home: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca = (home / "tsa" / "tsa-ca.pem").read_bytes()
    app = _ReplayApp(load_core(home))
    with ServerThread(app) as server:
        stamper = HttpTimeStamper(server.url, ca, timeout=5)
        stamper.timestamp(DIGEST, "sha256")
        with caplog.at_level(logging.WARNING, logger="notary_bridge.tsa"):
            with pytest.raises(TimestampError, match="nonce: got"):
                stamper.timestamp(DIGEST, "sha256")
            with pytest.raises(TimestampError, match="message imprint"):
                stamper.timestamp(hashlib.sha256(b"other").digest(), "sha256")
    assert "does not verify" in caplog.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fallback_skips_a_closed_port(our_tsa: ServerThread, home: Path) -> None:
    ca = (home / "tsa" / "tsa-ca.pem").read_bytes()
    dead = HttpTimeStamper(f"http://127.0.0.1:{_free_port()}/", ca, timeout=2)
    with pytest.raises(TimestampError, match="request failed"):
        dead.timestamp(DIGEST, "sha256")
    token = FallbackTimeStamper([dead, HttpTimeStamper(our_tsa.url, ca, timeout=5)]).timestamp(
        DIGEST, "sha256"
    )
    assert verify_token(token, DIGEST, "sha256", [ca]).message_imprint == DIGEST


# --- OpenSSL's own TSA (`openssl ts -reply`) behind a tiny HTTP handler ------------------------------

OPENSSL_CNF = """\
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa-cert.pem
certs = $dir/tsa-ca.pem
signer_key = $dir/tsa-key.pem
signer_digest = sha256
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 3
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class _OpenSslTsaHandler(http.server.BaseHTTPRequestHandler):
    """POST body -> `openssl ts -reply -queryfile` -> reply body. One subprocess per request."""

    config: Path
    lock = threading.Lock()  # OpenSSL's serial file is not safe for concurrent writers

    def do_POST(self) -> None:
        query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with self.lock, tempfile.TemporaryDirectory() as tmp:
            qpath, rpath = Path(tmp) / "q.tsq", Path(tmp) / "r.tsr"
            qpath.write_bytes(query)
            done = subprocess.run(
                [
                    "openssl",
                    "ts",
                    "-reply",
                    "-queryfile",
                    str(qpath),
                    "-config",
                    str(self.config),
                    "-out",
                    str(rpath),
                ],
                capture_output=True,
                timeout=30,
                check=False,
            )
            reply = rpath.read_bytes() if done.returncode == 0 and rpath.exists() else b""
        if not reply:
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test asserts on outcomes, not access logs."""


@pytest.fixture(scope="module", params=["ec-p256", "rsa-2048"])
def openssl_tsa(request: pytest.FixtureRequest) -> Iterator[tuple[str, bytes]]:
    key_type = request.param
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        ca_key, ca_cert = pki.make_ca(f"OpenSSL TSA Root {key_type}", key_type)
        key, cert = pki.make_tsa_cert(ca_key, ca_cert, f"OpenSSL TSA {key_type}", key_type)
        (d / "tsa-ca.pem").write_bytes(ca_cert)
        (d / "tsa-cert.pem").write_bytes(cert)
        (d / "tsa-key.pem").write_bytes(key)
        (d / "serial").write_text("01\n")
        (d / "openssl.cnf").write_text(OPENSSL_CNF.format(dir=d, policy=OPENSSL_POLICY))
        handler = type("Handler", (_OpenSslTsaHandler,), {"config": d / "openssl.cnf"})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, name="openssl-tsa", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}/", ca_cert
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def test_http_timestamper_verifies_openssl_tokens(openssl_tsa: tuple[str, bytes]) -> None:
    url, ca = openssl_tsa
    stamper = HttpTimeStamper(url, ca, timeout=10, policy_oid=OPENSSL_POLICY)
    for body in (BODY, b"second"):
        digest = hashlib.sha256(body).digest()
        token = stamper.timestamp(digest, "sha256")
        info = verify_token(token, digest, "sha256", [ca])
        assert info.policy_oid == OPENSSL_POLICY
        assert info.tsa_cert is not None
    sha512 = hashlib.sha512(BODY).digest()
    assert parse_token(stamper.timestamp(sha512, "sha512")).hash_algorithm == "sha512"


def test_openssl_rejection_becomes_timestamp_error(openssl_tsa: tuple[str, bytes]) -> None:
    url, ca = openssl_tsa
    # OpenSSL's TSA refuses a policy it does not serve with a `rejection` carrying no token.
    with pytest.raises(TimestampError, match="status rejection"):
        HttpTimeStamper(url, ca, timeout=10, policy_oid="1.2.3.4.5").timestamp(DIGEST, "sha256")


def test_openssl_rejection_parses_with_optional_token() -> None:
    resp = TimeStampResp({"status": {"status": "rejection", "fail_info": {"bad_alg"}}})
    assert TimeStampResp.load(resp.dump())["time_stamp_token"].native is None
    assert tsp.PKIStatus("rejection").native == "rejection"
