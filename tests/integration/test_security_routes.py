"""Tenant isolation, swept over EVERY route of the Flask URL map (not a hand-kept list: a route added
tomorrow is swept too). Tenant A owns a deposit, a matter, a watch, a webhook, an alert-email endpoint
and an alert; tenant B asks for each of them, by every method the route accepts, with B's API key and
again with B's console session. The rules: never a 500; a route that names A's resource answers 404
(or 401/403/405/302 to sign-in); and no 2xx body carries any of A's identifiers or data. Public routes
(checkpoint, tiles, keys, verify page, health, metrics) answer but must not carry A's private data.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import auth
from tests.integration.test_monitoring_api import _alert, make_env
from tests.integration.test_monitoring_web import Site

PASSWORD = "a long enough passphrase"
LEASE = {"parties": [{"name": "Acme Rentals Secret Party"}, {"name": "A. Tenant"}], "matter": "MATTER-A-7731"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    site = Site()
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'depository.db'}")
    try:
        client, (_a_id, a_key) = env["client"], env["tenant"]
        alert = _alert(env, site)
        dep = client.post("/v1/deposits", headers=auth(a_key), content_type="multipart/form-data",
                          data={"kind": "contract", "metadata": json.dumps(LEASE),
                                "file": (io.BytesIO(b"the lease of tenant A"), "lease-a.pdf")}).json
        from depository.log import integrate_all

        integrate_all(env["s"].log, 1000)
        watch = client.post("/v1/watches", headers=auth(a_key),
                            json={"url": site.add("/w", "<html>x</html>"), "interval_s": 3600}).json
        hook = client.post("/v1/webhooks", headers=auth(a_key), json={"url": "https://hooks.a.example/x"}).json
        mail = client.post("/v1/alert-emails", headers=auth(a_key), json={"email": "legal@a.example"}).json
        env.update(alert=alert, dep=dep, watch=watch, hook=hook, mail=mail, site=site)
        yield env
    finally:
        env["s"].close()
        site.close()


def _ids(world: dict[str, Any]) -> dict[str, str]:
    """A's resource for each URL variable name."""
    return {
        "deposit_id": world["dep"]["id"], "alert_id": str(world["alert"]["id"]),
        "watch_id": str(world["watch"].get("id")), "endpoint_id": str(world["hook"].get("id")),
        "ref": LEASE["matter"], "filename": "console.css", "rest": "0/000",
    }


def _secrets_of_a(world: dict[str, Any]) -> list[str]:
    return [world["dep"]["id"], world["dep"]["sha256"], LEASE["matter"], "Acme Rentals Secret Party", "lease-a.pdf",
            "hooks.a.example", "legal@a.example", str(world["watch"].get("url", "")) or "-", world["tenant"][0]]


def _fill(rule: Any, ids: dict[str, str]) -> str:
    url = rule.rule
    for arg in rule.arguments:
        url = re.sub(rf"<(?:[a-z]+:)?{arg}>", ids.get(arg, "x"), url)
    return url


def _sweep(client: Any, world: dict[str, Any], headers: dict[str, str], extra: dict[str, str] | None = None
           ) -> list[tuple[str, str, int]]:
    app = client.application
    ids = _ids(world)
    leaks = _secrets_of_a(world)
    seen = []
    for rule in app.url_map.iter_rules():
        url = _fill(rule, ids)
        owns_a_resource = any(a in rule.arguments for a in ("deposit_id", "alert_id", "watch_id", "endpoint_id", "ref"))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            kwargs: dict[str, Any] = {"headers": {**headers, **(extra or {})}}
            if method in ("POST", "PUT", "PATCH"):
                kwargs["json"] = {"status": "dismissed", "url": "https://x.example/", "email": "b@b.example"}
            resp = client.open(url, method=method, **kwargs)
            status = resp.status_code
            seen.append((method, url, status))
            assert status < 500, f"{method} {url} -> {status}: {resp.get_data(as_text=True)[:300]}"
            body = resp.get_data(as_text=True) if resp.mimetype and not resp.mimetype.endswith("pdf") else ""
            resp.close()  # static files are streamed from an open file
            if 200 <= status < 300:
                assert not owns_a_resource, f"{method} {url} served A's resource to B ({status})"
                for secret in leaks:
                    assert secret not in body, f"{method} {url} leaked {secret!r} to tenant B"
                if resp.mimetype == "application/pdf" or "warc" in (resp.mimetype or ""):
                    raise AssertionError(f"{method} {url} gave B a document")
            elif owns_a_resource and rule.rule.startswith("/v1/"):
                assert status in (400, 401, 403, 404, 405, 422), f"{method} {url} -> {status}"
    return seen


def test_every_route_with_a_foreign_api_key(world: dict[str, Any]) -> None:
    client = world["client"]
    _b_id, b_key = world["other"]
    seen = _sweep(client, world, auth(b_key))
    rules = {r.rule for r in client.application.url_map.iter_rules()}
    assert len({u for _, u, _ in seen}) >= len(rules) - 1
    # A still sees its own deposit: the sweep was not vacuous.
    assert client.get(f"/v1/deposits/{world['dep']['id']}", headers=auth(world["tenant"][1])).status_code == 200
    print(f"swept {len(seen)} method/route pairs of {len(rules)} routes with tenant B's key: no 500, no leak")


def test_every_route_with_a_foreign_console_session(world: dict[str, Any]) -> None:
    from depository.console.users import Users

    client = world["client"]
    Users(world["s"].engine).create(world["other"][0], "b@b.example", PASSWORD, "legal")
    page = client.get("/console/sign-in")
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', page.text).group(1)  # type: ignore[union-attr]
    ok = client.post("/console/sign-in", data={"email": "b@b.example", "password": PASSWORD, "csrf_token": token})
    assert ok.status_code == 303
    upload = client.get("/console/upload")
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', upload.text).group(1)  # type: ignore[union-attr]
    seen = _sweep(client, world, {}, {"X-CSRF-Token": csrf, "X-Requested-With": "XMLHttpRequest"})
    console = [(m, u, s) for m, u, s in seen if u.startswith("/console/") and world["dep"]["id"] in u]
    assert console and all(s in (401, 403, 404) for _, _, s in console), console
    print(f"swept {len(seen)} method/route pairs with tenant B's console session: no 500, no leak")


def test_no_key_and_a_bad_key_get_401_problem(world: dict[str, Any]) -> None:
    client = world["client"]
    dep = world["dep"]["id"]
    a_key = world["tenant"][1]
    forged = a_key[:-4] + ("AAAA" if not a_key.endswith("AAAA") else "BBBB")
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {forged}"},
                    {"Authorization": f"Basic {a_key}"}):
        r = client.get(f"/v1/deposits/{dep}", headers=headers)
        assert r.status_code == 401 and r.mimetype == "application/problem+json", (headers, r.status_code)
        assert world["dep"]["sha256"] not in r.get_data(as_text=True)
