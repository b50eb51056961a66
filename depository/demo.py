"""`depository demo`: the whole flow of SPEC.md on one machine, no Redis or PostgreSQL.

Starts a local RFC 3161 TSA, three C2SP witnesses (a court and two notaries, quorum 2 of 3) and the API on
127.0.0.1; deposits a lease agreement, an invoice and a copyright work through the HTTP API; waits until
the lease is witnessed and timestamped; writes the sample files, `packet.pdf`, `proof.json` and `trust/`
into the output directory; and verifies its own packet offline against `trust/`.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depository.client import DepositoryClient
from depository.config import load_config
from depository.errors import DepositoryError
from depository.keys import init_log_keys
from depository.packets import packet_material
from depository.server import run_dev_server
from evidence.verify import Check, Trust, all_passed, verify_packet
from notary_bridge.tsa import TsaCore
from notary_bridge.tsa_server import ServerThread, init_tsa_material, load_core
from notary_bridge.tsa_server import create_app as create_tsa_app
from notary_bridge.witness import WitnessHome, load_witness
from notary_bridge.witness_server import WitnessServerThread
from notary_bridge.witness_server import create_app as create_witness_app

ORIGIN = "demo.depository.example/log"
WITNESSES = (("court", "court.demo.example/witness"), ("notary-a", "notary-a.demo.example/witness"),
             ("notary-b", "notary-b.demo.example/witness"))
LEASE_META = {"title": "Residential lease agreement",
              "parties": [{"name": "Acme Rentals Ltd", "role": "landlord"},
                          {"name": "Li Wei (李伟)", "role": "tenant"}],
              "property": "Flat 12B, 88 Century Avenue, Shanghai", "term": {"start": "2027-01-01", "end": "2027-12-31"},
              "rent": {"amount": "6500", "currency": "CNY", "period": "month"}}
INVOICE_META = {"number": "INV-2026-0042", "issuer": "Acme Rentals Ltd", "buyer": "Li Wei", "amount": "6500.00",
                "currency": "CNY", "date": "2026-12-20"}
WORK_META = {"title": "Harbour at dusk", "author": "Chen Jing", "work_type": "photograph",
             "first_publication": "2026-10-01"}


@dataclass
class DemoResult:
    out: Path
    api_url: str
    checks: list[Check]
    lease: dict[str, Any]

    @property
    def ok(self) -> bool:
        return all_passed(self.checks)


def _pdf(title: str, lines: list[str]) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=1)
    c.setTitle(title)
    c.setFont("Helvetica-Bold", 18)
    c.drawString(72, 770, title)
    c.setFont("Helvetica", 11)
    for i, line in enumerate(lines):
        c.drawString(72, 730 - 18 * i, line)
    c.showPage()
    c.save()
    return buf.getvalue()


def _png() -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (640, 400), (20, 40, 80))
    d = ImageDraw.Draw(img)
    for y in range(400):
        d.line([(0, y), (640, y)], fill=(20 + y // 3, 40 + y // 5, 80 + y // 8))
    d.ellipse([420, 60, 520, 160], fill=(250, 200, 90))
    for x in range(0, 640, 40):
        d.rectangle([x, 300 - (x * 7) % 90, x + 30, 400], fill=(10, 10, 25))
    d.text((20, 20), "Harbour at dusk - Chen Jing 2026", fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def write_samples(out: Path) -> dict[str, Path]:
    files = {
        "lease": ("lease-agreement.pdf", _pdf("Residential Lease Agreement", [
            "Landlord: Acme Rentals Ltd.     Tenant: Li Wei",
            "Property: Flat 12B, 88 Century Avenue, Shanghai",
            "Term: 1 January 2027 to 31 December 2027",
            "Rent: CNY 6,500 per month, payable on the 1st of each month.",
            "Deposit: two months' rent, returned within 30 days of the end of the term.",
            "Signed electronically by both parties on 20 December 2026.",
        ])),
        "invoice": ("invoice.pdf", _pdf("Invoice INV-2026-0042", [
            "Issuer: Acme Rentals Ltd.", "Buyer: Li Wei",
            "January 2027 rent, Flat 12B .......... CNY 6,500.00", "Due: 1 January 2027"])),
        "work": ("copyright-work.png", _png()),
    }
    paths = {}
    for key, (name, data) in files.items():
        p = out / name
        p.write_bytes(data)
        paths[key] = p
    return paths


def run_demo(out: Path, *, once: bool, echo: Callable[[str], None] = print,
             on_verified: Callable[[DemoResult], None] | None = None) -> DemoResult:
    """Run the demo; with `once=False` keep serving after `on_verified` until Ctrl-C."""
    out.mkdir(parents=True, exist_ok=True)
    home = out / ".home"
    if home.exists():
        shutil.rmtree(home)  # a fresh log every run: the demo proves its own packet, not an old one
    samples = write_samples(out)
    with ExitStack() as stack:
        # The TSA, with its own CA, like an external authority.
        init_tsa_material(home, "Depository Demo TSA")
        core: TsaCore = load_core(home)
        tsa = stack.enter_context(ServerThread(create_tsa_app(core)))
        echo(f"TSA        {tsa.url}")
        keys = init_log_keys(home / "keys", ORIGIN)
        # Three witnesses, each with its own key and state, trusting this log's key.
        policy = [f"log {keys.vkey}"]
        members = []
        for short, name in WITNESSES:
            whome = home / "witnesses" / short
            witness = load_witness(whome, name, [keys.vkey])
            server = WitnessServerThread(create_witness_app(witness))
            server.start()
            stack.callback(server.stop)
            vkey = WitnessHome(whome).vkey.read_text(encoding="utf-8").strip()
            policy.append(f"witness {short} {vkey} {server.url}")
            members.append(short)
            echo(f"witness    {server.url}  {name}")
        policy += [f"group consortium 2 {' '.join(members)}", "quorum consortium"]
        policy_file = home / "witness-policy.txt"
        policy_file.write_text("\n".join(policy) + "\n", encoding="utf-8")

        from depository.app import create_app
        from depository.wiring import build_services, init_home

        port = _free_port()  # known before the config, so the packet's QR code points at this server
        config = load_config(env={}, home=home, log_origin=ORIGIN, tsa_urls=[tsa.url],
                             witness_policy_file=policy_file, batch_interval_ms=200,
                             public_base_url=f"http://127.0.0.1:{port}")
        init_home(config)
        services = build_services(config)
        stack.callback(services.close)
        services.start_background()
        app = create_app(config, services)
        server = run_dev_server(app, "127.0.0.1", port)
        stack.callback(server.shutdown)
        api_url = f"http://127.0.0.1:{server.server_port}"
        echo(f"API        {api_url}")

        _tenant_id, api_key = services.tenants.create(
            "Acme Rentals Ltd", store_content=True, wrapped_content_key=services.content.new_tenant_key("aes-256-gcm"))
        client = DepositoryClient(api_url, api_key)
        lease = client.deposit_file(samples["lease"], "contract", LEASE_META, matter="LEASE-2027-12B",
                                    idempotency_key=secrets.token_hex(8))
        invoice = client.deposit_file(samples["invoice"], "invoice", INVOICE_META, matter="LEASE-2027-12B",
                                      follows=lease["id"])
        work = client.deposit_file(samples["work"], "copyright", WORK_META)
        for label, d in (("lease", lease), ("invoice", invoice), ("work", work)):
            echo(f"deposited  {label:8} {d['id']}  sha256 {d['sha256'][:16]}…  leaf {d['leaf_index']}")
        deadline = time.monotonic() + 90
        status = ""
        while time.monotonic() < deadline:
            status = client.get(lease["id"])["status"]
            if status == "witnessed":
                break
            time.sleep(0.2)
        if status != "witnessed":
            raise DepositoryError(f"the lease did not become witnessed and timestamped in time (status {status})")
        proof = client.proof(lease["id"])
        (out / "proof.json").write_text(json.dumps(proof, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        packet = client.packet(lease["id"])
        (out / "packet.pdf").write_bytes(packet)
        trust = out / "trust"
        trust.mkdir(exist_ok=True)
        (trust / "log.vkey").write_text(keys.vkey + "\n", encoding="utf-8")
        (trust / "log-sm2.pem").write_text(keys.sm2_public_pem, encoding="utf-8")
        shutil.copy(policy_file, trust / "witness-policy.txt")
        shutil.copy(home / "tsa" / "tsa-ca.pem", trust / "tsa-ca.pem")
        shutil.copy(packet_material(home).ca_path, trust / "packet-ca.pem")
        echo("")
        echo("checkpoint (log signatures and witness cosignatures):")
        echo(proof["checkpoint"])
        echo(f"inclusion proof for leaf {proof['leaf_index']} in a tree of {proof['tree_size']}:")
        for h in proof["inclusion_proof"]:
            echo(f"  {h}")
        checks = verify_packet(packet, file=samples["lease"].read_bytes(), trust=Trust.from_dir(trust))
        result = DemoResult(out, api_url, checks, lease)
        if on_verified is not None:
            on_verified(result)
        if not once:
            echo(f"\nserving on {api_url}/ — press Ctrl-C to stop")
            wait_forever()
        return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_forever() -> None:
    stop = threading.Event()
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        return
