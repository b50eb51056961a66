"""A real depository for the browser tests: TSA, three witnesses (quorum 2 of 3), the app on 127.0.0.1,
two tenants with people of every role, and Debian's Chromium driven by Playwright.

Playwright's own browser download is not used (it does not work here): Chromium is /usr/bin/chromium, or
PLAYWRIGHT_CHROMIUM_EXECUTABLE. Screenshots go to artifacts/screenshots/, which CI keeps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from depository.app import create_app
from depository.config import load_config
from depository.console.users import Users
from depository.keys import init_log_keys
from depository.server import run_dev_server
from depository.wiring import Services, build_services, init_home
from evidence.verify import Trust
from notary_bridge.tsa_server import ServerThread, init_tsa_material, load_core
from notary_bridge.tsa_server import create_app as create_tsa_app
from notary_bridge.witness import WitnessHome, load_witness
from notary_bridge.witness_server import WitnessServerThread
from notary_bridge.witness_server import create_app as create_witness_app

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("PLAYWRIGHT_CHROMIUM_EXECUTABLE", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ORIGIN = "console-test.depository.example/log"
PASSWORD = "correct horse battery staple"


@dataclass
class Person:
    email: str
    role: str
    tenant_id: str
    password: str = PASSWORD


@dataclass
class Site:
    url: str
    services: Services
    trust: Trust
    acme: str
    other: str
    people: dict[str, Person] = field(default_factory=dict)

    def wait_status(self, deposit_id: str, tenant_id: str, want: str = "witnessed", timeout_s: float = 60) -> None:
        """Block until the deposit reaches `want` or a later status (the notary runs in the background and
        may take it past `want` between two looks)."""
        order = ["pending", "sequenced", "timestamped", "witnessed"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            d = self.services.deposits.get(tenant_id, deposit_id)
            if order.index(self.services.deposits_status([d.leaf_index])[d.leaf_index]) >= order.index(want):
                return
            time.sleep(0.1)
        raise AssertionError(f"{deposit_id} did not become {want} within {timeout_s} s")


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("console")
    home = root / "home"
    init_tsa_material(home, "Console Test TSA")
    tsa = ServerThread(create_tsa_app(load_core(home))).start()
    keys = init_log_keys(home / "keys", ORIGIN)
    policy, members, witnesses = [f"log {keys.vkey}"], [], []
    for short in ("court", "notary-a", "notary-b"):
        whome = root / "witnesses" / short
        server = WitnessServerThread(create_witness_app(load_witness(whome, f"{short}.example/witness",
                                                                     [keys.vkey]))).start()
        witnesses.append(server)
        vkey = WitnessHome(whome).vkey.read_text(encoding="utf-8").strip()
        policy.append(f"witness {short} {vkey} {server.url}")
        members.append(short)
    policy += [f"group consortium 2 {' '.join(members)}", "quorum consortium"]
    policy_file = home / "witness-policy.txt"
    policy_file.write_text("\n".join(policy) + "\n", encoding="utf-8")
    config = load_config(env={}, home=home, log_origin=ORIGIN, tsa_urls=[tsa.url], witness_policy_file=policy_file,
                         batch_interval_ms=50, public_base_url="http://127.0.0.1:0",
                         max_upload_bytes=8 * 1024 * 1024, fetch_allow_cidrs=["127.0.0.0/8"], fetch_timeout_s=5.0)
    init_home(config)
    services = build_services(config)
    services.start_background()
    server = run_dev_server(create_app(config, services), "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_port}"
    acme, _ = services.tenants.create("Acme Rentals Ltd", store_content=True,
                                      wrapped_content_key=services.content.new_tenant_key("aes-256-gcm"))
    other, _ = services.tenants.create("Other Co")
    users = Users(services.engine)
    people = {
        "legal": Person("legal@acme.example", "legal", acme),
        "viewer": Person("viewer@acme.example", "viewer", acme),
        "lockme": Person("lockme@acme.example", "legal", acme),
        "other": Person("legal@other.example", "legal", other),
    }
    for p in people.values():
        users.create(p.tenant_id, p.email, p.password, p.role)
    trust = Trust(log_vkey=keys.vkey, log_sm2_pem=keys.sm2_public_pem, witness_policy=policy_file.read_text(),
                  tsa_ca_pem=(home / "tsa" / "tsa-ca.pem").read_bytes(),
                  packet_ca_pem=(home / "packet" / "packet-ca.pem").read_bytes())
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield Site(url, services, trust, acme, other, people)
    finally:
        server.shutdown()
        server.server_close()
        services.close()
        for w in witnesses:
            w.stop()
        tsa.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def context(browser: Browser, site: Site) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=site.url, accept_downloads=True, viewport={"width": 1280, "height": 900},
                              locale="en-GB")
    ctx.set_default_timeout(20_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, person: Person) -> None:
    page.goto("/console/sign-in")
    page.get_by_label("E-mail").fill(person.email)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/deposits")


def shot(page: Page, name: str, **kw: Any) -> Path:
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, **kw)
    return path


@pytest.fixture
def browser_context_pair(browser: Browser, site: Site) -> Iterator[tuple[Page, Page]]:
    """Two independent browsers (separate cookie jars)."""
    a = browser.new_context(base_url=site.url)
    b = browser.new_context(base_url=site.url)
    try:
        yield a.new_page(), b.new_page()
    finally:
        a.close()
        b.close()


def verify_in_thread(pdf: bytes, *, file: bytes | None, trust: Trust) -> list[Any]:
    """`verify_packet` off the test thread: pyHanko calls asyncio.run(), which cannot run inside the
    event loop that Playwright's sync API keeps on this thread."""
    from concurrent.futures import ThreadPoolExecutor

    from evidence.verify import verify_packet

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(verify_packet, pdf, file=file, trust=trust).result()


def off_loop(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run `fn` on another thread (for pyHanko's asyncio.run(), e.g. build_packet), return its result."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args, **kwargs).result()
