"""The log page: the latest checkpoint, each witness's last cosignature and lag, deposits per day."""

from __future__ import annotations

import hashlib
import secrets

from playwright.sync_api import Page, expect

from depository.deposits import DepositRequest
from tests.browser.conftest import Site, shot, sign_in


def test_log_page_shows_checkpoint_witnesses_and_chart(page: Page, site: Site) -> None:
    b = secrets.token_bytes(16)
    [d] = site.services.deposits.create_many(site.acme, [DepositRequest(  # type: ignore[misc]
        "other", hashlib.sha256(b).digest(), hashlib.new("sm3", b).digest(), 16, {}, "x.bin")])
    site.wait_status(d.id, site.acme)
    sign_in(page, site.people["viewer"])
    page.get_by_role("link", name="The log").click()
    cp = site.services.log.latest_checkpoint()
    expect(page.get_by_text(cp.root_hash.hex())).to_be_visible()
    expect(page.get_by_text("Quorum: 2 of 3 must cosign a checkpoint.")).to_be_visible()
    rows = page.locator("section:has(h2:text('Witnesses')) tbody tr")
    expect(rows).to_have_count(3)
    for name in ("court", "notary-a", "notary-b"):
        row = rows.filter(has_text=name)
        expect(row.locator("td[data-label='Last cosignature'] time")).to_have_count(1)
    chart = page.get_by_role("img", name="Deposits per day")
    expect(chart).to_be_visible()
    assert page.locator("svg.chart rect.bar").count() == 30
    shot(page, "log")
