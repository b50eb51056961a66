"""The witness over real HTTP on 127.0.0.1: conformance of every status, restart, the CLI, the client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from evidence.cosignature import parse_witness_key, verify_cosignature
from evidence.note import verify_note
from notary_bridge.errors import WitnessError
from notary_bridge.witness import MAX_BODY_BYTES, AddCheckpointRequest, load_witness
from notary_bridge.witness_client import WitnessClient, WitnessConflict, WitnessRefused
from notary_bridge.witness_server import WitnessServerThread, create_app
from tests.unit.notary_bridge.test_witness import TinyLog

NAME = "court.example/witness"


@pytest.fixture
def tiny() -> TinyLog:
    return TinyLog()


@pytest.fixture
def server(tmp_path: Path, tiny: TinyLog) -> Iterator[WitnessServerThread]:
    with WitnessServerThread(create_app(load_witness(tmp_path / "w", NAME, [tiny.vkey]))) as srv:
        yield srv


@pytest.fixture
def client(server: WitnessServerThread) -> Iterator[WitnessClient]:
    with WitnessClient(server.url) as c:
        yield c


def post(url: str, body: bytes) -> requests.Response:
    with requests.Session() as s:
        return s.post(url + "/add-checkpoint", data=body, timeout=5)


def test_every_status_over_http(tmp_path: Path, server: WitnessServerThread, tiny: TinyLog) -> None:
    vkey = (tmp_path / "w" / "witness.vkey").read_text().strip()
    r = post(server.url, tiny.request(0, 5))
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    verify_cosignature(tiny.body(5), r.text, parse_witness_key(vkey))
    # The spec's client recipe: concatenate to the checkpoint and verify as a note.
    verified = verify_note(tiny.note(5) + r.text, [parse_witness_key(vkey)])
    assert verified.verified_names == {NAME}

    r = post(server.url, tiny.request(0, 7))
    assert (r.status_code, r.headers["Content-Type"], r.text) == (409, "text/x.tlog.size", "5\n")
    assert post(server.url, b"rubbish").status_code == 400
    assert post(server.url, AddCheckpointRequest(9, (), tiny.note(6)).to_bytes()).status_code == 400
    assert post(server.url, TinyLog(origin="nobody.example/log").request(0, 2)).status_code == 404
    assert post(server.url, TinyLog().request(0, 2)).status_code == 403
    assert post(server.url, b"old 0\n\n" + tiny.body(2).encode()).status_code == 403
    bad = AddCheckpointRequest(5, tuple(tiny.proof(4, 9)), tiny.note(9)).to_bytes()
    assert post(server.url, bad).status_code == 422
    proof_lines = b"".join(b"%s\n" % (b"A" * 43 + b"=") for _ in range(64))
    many = b"old 5\n" + proof_lines + b"\n" + tiny.note(9).encode()
    assert post(server.url, many).status_code == 400
    assert post(server.url, b"old 5\n" + b"A" * (MAX_BODY_BYTES + 10)).status_code == 413
    with requests.Session() as s:
        assert s.get(server.url + "/add-checkpoint", timeout=5).status_code == 405
        assert s.post(server.url + "/other", data=b"x", timeout=5).status_code == 404
    # Nothing but the first request changed the state.
    assert post(server.url, tiny.request(5, 5)).status_code == 200


def test_client_maps_statuses(client: WitnessClient, tiny: TinyLog) -> None:
    lines = client.add_checkpoint(0, [], tiny.note(3))
    assert len(lines) == 1 and lines[0].startswith("\u2014 " + NAME + " ")
    with pytest.raises(WitnessConflict) as conflict:
        client.add_checkpoint(0, [], tiny.note(4))
    assert conflict.value.size == 3
    assert client.add_checkpoint(3, tiny.proof(3, 4), tiny.note(4))
    with pytest.raises(WitnessRefused) as refused:
        client.add_checkpoint(4, tiny.proof(2, 6), tiny.note(6))
    assert refused.value.status == 422
    with pytest.raises(WitnessRefused) as refused:
        client.add_checkpoint(0, [], TinyLog(origin="x.example/log").note(1))
    assert refused.value.status == 404


def test_client_transport_error_is_witness_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with WitnessClient(f"http://127.0.0.1:{port}", timeout_s=1) as c, pytest.raises(WitnessError) as e:
        c.add_checkpoint(0, [], "x\n1\nAAAA\n\n— x AAAA\n")
    assert "request failed" in e.value.diagnostics()


def test_fork_never_cosigned_over_http(server: WitnessServerThread, tiny: TinyLog) -> None:
    evil = TinyLog(prefix=b"evil")
    evil.signer = tiny.signer
    assert post(server.url, tiny.request(0, 8)).status_code == 200
    for body in (evil.request(8, 8), evil.request(0, 8),
                 AddCheckpointRequest(8, tuple(evil.proof(8, 12)), evil.note(12)).to_bytes()):
        r = post(server.url, body)
        assert r.status_code in (409, 422)
        assert "\u2014" not in r.text


def test_restart_keeps_state(tmp_path: Path, tiny: TinyLog) -> None:
    home = tmp_path / "w"
    with WitnessServerThread(create_app(load_witness(home, NAME, [tiny.vkey]))) as srv:
        port = srv.port
        assert post(srv.url, tiny.request(0, 10)).status_code == 200
    vkey = (home / "witness.vkey").read_text()
    with WitnessServerThread(create_app(load_witness(home, NAME, [tiny.vkey])), port=port) as srv:
        r = post(srv.url, tiny.request(0, 4))  # a rollback attempt after the restart
        assert (r.status_code, r.text) == (409, "10\n")
        r = post(srv.url, tiny.request(10, 11))
        assert r.status_code == 200
        verify_cosignature(tiny.body(11), r.text, parse_witness_key(vkey.strip()))
    assert (home / "witness.vkey").read_text() == vkey


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_witness_serve(tmp_path: Path, tiny: TinyLog) -> None:
    """`depository witness serve`: vkey on disk before the port answers; state survives a restart."""
    home = tmp_path / "wit"
    port = _free_port()
    cmd = [sys.executable, "-m", "cli.main", "witness", "serve", "--home", str(home), "--name", NAME,
           "--port", str(port), "--log", tiny.vkey, "--sm2"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for round_ in range(2):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            assert (home / "witness.vkey").is_file() and (home / "witness-sm2.vkey").is_file()
            old, new = (0, 3) if round_ == 0 else (3, 5)
            r = post(f"http://127.0.0.1:{port}", tiny.request(old, new))
            assert r.status_code == 200, r.text
            ed, sm2 = r.text.splitlines(keepends=True)
            verify_cosignature(tiny.body(new), ed,
                               parse_witness_key((home / "witness.vkey").read_text().strip()))
            verify_cosignature(tiny.body(new), sm2,
                               parse_witness_key((home / "witness-sm2.vkey").read_text().strip()))
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            finally:
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
    assert proc.returncode in (0, 130)


def test_cli_witness_serve_bad_log_key(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "cli.main", "witness", "serve", "--home", str(tmp_path),
                        "--name", NAME, "--port", "0", "--log", "garbage"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0
    assert r.stderr.strip().startswith("error:") and "--log" in r.stderr


def test_sm2_cosignature_verifies_with_openssl(tmp_path: Path, tiny: TinyLog) -> None:
    """The docs/formats.md recipe: an SM2 cosignature checked with `openssl pkeyutl` and nothing of ours."""
    import base64

    w = load_witness(tmp_path / "w", NAME, [tiny.vkey], sm2=True)
    answer = w.add_checkpoint(tiny.request(0, 6))
    assert answer.status == 200
    sm2_line = answer.body.decode().splitlines()[1]
    blob = base64.b64decode(sm2_line.split(" ")[2])
    timestamp = int.from_bytes(blob[4:12], "big")
    (tmp_path / "sig.der").write_bytes(blob[12:])
    (tmp_path / "msg.bin").write_bytes(b"cosignature/v1\ntime %d\n" % timestamp + tiny.body(6).encode())
    cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "w" / "witness-sm2.pem"),
           "-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678",
           "-in", str(tmp_path / "msg.bin"), "-sigfile", str(tmp_path / "sig.der")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "Signature Verified Successfully" in r.stdout, r.stdout + r.stderr
    # A different body does not verify.
    (tmp_path / "msg.bin").write_bytes(b"cosignature/v1\ntime %d\n" % timestamp + tiny.body(5).encode())
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
