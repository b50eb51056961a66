"""The public /verify lookup is no oracle (issue 21): a stranger with a guessed hash learns nothing -- the
answer for a deposited hash without its deposit id, or with another deposit's id, is byte for byte the
answer for a hash nobody deposited -- and lookups are rate-limited per real client address."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import auth
from tests.integration.test_sign_in_throttle import _make


def _deposit(client: Any, key: str, data: bytes) -> dict[str, Any]:
    r = client.post("/v1/deposits", headers=auth(key), json={
        "kind": "other", "sha256": hashlib.sha256(data).hexdigest(), "sm3": "0" * 64})
    assert r.status_code == 201
    return r.json  # type: ignore[no-any-return]


def _answer(client: Any, query: str, *echoed: str, ip: str = "198.51.100.1") -> tuple[int, str]:
    r = client.get(f"/verify?{query}", headers={"X-Forwarded-For": ip})
    text = r.get_data(as_text=True)
    for e in echoed:  # what the visitor typed is shown back to them; everything else must be equal
        text = text.replace(e, "ECHO")
    text = re.sub(r'name="csrf_token" value="[0-9a-f]+"', "", text)
    return r.status_code, text


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Any:
    _, services, app = _make(tmp_path, db_url, trusted_proxies=["127.0.0.1/32"], verify_per_minute=600)
    client = app.test_client()
    _, a_key = services.tenants.create("Landlord A")
    _, b_key = services.tenants.create("Stranger B")
    lease = b"standard lease, tenant: Jane Roe"
    yield {"client": client, "a": _deposit(client, a_key, lease), "b": _deposit(client, b_key, b"B's own file"),
           "services": services}
    services.close()


def test_a_guessed_hash_alone_reveals_nothing(world: Any) -> None:
    client, a = world["client"], world["a"]
    unknown = hashlib.sha256(b"a document nobody deposited").hexdigest()
    deposited = _answer(client, f"sha256={a['sha256']}", a["sha256"])
    never = _answer(client, f"sha256={unknown}", unknown)
    assert deposited == never
    assert deposited[0] == 422 and "Yes, deposited" not in deposited[1]
    assert a["received"][:10] not in deposited[1]


def test_another_deposits_id_with_the_hash_reveals_nothing(world: Any) -> None:
    client, a, b = world["client"], world["a"], world["b"]
    unknown = hashlib.sha256(b"a document nobody deposited").hexdigest()
    for dep in (b["id"], "dep_000000000000000000000000"):
        theirs = _answer(client, f"deposit={dep}&sha256={a['sha256']}", a["sha256"], dep)
        nobodys = _answer(client, f"deposit={dep}&sha256={unknown}", unknown, dep)
        assert theirs == nobodys and theirs[0] == 200
        assert "Not found" in theirs[1] and a["received"][:10] not in theirs[1]


def test_the_packet_holder_gets_the_answer(world: Any) -> None:
    client, a = world["client"], world["a"]
    code, text = _answer(client, f"deposit={a['id']}&sha256={a['sha256']}")
    assert code == 200 and "Yes, deposited" in text and a["received"][:10] in text
    assert "Landlord A" not in text


def test_lookups_are_limited_per_client_address(tmp_path: Path, db_url: str) -> None:
    _, services, app = _make(tmp_path, db_url, trusted_proxies=["127.0.0.1/32"], verify_per_minute=30)
    try:
        client = app.test_client()
        q = f"deposit=dep_000000000000000000000000&sha256={'a' * 64}"
        codes = [_answer(client, q, ip="203.0.113.50")[0] for _ in range(15)]
        assert codes[:10] == [200] * 10 and codes[10:] == [429] * 5, codes
        r = client.get(f"/verify?{q}", headers={"X-Forwarded-For": "203.0.113.50"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert _answer(client, q, ip="203.0.113.51")[0] == 200  # someone else is not affected
    finally:
        services.close()
