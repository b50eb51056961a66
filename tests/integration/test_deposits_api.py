"""Deposits over HTTP: intake kinds, validation, idempotency, tenant isolation, proofs, matters."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from typing import Any

import pytest

from depository.log import integrate_all
from evidence import merkle
from evidence.checkpoint import verify_checkpoint
from evidence.leaf import LeafData, meta_hash
from evidence.tlogproof import TlogProof
from tests.conftest import auth

INVOICE = {"number": "INV-7", "issuer": "Acme", "buyer": "Bob", "amount": "120.50", "currency": "EUR",
           "date": "2026-11-01"}
LEASE = {"parties": [{"name": "Acme Rentals", "role": "landlord"}, {"name": "张三", "role": "tenant"}],
         "property": "Flat 3, 1 Main St", "term": {"start": "2026-12-01", "end": "2027-11-30"},
         "rent": {"amount": "1500", "currency": "CNY", "period": "month"}}


def hashes(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "sm3": hashlib.new("sm3", data).hexdigest()}


def test_file_deposit_hashes_in_one_pass_and_leaf_is_exact(client: Any, services: Any, tenant: Any) -> None:
    content = b"lease agreement " * 10_000
    resp = client.post("/v1/deposits", headers=auth(tenant[1]), content_type="multipart/form-data",
                       data={"kind": "contract", "metadata": json.dumps(LEASE), "matter": "order-1",
                             "file": (io.BytesIO(content), "lease.pdf")})
    assert resp.status_code == 201, resp.json
    d = resp.json
    assert d["sha256"] == hashes(content)["sha256"] and d["sm3"] == hashes(content)["sm3"]
    assert d["size"] == len(content) and d["filename"] == "lease.pdf" and d["status"] == "pending"
    leaf = LeafData.from_bytes(services.log.leaf_data(d["leaf_index"]))
    assert leaf.id == d["id"] and leaf.depositor == tenant[0] and leaf.kind == "contract"
    assert leaf.sha256.hex() == d["sha256"] and leaf.size == len(content)
    assert leaf.meta == meta_hash({**LEASE, "matter": "order-1"})


def test_hash_only_then_proof_verifies_end_to_end(client: Any, services: Any, tenant: Any) -> None:
    resp = client.post("/v1/deposits", headers=auth(tenant[1]),
                       json={"kind": "invoice", **hashes(b"invoice"), "size": 7, "metadata": INVOICE})
    assert resp.status_code == 201
    dep = resp.json
    assert client.get(f"/v1/deposits/{dep['id']}/proof", headers=auth(tenant[1])).status_code == 409
    integrate_all(services.log, 100)
    assert client.get(f"/v1/deposits/{dep['id']}", headers=auth(tenant[1])).json["status"] == "sequenced"
    bundle = client.get(f"/v1/deposits/{dep['id']}/proof", headers=auth(tenant[1])).json
    assert bundle["format"] == "evidence-proof/v1" and bundle["deposit_id"] == dep["id"]
    leaf_data = base64.b64decode(bundle["leaf_data"])
    cp = verify_checkpoint(bundle["checkpoint"], [services.keys.ed25519.verifier(),
                                                  services.keys.sm2.verifier()]).checkpoint
    merkle.verify_inclusion(merkle.SHA256, bundle["leaf_index"], bundle["tree_size"],
                            merkle.SHA256.hash_leaf(leaf_data),
                            [base64.b64decode(h) for h in bundle["inclusion_proof"]], cp.root_hash)
    tp = TlogProof.from_text(bundle["tlog_proof"])
    assert tp.checkpoint_text == bundle["checkpoint"] and tp.extra == leaf_data
    assert meta_hash(bundle["metadata"]) == LeafData.from_bytes(leaf_data).meta


def test_batch_keeps_order_and_is_all_or_nothing(client: Any, services: Any, tenant: Any) -> None:
    items = [{"kind": "other", **hashes(str(i).encode())} for i in range(50)]
    resp = client.post("/v1/deposits/batch", headers=auth(tenant[1]), json={"deposits": items})
    assert resp.status_code == 201
    got = resp.json["deposits"]
    assert [d["sha256"] for d in got] == [i["sha256"] for i in items]
    bad = [*items, {"kind": "other", "sha256": "zz", "sm3": "0" * 64}]
    before = services.log.sizes()
    resp = client.post("/v1/deposits/batch", headers=auth(tenant[1]), json={"deposits": bad})
    assert resp.status_code == 422 and "deposits[50]" in resp.json["detail"]
    assert services.log.sizes() == before
    too_many = {"deposits": [items[0]] * 10_001}
    assert client.post("/v1/deposits/batch", headers=auth(tenant[1]), json=too_many).status_code == 422


def test_idempotency_key_replays_and_conflicts(client: Any, tenant: Any) -> None:
    body = {"kind": "invoice", **hashes(b"x"), "metadata": INVOICE}
    h = {**auth(tenant[1]), "Idempotency-Key": "k-1"}
    first = client.post("/v1/deposits", headers=h, json=body)
    again = client.post("/v1/deposits", headers=h, json=body)
    assert first.status_code == again.status_code == 201
    assert first.json["id"] == again.json["id"]
    other = client.post("/v1/deposits", headers=h, json={**body, "sha256": "1" * 64})
    assert other.status_code == 409 and other.mimetype == "application/problem+json"


@pytest.mark.parametrize("body,status", [
    ({"kind": "invoice", "sha256": "a" * 63, "sm3": "b" * 64, "metadata": INVOICE}, 422),
    ({"kind": "invoice", "sha256": "g" * 64, "sm3": "b" * 64, "metadata": INVOICE}, 422),
    ({"kind": "lease", "sha256": "a" * 64, "sm3": "b" * 64}, 422),
    ({"kind": "invoice", "sha256": "a" * 64, "sm3": "b" * 64, "metadata": {"number": "1"}}, 422),
    ({"kind": "contract", "sha256": "a" * 64, "sm3": "b" * 64, "metadata": {"parties": []}}, 422),
    ({"kind": "other", "sha256": "a" * 64, "sm3": "b" * 64, "size": -1}, 422),
    ({"kind": "other", "sha256": "a" * 64, "sm3": "b" * 64, "bogus": 1}, 422),
    ({"kind": "other", "sha256": "a" * 64, "sm3": "b" * 64, "metadata": []}, 422),
    ({"kind": "other", "sha256": "a" * 64, "sm3": "b" * 64, "follows": "dep_missing"}, 422),
])
def test_bad_input_is_problem_json_and_writes_nothing(client: Any, services: Any, tenant: Any,
                                                      body: dict[str, Any], status: int) -> None:
    before = services.log.sizes()
    resp = client.post("/v1/deposits", headers=auth(tenant[1]), json=body)
    assert resp.status_code == status, resp.json
    assert resp.mimetype == "application/problem+json" and resp.json["type"].startswith("https://")
    assert services.log.sizes() == before


def test_broken_json_multipart_and_keys(client: Any, services: Any, tenant: Any) -> None:
    h = auth(tenant[1])
    assert client.post("/v1/deposits", headers=h, data="{nope", content_type="application/json").status_code == 400
    assert client.post("/v1/deposits", headers=h, data=b"--x\r\n", content_type="multipart/form-data; boundary=x"
                       ).status_code == 400
    assert client.post("/v1/deposits", json={}).status_code == 401
    assert client.post("/v1/deposits", json={}, headers={"Authorization": "Bearer nope"}).status_code == 401
    key_id = tenant[1].split("_")[1]
    services.tenants.revoke_key(key_id)
    assert client.get("/v1/deposits", headers=h).status_code == 401
    ro = services.tenants.create_key(tenant[0], ["read"])
    resp = client.post("/v1/deposits", headers=auth(ro), json={"kind": "other", **hashes(b"1")})
    assert resp.status_code == 403


def test_oversized_upload_is_413(config: Any, services: Any, tenant: Any) -> None:
    from depository.app import create_app
    from depository.config import load_config

    small = load_config(env={}, home=config.home, database_url=config.database_url,
                        log_origin=config.log_origin, max_upload_bytes=1000)
    app = create_app(small, services)
    resp = app.test_client().post("/v1/deposits", headers=auth(tenant[1]), content_type="multipart/form-data",
                                  data={"kind": "other", "file": (io.BytesIO(b"x" * 200_000), "big.bin")})
    assert resp.status_code == 413 and resp.mimetype == "application/problem+json"


def test_other_tenant_sees_nothing(client: Any, services: Any, tenant: Any) -> None:
    _, other_key = services.tenants.create("Other Platform")
    d = client.post("/v1/deposits", headers=auth(tenant[1]),
                    json={"kind": "other", **hashes(b"secret"), "matter": "m-1"}).json
    integrate_all(services.log, 10)
    for url in (f"/v1/deposits/{d['id']}", f"/v1/deposits/{d['id']}/proof", "/v1/matters/m-1"):
        assert client.get(url, headers=auth(tenant[1])).status_code == 200, url
        resp = client.get(url, headers=auth(other_key))
        assert resp.status_code == 404 and resp.mimetype == "application/problem+json", url
    listed = client.get(f"/v1/deposits?sha256={d['sha256']}", headers=auth(other_key)).json
    assert listed == {"deposits": []}
    mine = client.get(f"/v1/deposits?sha256={d['sha256']}", headers=auth(tenant[1])).json["deposits"]
    assert [x["id"] for x in mine] == [d["id"]]


def test_matter_lists_a_lease_life_in_order_with_proofs(client: Any, services: Any, tenant: Any) -> None:
    h = auth(tenant[1])
    steps = []
    prev = None
    for i, kind in enumerate(["contract", "other", "other", "invoice"]):
        meta: dict[str, Any] = LEASE if kind == "contract" else INVOICE if kind == "invoice" else {"step": i}
        body: dict[str, Any] = {"kind": kind, **hashes(f"step {i}".encode()), "metadata": meta, "matter": "ORD-9"}
        if prev:
            body["follows"] = prev
        d = client.post("/v1/deposits?wait=0", headers=h, json=body).json
        steps.append(d["id"])
        prev = d["id"]
    integrate_all(services.log, 100)
    m = client.get("/v1/matters/ORD-9", headers=h).json
    assert [d["id"] for d in m["deposits"]] == steps
    assert all(d["proof"]["format"] == "evidence-proof/v1" for d in m["deposits"])
    assert m["deposits"][1]["follows"] == steps[0]


def test_wait_returns_once_in_a_checkpoint(app: Any, services: Any, tenant: Any) -> None:
    services.start_background()
    try:
        resp = app.test_client().post("/v1/deposits?wait=10", headers=auth(tenant[1]),
                                      json={"kind": "other", **hashes(b"w")})
        assert resp.status_code == 201 and resp.json["status"] == "sequenced"
    finally:
        services.stop_background()


def test_concurrent_single_deposits_share_commits_and_a_bad_one_fails_alone(app: Any, services: Any,
                                                                           tenant: Any) -> None:
    """Group commit over real threads: every good deposit is acknowledged once with its own leaf, the ones
    naming an unknown `follows` get their own 422, and concurrent requests did share transactions."""
    import threading

    key = tenant[1]
    results: list[tuple[int, Any, bool]] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        c = app.test_client()
        for i in range(25):
            bad = (n * 25 + i) % 17 == 5
            body: dict[str, Any] = {"kind": "other", **hashes(f"{n}-{i}".encode()),
                                    "metadata": {"seq": i, **({"follows": "dep_doesnotexist"} if bad else {})}}
            r = c.post("/v1/deposits", json=body, headers=auth(key))
            with lock:
                results.append((r.status_code, r.json, bad))

    groups_before = services.deposits._group.groups
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200
    for status, body, bad in results:
        assert status == (422 if bad else 201), body
    good = [body for status, body, _ in results if status == 201]
    indices = [d["leaf_index"] for d in good]
    assert len(set(indices)) == len(indices)
    integrate_all(services.log, 10_000)
    for d in good:
        leaf = LeafData.from_bytes(services.log.leaf_data(d["leaf_index"]))
        assert leaf.id == d["id"] and leaf.sha256.hex() == d["sha256"]
    size = services.log.sizes()[0]
    assert size == len(good)  # the failed ones left nothing in the log
    assert services.deposits._group.groups - groups_before < len(good)  # some commits were shared
