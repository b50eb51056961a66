"""Inputs that once answered 500 (issues 18 and 21), on SQLite and PostgreSQL: huge offsets and limits,
JSON nested 1,000 deep, NUL bytes in path ids, query parameters, JSON text and forms, bodies of the wrong
content type. Each must answer a 4xx RFC 9457 problem (or the console's HTML form again), never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import auth

HUGE = "99999999999999999999"
LIST_ROUTES = ["/v1/alerts", "/v1/watches", "/v1/deposits"]


def _problem(resp: Any, *codes: int) -> dict[str, Any]:
    assert resp.status_code in codes, (resp.status_code, resp.get_data(as_text=True)[:500])
    assert resp.mimetype == "application/problem+json", resp.mimetype
    body: dict[str, Any] = resp.json
    assert body["status"] == resp.status_code
    return body


def _nested(depth: int) -> str:
    """JSON text of an object nested `depth` deep (as text: the stdlib encoder itself cannot write it)."""
    return '{"a":' * depth + '"leaf"' + "}" * depth


def _post_raw(client: Any, url: str, key: str, text: str) -> Any:
    return client.post(url, headers=auth(key), data=text, content_type="application/json")


@pytest.mark.parametrize("route", LIST_ROUTES)
@pytest.mark.parametrize("query", [f"offset={HUGE}", f"limit={HUGE}", f"offset=-{HUGE}", "limit=0",
                                   "offset=-1", "limit=1001", "offset=1e3", "limit=%00", "offset=%E2%91%A0"])
def test_paging_out_of_range_is_400(client: Any, tenant: tuple[str, str], route: str, query: str) -> None:
    _problem(client.get(f"{route}?{query}", headers=auth(tenant[1])), 400)


@pytest.mark.parametrize("route", LIST_ROUTES)
def test_paging_in_range_still_works(client: Any, tenant: tuple[str, str], route: str) -> None:
    resp = client.get(f"{route}?limit=1000&offset=1000000000", headers=auth(tenant[1]))
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_deep_metadata_is_422(client: Any, tenant: tuple[str, str]) -> None:
    h = auth(tenant[1])
    body = '{"kind": "other", "sha256": "' + "ab" * 32 + '", "sm3": "' + "cd" * 32 + '", "metadata": {"x": ' \
        + _nested(1000) + "}}"
    _problem(_post_raw(client, "/v1/deposits", tenant[1], body), 422)
    _problem(_post_raw(client, "/v1/deposits/batch", tenant[1], '{"deposits": [' + body + "]}"), 422)
    # 10,000 deep: past orjson's own limit as well
    raw = '{"kind":"other","sha256":"' + "ab" * 32 + '","sm3":"' + "cd" * 32 + '","metadata":' \
        + '{"a":' * 10000 + "1" + "}" * 10001
    _problem(client.post("/v1/deposits", headers=h, data=raw, content_type="application/json"), 400, 422)
    # multipart: the metadata form field
    resp = client.post("/v1/deposits", headers=h, content_type="multipart/form-data",
                       data={"kind": "other", "metadata": _nested(1000),
                             "file": (__import__("io").BytesIO(b"x"), "x.txt")})
    _problem(resp, 422)
    resp = client.post("/v1/deposits", headers=h, content_type="multipart/form-data",
                       data={"kind": "other", "metadata": "[" * 100000,
                             "file": (__import__("io").BytesIO(b"x"), "x.txt")})
    _problem(resp, 422)
    # a sane depth still deposits
    ok = body.replace(_nested(1000), _nested(20))
    assert _post_raw(client, "/v1/deposits", tenant[1], ok).status_code == 201


@pytest.mark.parametrize("route", ["/v1/watches", "/v1/webhooks", "/v1/alert-emails", "/v1/scans"])
def test_deep_json_bodies_are_4xx(client: Any, tenant: tuple[str, str], route: str) -> None:
    h = auth(tenant[1])
    field = "address" if route == "/v1/alert-emails" else "url"
    _problem(_post_raw(client, route, tenant[1], '{"' + field + '": ' + _nested(1000) + "}"), 422)
    _problem(client.post(route, headers=h, data="[" * 100000, content_type="application/json"), 400, 422)


@pytest.mark.parametrize("route", ["/v1/watches", "/v1/webhooks", "/v1/alert-emails", "/v1/scans",
                                   "/v1/deposits/batch", "/v1/alerts/alr_x/status"])
def test_json_routes_refuse_other_content_types(client: Any, tenant: tuple[str, str], route: str) -> None:
    body = json.dumps({"url": "http://127.0.0.1/x", "interval_s": 3600})
    _problem(client.post(route, headers=auth(tenant[1]), data=body, content_type="text/plain"), 415)


NUL_GETS = ["/v1/watches/%00", "/v1/alerts/%00", "/v1/alerts/%00/packet.pdf", "/v1/alerts/%00/capture.warc.gz",
            "/v1/deposits/%00", "/v1/deposits/%00/proof", "/v1/deposits/%00/packet.pdf", "/v1/matters/%00",
            "/v1/alerts?status=%00", "/v1/deposits?matter=%00", "/v1/deposits?sha256=%00", "/v1/deposits?kind=%00",
            "/v1/watches?x=%00", "/tile/%00", "/verify?sha256=%00", "/verify?deposit=%00&sha256=" + "a" * 64]


@pytest.mark.parametrize("url", NUL_GETS)
def test_nul_in_path_and_query_is_400(client: Any, tenant: tuple[str, str], url: str) -> None:
    resp = client.get(url, headers=auth(tenant[1]))
    assert resp.status_code in (400, 404), (url, resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.mimetype == "application/problem+json"


@pytest.mark.parametrize("url", ["/v1/watches/%00", "/v1/webhooks/%00", "/v1/alert-emails/%00"])
def test_nul_in_deleted_ids_is_4xx(client: Any, tenant: tuple[str, str], url: str) -> None:
    _problem(client.delete(url, headers=auth(tenant[1])), 400, 404)


def test_nul_in_json_text_is_422(client: Any, tenant: tuple[str, str]) -> None:
    h = auth(tenant[1])
    _problem(client.post("/v1/watches", headers=h, json={"url": "http://127.0.0.1/\x00", "interval_s": 3600}), 422)
    _problem(client.post("/v1/webhooks", headers=h, json={"url": "https://hooks.example/\x00"}), 422)
    _problem(client.post("/v1/alert-emails", headers=h, json={"address": "a\x00b@example.com"}), 422)
    _problem(client.post("/v1/scans", headers=h, json={"url": "http://127.0.0.1/\x00"}), 422)
    _problem(client.post("/v1/alerts/alr_x/status", headers=h, json={"status": "confirmed", "note": "\x00"}),
             404, 422)
    body = {"kind": "other", "sha256": "ab" * 32, "sm3": "cd" * 32, "filename": "a\x00b"}
    _problem(client.post("/v1/deposits", headers=h, json=body), 422)
    # NUL inside metadata is JSON like any other character: stored escaped, and hashed as sent
    ok = {"kind": "other", "sha256": "ab" * 32, "sm3": "cd" * 32, "metadata": {"note": "a\x00b"}}
    resp = client.post("/v1/deposits", headers=h, json=ok)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert client.get(f"/v1/deposits/{resp.json['id']}", headers=h).json["metadata"] == {"note": "a\x00b"}


def test_nul_in_console_sign_in_is_a_form_error(client: Any) -> None:
    resp = client.post("/console/sign-in", data={"email": "a\x00@example.com", "password": "x\x00y"})
    assert resp.status_code in (400, 401, 403), resp.status_code
    assert resp.status_code < 500


def test_alert_status_filter_is_checked(client: Any, tenant: tuple[str, str]) -> None:
    h = auth(tenant[1])
    for bad in ("null", "", "NEW", "x" * 300):
        _problem(client.get(f"/v1/alerts?status={bad}", headers=h), 400)
    assert client.get("/v1/alerts?status=new", headers=h).status_code == 200


def test_empty_matter_and_follows_mean_absent(client: Any, tenant: tuple[str, str]) -> None:
    """The schema allowed "" (the multipart form already read it as absent); JSON now does the same."""
    h = auth(tenant[1])
    body = {"kind": "other", "sha256": "ab" * 32, "sm3": "cd" * 32, "matter": "", "follows": ""}
    resp = client.post("/v1/deposits", headers=h, json=body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.json["matter"] is None and resp.json["follows"] is None


def test_trace_and_unknown_methods_are_described(client: Any) -> None:
    resp = client.open("/v1/deposits", method="TRACE")
    _problem(resp, 405)
    doc = client.get("/openapi.json").json
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "405" in op["responses"], (path, method)


@pytest.mark.parametrize("route", ["/v1/deposits/batch", "/v1/deposits", "/v1/watches"])
def test_a_chunked_body_over_the_limit_is_413_not_cut(tmp_path: Any, db_url: str, route: str) -> None:
    """Issue 21: a chunked body (no Content-Length) was cut at the limit without a word and then failed to
    parse (400). Now it is 413; a chunked body under the limit still works."""
    import io

    from tests.integration.test_sign_in_throttle import _make

    _, services, app = _make(tmp_path, db_url, max_upload_bytes=1 << 20)
    try:
        client = app.test_client()
        _, key = services.tenants.create("Platform")
        item = '{"kind": "other", "sha256": "' + "ab" * 32 + '", "sm3": "' + "cd" * 32 + '"}'
        big = ('{"deposits": [' + ", ".join([item] * 20000) + "]}").encode()
        assert len(big) > app.config["MAX_CONTENT_LENGTH"]

        def chunked(body: bytes) -> Any:  # as gunicorn hands a chunked request to the app
            environ = {"wsgi.input_terminated": True, "CONTENT_LENGTH": None, "HTTP_TRANSFER_ENCODING": "chunked"}
            return client.post(route, headers=auth(key), input_stream=io.BytesIO(body),
                               content_type="application/json", environ_overrides=environ)

        _problem(chunked(big), 413)
        if route == "/v1/deposits/batch":
            small = chunked(('{"deposits": [' + item + "]}").encode())
            assert small.status_code == 201, small.get_data(as_text=True)
    finally:
        services.close()
