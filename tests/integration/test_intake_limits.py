"""Back-pressure and content at rest: per-key rate limits (429 + Retry-After, in-process and shared in
Redis), 503 + Retry-After when integration lags, and opted-in content encrypted with the tenant's key."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from depository.app import create_app
from depository.config import load_config
from depository.wiring import build_services, init_home
from tests.conftest import REDIS_URL, auth


def _hashes(i: int) -> dict[str, str]:
    return {"sha256": hashlib.sha256(str(i).encode()).hexdigest(), "sm3": "0" * 64}


@pytest.mark.parametrize("shared", [False, True])
def test_rate_limit_answers_429_with_retry_after(tmp_path: Path, shared: bool) -> None:
    settings: dict[str, Any] = {"rate_limit_per_second": 5, "rate_limit_burst": 5}
    if shared:  # key ids are random per test: no need to clear what other tests keep in this database
        settings["redis_url"] = REDIS_URL
    config = load_config(env={}, home=tmp_path / "h", **settings)
    init_home(config)
    s = build_services(config, notary=False)
    try:
        client = create_app(config, s).test_client()
        _, key = s.tenants.create("Busy")
        _, other = s.tenants.create("Quiet")
        codes = [client.post("/v1/deposits", headers=auth(key), json={"kind": "other", **_hashes(i)}).status_code
                 for i in range(12)]
        assert codes[:5] == [201] * 5 and 429 in codes[5:]
        resp = client.post("/v1/deposits", headers=auth(key), json={"kind": "other", **_hashes(99)})
        assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 1
        assert resp.mimetype == "application/problem+json"
        # another key is not affected
        assert client.post("/v1/deposits", headers=auth(other), json={"kind": "other", **_hashes(1)}).status_code == 201
    finally:
        if s.redis is not None:
            s.redis.close()
        s.close()


def test_integration_lag_sheds_load_with_503(tmp_path: Path) -> None:
    config = load_config(env={}, home=tmp_path / "h", max_pending_entries=100)
    init_home(config)
    s = build_services(config, notary=False)  # no integrator running: entries pile up
    try:
        client = create_app(config, s).test_client()
        _, key = s.tenants.create("P")
        items = [{"kind": "other", **_hashes(i)} for i in range(80)]
        assert client.post("/v1/deposits/batch", headers=auth(key), json={"deposits": items}).status_code == 201
        before = s.log.sizes()
        resp = client.post("/v1/deposits/batch", headers=auth(key), json={"deposits": items})
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "2"
        assert s.log.sizes() == before  # nothing half-written
        s.log.integrate(1000)
        assert client.post("/v1/deposits/batch", headers=auth(key), json={"deposits": items}).status_code == 201
    finally:
        s.close()


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "sm4-gcm"])
def test_opted_in_content_is_encrypted_at_rest(services: Any, client: Any, cipher: str) -> None:
    wrapped = services.content.new_tenant_key(cipher)
    tenant_id, key = services.tenants.create("Keeper", store_content=True, cipher=cipher, wrapped_content_key=wrapped)
    content = b"CONFIDENTIAL lease terms " * 200
    d = client.post("/v1/deposits", headers=auth(key), content_type="multipart/form-data",
                    data={"kind": "other", "file": (io.BytesIO(content), "lease.txt")}).json
    assert d["content_stored"] is True
    stored = next((services.config.home / "content" / tenant_id).glob("*.bin")).read_bytes()
    assert b"CONFIDENTIAL" not in stored and stored.startswith(b"DEPC1")
    assert services.content.read(tenant_id, d["id"], cipher, wrapped) == content
    # without opting in, nothing is kept
    _, key2 = services.tenants.create("Forgetful")
    d2 = client.post("/v1/deposits", headers=auth(key2), content_type="multipart/form-data",
                     data={"kind": "other", "file": (io.BytesIO(content), "x.txt")}).json
    assert d2["content_stored"] is False
    # the master key is not readable by others
    assert (services.config.home / "keys" / "master.key").stat().st_mode & 0o077 == 0
    assert json.dumps(d).find("CONFIDENTIAL") == -1


def test_replayed_file_upload_writes_no_second_copy(services: Any, client: Any) -> None:
    wrapped = services.content.new_tenant_key("aes-256-gcm")
    tenant_id, key = services.tenants.create("Replayer", store_content=True, wrapped_content_key=wrapped)
    headers = {**auth(key), "Idempotency-Key": "upload-1"}
    first = client.post("/v1/deposits", headers=headers, content_type="multipart/form-data",
                        data={"kind": "other", "file": (io.BytesIO(b"same bytes"), "a.txt")})
    again = client.post("/v1/deposits", headers=headers, content_type="multipart/form-data",
                        data={"kind": "other", "file": (io.BytesIO(b"same bytes"), "a.txt")})
    assert first.status_code == again.status_code == 201 and first.json["id"] == again.json["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(list((services.config.home / "content" / tenant_id).glob("*.bin"))) == 1


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_rate_limit_falls_back_to_local_when_redis_is_down(tmp_path: Path) -> None:
    """Issue 21: with Redis unreachable (a port on 127.0.0.1 where nothing listens) every deposit once
    answered 500. Now the local limiter takes over: deposits go on, the limit still holds, and /healthz
    says the limits are per process."""
    config = load_config(env={}, home=tmp_path / "h", rate_limit_per_second=5, rate_limit_burst=5,
                         redis_url=f"redis://127.0.0.1:{_free_port()}/0")
    init_home(config)
    s = build_services(config, notary=False)
    try:
        client = create_app(config, s).test_client()
        _, key = s.tenants.create("Busy")
        codes = [client.post("/v1/deposits", headers=auth(key), json={"kind": "other", **_hashes(i)}).status_code
                 for i in range(12)]
        assert 500 not in codes and codes[:5] == [201] * 5 and 429 in codes[5:], codes
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json["checks"]["rate_limit"]["mode"] == "local"
        assert health.json["checks"]["rate_limit"]["status"] == "degraded"
    finally:
        s.close()


def test_rate_limit_is_shared_again_when_redis_answers(tmp_path: Path) -> None:
    from depository.ratelimit import FailoverRateLimiter

    config = load_config(env={}, home=tmp_path / "h", rate_limit_per_second=5, rate_limit_burst=5,
                         redis_url=REDIS_URL)
    init_home(config)
    s = build_services(config, notary=False)
    try:
        limiter = s.rate_limiter
        assert isinstance(limiter, FailoverRateLimiter)
        limiter.check("k-" + tmp_path.name)
        assert limiter.health() == {"status": "ok", "mode": "shared"}
        assert s.health()["checks"]["rate_limit"]["mode"] == "shared"
    finally:
        s.redis.close()
        s.close()
