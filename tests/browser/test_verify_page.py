"""The public /verify page (no sign-in): a packet passes, a tampered packet or a wrong original fails with a
plain-language reason, and a hash lookup (as the packet's QR code links) says only whether and since when."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from depository.deposits import DepositRequest
from depository.packets import build_packet
from tests.browser.conftest import Site, off_loop, shot


@pytest.fixture(scope="module")
def packet(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A witnessed, timestamped deposit of Acme's, its original and its packet."""
    root = tmp_path_factory.mktemp("verify")
    original = root / "licence.txt"
    original.write_bytes(b"Licence to use the photograph 'Harbour at dusk' " + secrets.token_bytes(16))
    data = original.read_bytes()
    [d] = site.services.deposits.create_many(site.acme, [DepositRequest(  # type: ignore[misc]
        "other", hashlib.sha256(data).digest(), hashlib.new("sm3", data).digest(), len(data),
        {"title": "Secret licence title"}, "licence-secret-name.txt")])
    site.wait_status(d.id, site.acme)
    pdf = root / "packet.pdf"
    pdf.write_bytes(off_loop(build_packet, site.services, [d]))
    yield {"deposit": d, "original": original, "pdf": pdf, "root": root}


def test_packet_and_original_pass(page: Page, packet: dict[str, object]) -> None:
    page.goto("/verify")
    expect(page.get_by_role("heading", name="Verify evidence")).to_be_visible()
    page.get_by_label("Evidence packet (PDF)").set_input_files(str(packet["pdf"]))
    page.get_by_label("The original file").set_input_files(str(packet["original"]))
    page.get_by_role("button", name="Check the packet").click()
    expect(page.locator("#res-h")).to_contain_text(f"Deposit {packet['deposit'].id}")  # type: ignore[attr-defined]
    expect(page.locator("#res-h")).to_contain_text("existed no later than")
    expect(page.locator("#res-h")).to_contain_text("cosigned by the witnesses")
    expect(page.locator("[data-verdict]")).to_have_attribute("data-verdict", "verified")
    expect(page.locator("#verdict")).to_contain_text("and the file you gave is the deposited one")
    checks = page.locator("li.check")
    assert checks.count() >= 10
    expect(page.locator("li.check.bad")).to_have_count(0)
    expect(page.locator("li.check.absent")).to_have_count(0)
    expect(page.locator("details.check-group[open]")).to_have_count(0)  # nothing failed: all collapsed
    for name in ("inclusion", "witness-quorum", "timestamp-token", "file-hashes", "pdf-signature"):
        expect(page.locator(f'li.check[data-check="{name}"] .state')).to_have_text("verified")
    shot(page, "verify-pass")


def test_tampered_packet_and_wrong_file_fail_with_reasons(page: Page, packet: dict[str, object]) -> None:
    pdf = Path(str(packet["pdf"])).read_bytes()
    root = Path(str(packet["root"]))
    # Change one byte inside the signed range (inside the first content stream, not the signature).
    i = pdf.index(b"stream", len(pdf) // 10) + 20
    tampered = root / "tampered.pdf"
    tampered.write_bytes(pdf[:i] + bytes([pdf[i] ^ 0x01]) + pdf[i + 1:])
    other = root / "other.txt"
    other.write_bytes(b"not the deposited file")
    page.goto("/verify")
    page.get_by_label("Evidence packet (PDF)").set_input_files(str(packet["pdf"]))
    page.get_by_label("The original file").set_input_files(str(other))
    page.get_by_role("button", name="Check the packet").click()
    expect(page.get_by_role("heading", name="The packet is genuine, but the file you gave is not the deposited "
                                             "file")).to_be_visible()
    bad = page.locator('li.check[data-check="file-hashes"]')
    expect(bad).to_be_visible()  # its group is open: failed groups come first, expanded
    expect(bad.locator(".state")).to_have_text("failed")
    expect(bad).to_contain_text("otherwise it is not the deposited file")
    expect(page.locator("details.check-group").first).to_have_attribute("data-group", "The deposited file")
    shot(page, "verify-fail-wrong-file")
    page.get_by_label("Evidence packet (PDF)").set_input_files(str(tampered))
    page.get_by_role("button", name="Check the packet").click()
    expect(page.get_by_role("heading", name="This packet was altered after it was signed")).to_be_visible()
    expect(page.locator('li.check[data-check="pdf-signature"] .state')).to_have_text("failed")
    expect(page.locator('li.check[data-check="pdf-signature"]')).to_contain_text("altered after signing")
    expect(page.locator("li.check.ok")).to_have_count(0)
    shot(page, "verify-fail-tampered")


def test_not_a_packet(page: Page, packet: dict[str, object]) -> None:
    page.goto("/verify")
    page.get_by_label("Evidence packet (PDF)").set_input_files(str(packet["original"]))
    page.get_by_role("button", name="Check the packet").click()
    expect(page.get_by_role("alert")).to_contain_text("not a readable evidence packet")


def test_qr_link_lookup_says_only_whether_and_since_when(page: Page, packet: dict[str, object]) -> None:
    d = packet["deposit"]
    page.goto(f"/verify?deposit={d.id}&sha256={d.sha256}")  # type: ignore[attr-defined]
    answer = page.locator("#lookup-answer")
    expect(answer).to_contain_text("Yes, deposited")
    expect(answer).to_contain_text(d.received.strftime("%Y-%m-%d"))  # type: ignore[attr-defined]
    body = page.content()
    for private in ("Acme", "Secret licence title", "licence-secret-name", d.tenant_id):  # type: ignore[attr-defined]
        assert private not in body
    shot(page, "verify-lookup")
    # the hash is computed in the browser from a chosen file (the file is not uploaded)
    page.goto("/verify")
    page.get_by_label("Deposit id").fill(d.id)  # type: ignore[attr-defined]  # a hash alone is never looked up
    page.get_by_label("Choose the file").set_input_files(str(packet["original"]))
    expect(page.get_by_label("SHA-256 of the file")).to_have_value(d.sha256)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Look it up").click()
    expect(page.locator("#lookup-answer")).to_contain_text("Yes, deposited")
    page.get_by_label("SHA-256 of the file").fill(hashlib.sha256(b"never deposited").hexdigest())
    page.get_by_role("button", name="Look it up").click()
    expect(page.locator("#lookup-answer")).to_contain_text("Not found")
    page.goto("/verify?sha256=xyz")
    expect(page.get_by_role("alert")).to_contain_text("64 hexadecimal characters")


def test_drop_zone_is_keyboard_operable(page: Page, site: Site) -> None:
    page.bring_to_front()  # a file chooser opens only from the active tab; earlier tests opened other windows
    page.goto("/verify")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    zone = page.locator("[data-drop-for=packet]")
    zone.focus()
    expect(zone).to_be_focused()
    # Headless Chromium on a loaded machine now and then drops the chooser of a keypress (seen in CI about
    # one run in five, alone or after other tests); a user presses again, and so does the test, at most
    # three times: a zone that ignores Enter still fails every time.
    for attempt in range(3):
        try:
            with page.expect_file_chooser(timeout=7000) as chooser:
                zone.focus()
                page.keyboard.press("Enter")
            break
        except PlaywrightTimeoutError:
            if attempt == 2:
                raise
    assert chooser.value.element.get_attribute("id") == "packet"
