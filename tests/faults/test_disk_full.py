"""The content store's disk is full: a tenant that keeps its files (store_content) uploads to a server
whose content directory is a 512 KiB tmpfs mounted for this test (we are root here, as in CI). The
upload that does not fit gets a clean 507 problem+json, and nothing of it remains: no deposit, no log
entry, no file or temporary file in the store. Small files still go in, and everything acknowledged is
in the log exactly once."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

from depository.client import ClientError, DepositoryClient
from tests.faults.harness import tenant_key, verify_after_fault
from tests.procs import Proc, cli_env, free_port, run_cli


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_content_store_disk_full_gives_507_and_leaves_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home, batch_interval_ms="50")
    run_cli(["init"], env)
    content = home / "content"
    content.mkdir(exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(content)],
                             capture_output=True, text=True, check=False)
    assert mounted.returncode == 0, f"cannot mount a tmpfs (root is needed): {mounted.stderr}"
    server = None
    try:
        key = tenant_key(env, "Rights Holder", "--store-content")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = Proc(["serve", "--port", str(port), "--workers", "1"], env, tmp_path / "serve.log")
        server.wait_http(url + "/healthz")
        client = DepositoryClient(url, key)
        acked: dict[str, dict] = {}
        small = tmp_path / "small.bin"
        small.write_bytes(secrets.token_bytes(100 * 1024))
        d = client.deposit_file(small, "other")
        acked[d["id"]] = d
        before = _files(content)
        sequenced_before = _sequenced(url)

        big = tmp_path / "big.bin"
        big.write_bytes(secrets.token_bytes(2 * 1024 * 1024))
        try:
            client.deposit_file(big, "other")
            raise AssertionError("a 2 MiB file fitted into a 512 KiB store")
        except ClientError as e:
            assert e.status == 507, e
            assert e.type.endswith("insufficient-storage"), e.type
            print(f"disk full answered: {e}")
        assert _files(content) == before, "a half-written file was left in the content store"
        assert _sequenced(url) == sequenced_before, "the refused deposit reached the log"
        assert not client.find_by_sha256(_sha256(big)), "the refused deposit exists"

        for _ in range(2):  # the store still takes what fits
            small.write_bytes(secrets.token_bytes(50 * 1024))
            d = client.deposit_file(small, "other")
            acked[d["id"]] = d
        assert "Traceback" not in server.log_path.read_text()
        verify_after_fault(env, acked, "content store full")  # while the server still integrates
    finally:
        if server is not None:
            server.stop()
        subprocess.run(["umount", "-l", str(content)], check=False)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sequenced(url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("depository_sequenced_total "))


