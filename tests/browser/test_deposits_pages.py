"""Deposits in the browser: upload with progress (file input and a dropped file), search, the status
timeline, the one-click packet (which must verify), the matter packet, and tenant isolation."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from evidence.verify import all_passed
from tests.browser.conftest import Site, shot, sign_in, verify_in_thread

# Test instrumentation only: records upload progress events (and the page's bar after its own handler ran)
# in sessionStorage, which survives the page's navigation to the new deposit.
RECORD_PROGRESS = """
const send = XMLHttpRequest.prototype.send;
XMLHttpRequest.prototype.send = function (body) {
  this.upload.addEventListener("progress", (e) => {
    const seen = JSON.parse(sessionStorage.getItem("progress") || "[]");
    const bar = document.getElementById("progress");
    seen.push([e.loaded, e.total, bar ? bar.value : null]);
    sessionStorage.setItem("progress", JSON.stringify(seen));
  });
  return send.call(this, body);
};
"""


def _upload(page: Page, path: Path, *, kind: str = "other", title: str = "", matter: str = "",
            parties: str = "") -> str:
    """Fill the upload form (file already chosen) and submit; returns the new deposit id."""
    page.get_by_label("Kind", exact=True).select_option(kind)
    if title:
        page.get_by_label("Title", exact=True).fill(title)
    if parties:
        page.get_by_label("Parties").fill(parties)
    if matter:
        page.get_by_label("Matter reference").fill(matter)
    page.get_by_role("button", name="Deposit", exact=True).click()
    page.wait_for_url(re.compile(r"/console/deposits/dep_[0-9a-f]+$"))
    return page.url.rsplit("/", 1)[1]


def _wait_for_packet_button(page: Page, site: Site, deposit_id: str) -> None:
    site.wait_status(deposit_id, site.acme)
    page.reload()
    expect(page.get_by_role("link", name="Download the court-ready packet")).to_be_visible()


def test_upload_with_progress_then_one_click_packet_verifies(page: Page, site: Site, tmp_path: Path) -> None:
    lease = tmp_path / "lease-12B.txt"
    lease.write_bytes(("Lease agreement 租赁合同 " + secrets.token_hex(8) + "\n").encode() * 40_000)  # ~2.4 MB
    page.add_init_script(RECORD_PROGRESS)
    sign_in(page, site.people["legal"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Deposit a file").click()
    page.get_by_label("File", exact=True).set_input_files(str(lease))
    expect(page.locator("#chosen")).to_have_text("Chosen: lease-12B.txt")
    shot(page, "upload-form")
    dep_id = _upload(page, lease, kind="contract", title="Lease, 12B Harbour Road",
                     parties="Acme Rentals Ltd\nJane Tenant", matter="LEASE-12B")
    progress = json.loads(page.evaluate("sessionStorage.getItem('progress')"))
    assert progress and progress[-1][0] == progress[-1][1] and progress[-1][2] == 100, progress
    expect(page.get_by_role("heading", name="Lease, 12B Harbour Road")).to_be_visible()
    expect(page.get_by_text(hashlib.sha256(lease.read_bytes()).hexdigest())).to_be_visible()

    _wait_for_packet_button(page, site, dep_id)
    timeline = page.locator("ol.timeline li")
    expect(timeline).to_have_count(4)
    expect(timeline.nth(1)).to_have_class("done")
    expect(timeline.nth(2)).to_contain_text("Timestamped")
    expect(timeline.nth(3)).to_contain_text(re.compile(r"Witnessed [23] of 3"))
    shot(page, "deposit-detail")
    with page.expect_download() as dl:
        page.get_by_role("link", name="Download the court-ready packet").click()
    assert dl.value.suggested_filename == f"evidence-packet-{dep_id}.pdf"
    pdf = Path(dl.value.path()).read_bytes()
    checks = verify_in_thread(pdf, file=lease.read_bytes(), trust=site.trust)
    assert all_passed(checks), [(c.name, c.detail) for c in checks if not c.ok]
    assert {"witness-quorum", "timestamp-token", "file-hashes", "original-attachment"} <= {c.name for c in checks}


def test_dropped_file_is_deposited(page: Page, site: Site) -> None:
    sign_in(page, site.people["legal"])
    page.goto("/console/upload")
    content = "dropped invoice " + secrets.token_hex(8)
    # A real drop event on the drop zone, carrying a File in its DataTransfer.
    page.evaluate("""(text) => {
        const dt = new DataTransfer();
        dt.items.add(new File([text], "dropped.txt", {type: "text/plain"}));
        const zone = document.getElementById("dropzone");
        zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true, cancelable: true}));
        zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", content)
    expect(page.locator("#chosen")).to_have_text("Chosen: dropped.txt")
    assert page.evaluate("document.getElementById('file').files[0].name") == "dropped.txt"
    dep_id = _upload(page, Path("dropped.txt"), title="Dropped")
    d = site.services.deposits.get(site.acme, dep_id)
    assert d.sha256 == hashlib.sha256(content.encode()).hexdigest() and d.filename == "dropped.txt"


def test_upload_errors_are_shown_not_deposited(page: Page, site: Site, tmp_path: Path) -> None:
    sign_in(page, site.people["legal"])
    page.goto("/console/upload")
    f = tmp_path / "c.txt"
    f.write_text("a contract without parties")
    page.get_by_label("File", exact=True).set_input_files(str(f))
    page.get_by_label("Kind", exact=True).select_option("contract")
    page.get_by_role("button", name="Deposit", exact=True).click()
    expect(page.locator("#upload-error")).to_contain_text("parties")
    assert "/console/upload" in page.url


def test_search_filters_and_pagination(page: Page, site: Site) -> None:
    from depository.deposits import DepositRequest

    tag = secrets.token_hex(4)
    reqs = [DepositRequest("invoice", hashlib.sha256(f"{tag}{i}".encode()).digest(),
                           hashlib.new("sm3", f"{tag}{i}".encode()).digest(), 10,
                           {"number": f"INV-{i}", "issuer": f"Issuer {tag}", "buyer": "Buyer 买方",
                            "amount": "10.00", "currency": "EUR", "date": "2027-01-02"}, f"inv-{tag}-{i}.pdf")
            for i in range(30)]
    deps = site.services.deposits.create_many(site.acme, reqs)
    assert isinstance(deps, list)
    sign_in(page, site.people["legal"])
    page.get_by_label("Party").fill(f"Issuer {tag}")
    page.get_by_label("Kind", exact=True).select_option("invoice")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("status")).to_have_text("30 deposits, page 1 of 2")
    expect(page.locator("table.list tbody tr")).to_have_count(25)
    page.get_by_role("link", name="Older →").click()
    expect(page.locator("table.list tbody tr")).to_have_count(5)
    assert f"party=Issuer+{tag}" in page.url and "kind=invoice" in page.url
    page.goto("/console/deposits?party=" + "买方")  # non-ASCII party names are found too
    expect(page.locator("table.list tbody tr")).not_to_have_count(0)
    page.get_by_label("Id, hash or file name").fill(deps[7].sha256[:12])
    page.get_by_label("Party").fill("")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("status")).to_have_text("1 deposit")
    expect(page.get_by_role("link", name=deps[7].id)).to_be_visible()
    page.goto("/console/deposits?since=2000-01-01&until=2000-12-31")
    expect(page.get_by_role("status")).to_have_text("0 deposits")


def test_matter_packet(page: Page, site: Site, tmp_path: Path) -> None:
    matter = "DISPUTE-" + secrets.token_hex(3)
    sign_in(page, site.people["legal"])
    ids, files = [], []
    for i in range(2):
        f = tmp_path / f"exhibit-{i}.txt"
        f.write_text(f"exhibit {i} {matter}")
        files.append(f)
        page.goto("/console/upload")
        page.get_by_label("File", exact=True).set_input_files(str(f))
        ids.append(_upload(page, f, title=f"Exhibit {i}", matter=matter))
    for dep_id in ids:
        site.wait_status(dep_id, site.acme)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Matters").click()
    page.get_by_role("link", name=matter).click()
    expect(page.locator("table.list tbody tr")).to_have_count(2)
    shot(page, "matter")
    with page.expect_download() as dl:
        page.get_by_role("link", name="Download the court-ready matter packet").click()
    pdf = Path(dl.value.path()).read_bytes()
    checks = verify_in_thread(pdf, file=files[1].read_bytes(), trust=site.trust)
    assert all_passed(checks), [(c.name, c.detail) for c in checks if not c.ok]
    assert sum(c.name.endswith("inclusion") for c in checks) == 2


def test_one_tenant_never_sees_another(page: Page, site: Site) -> None:
    from depository.deposits import DepositRequest

    secret = b"acme-only " + secrets.token_bytes(8)
    [acme_dep] = site.services.deposits.create_many(site.acme, [DepositRequest(
        "other", hashlib.sha256(secret).digest(), hashlib.new("sm3", secret).digest(), len(secret),
        {"title": "Acme secret", "matter": "ACME-ONLY"}, "acme-secret.txt")])  # type: ignore[misc]
    site.wait_status(acme_dep.id, site.acme, "sequenced")
    sign_in(page, site.people["other"])
    expect(page.get_by_role("status")).to_have_text("0 deposits")
    page.goto("/console/deposits?q=" + acme_dep.sha256)
    expect(page.get_by_role("status")).to_have_text("0 deposits")
    for path in (f"/console/deposits/{acme_dep.id}", f"/console/deposits/{acme_dep.id}/packet.pdf",
                 "/console/matters/ACME-ONLY", "/console/matter-packet.pdf?matter=ACME-ONLY"):
        assert page.context.request.get(path).status == 404, path
    resp = page.goto(f"/console/deposits/{acme_dep.id}")
    assert resp is not None and resp.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    page.goto("/console/matters")
    expect(page.get_by_text("ACME-ONLY")).to_have_count(0)
    shot(page, "other-tenant-empty")


WIDER = """() => [...document.querySelectorAll("body *")]
    .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
    .map((e) => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right)).slice(0, 8)"""


@pytest.mark.parametrize("width", [390])
def test_phone_width(page: Page, site: Site, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 844})
    sign_in(page, site.people["legal"])
    for name, path in (("phone-deposits", "/console/deposits"), ("phone-log", "/console/log"),
                       ("phone-upload", "/console/upload"), ("phone-verify", "/verify")):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at {width}px: {page.evaluate(WIDER)}"
        shot(page, name)
    first = page.goto("/console/deposits")
    assert first is not None
    link = page.locator("table.list tbody tr a").first
    link.click()
    page.wait_for_url(re.compile(r"/console/deposits/dep_"))
    page.wait_for_load_state("load")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, page.evaluate(WIDER)
    shot(page, "phone-deposit-detail")


def test_upload_form_details_and_the_root_redirect(page: Page, site: Site) -> None:
    """The progress bar stays hidden until an upload starts; the matter field's pattern is valid under
    Chrome's `v` flag (so it is enforced, not silently dropped); `/` redirects instead of a raw 404."""
    sign_in(page, site.people["legal"])
    page.goto("/console/upload")
    expect(page.locator("#progress-row")).to_be_hidden()
    assert page.evaluate("() => { new RegExp(document.getElementById('matter').pattern, 'v'); return true; }")
    matter = page.get_by_label("Matter reference")
    matter.fill("bad value!")
    assert page.evaluate("document.getElementById('matter').validity.patternMismatch")
    matter.fill("LEASE-2027/12B#3")
    assert not page.evaluate("document.getElementById('matter').validity.patternMismatch")
    page.goto("/")
    assert page.url.rstrip("/").endswith("/console/deposits"), page.url
