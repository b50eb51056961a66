"""The alerts inbox, end to end: a copyright image deposited through the console is fingerprinted, a copy
on a web page (served on 127.0.0.1) is scanned, captured and alerted; the rights holder sees the work
beside what was found and moves the alert along the workflow. Viewers and other tenants cannot act."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Site, shot, sign_in
from tests.integration.test_monitoring_web import Site as WebSite
from tests.integration.test_monitoring_web import copy_of, work_image
from tests.integration.test_monitoring_web import page as html_page


@pytest.fixture
def web() -> Iterator[WebSite]:
    w = WebSite()
    try:
        yield w
    finally:
        w.close()


def test_alert_inbox_workflow(page: Page, site: Site, web: WebSite, tmp_path: Path) -> None:
    original = work_image(77)
    work = tmp_path / "harbour-at-dusk.png"
    work.write_bytes(original)
    sign_in(page, site.people["legal"])
    page.goto("/console/upload")
    page.get_by_label("File", exact=True).set_input_files(str(work))
    page.get_by_label("Kind", exact=True).select_option("copyright")
    page.get_by_text("More details (JSON)").click()
    page.get_by_label("Further metadata as a JSON object").fill(json.dumps(
        {"title": "Harbour at dusk", "author": "A. Painter", "work_type": "image"}))
    page.get_by_role("button", name="Deposit", exact=True).click()
    page.wait_for_url(re.compile(r"/console/deposits/dep_[0-9a-f]+$"))
    work_id = page.url.rsplit("/", 1)[1]
    assert site.services.monitoring.fingerprints_of(site.acme, work_id) == ["image"]

    web.add("/copy.jpg", copy_of(original, 0.7, 70), ctype="image/jpeg")
    url = web.add("/gallery.html", html_page("Gallery", images=["/copy.jpg"]))
    report = site.services.monitoring.scan_url(site.acme, url)
    assert len(report.alerts) == 1, report.to_json()
    alert_id = report.alerts[0]

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
    card = page.locator(f"li.alert#{alert_id}")
    expect(card.get_by_role("heading", name="Harbour at dusk")).to_be_visible()
    expect(card.get_by_role("link", name=url)).to_be_visible()
    expect(card.locator(".score")).to_have_text(re.compile(r"^\d+%$"))
    img = card.get_by_role("img", name=re.compile("The registered work"))
    expect(img).to_be_visible()
    assert img.evaluate("i => i.complete && i.naturalWidth") == 320
    shot(page, "alerts-new")
    card.get_by_label("Note").fill("same photo, cropped")
    card.get_by_role("button", name="Confirm infringement").click()
    card = page.locator(f"li.alert#{alert_id}")
    expect(card).to_have_attribute("data-status", "confirmed")
    expect(card.get_by_role("button", name="Mark false positive")).to_have_count(0)
    card.get_by_role("button", name="Notice sent").click()
    expect(page.locator(f"li.alert#{alert_id}")).to_have_attribute("data-status", "notice-sent")
    history = [h["status"] for h in json.loads(site.services.monitoring.alert_row(site.acme, alert_id).history_json)]
    assert history == ["new", "confirmed", "notice-sent"]
    page.get_by_label("Status").select_option("new")
    page.get_by_role("button", name="Show").click()
    expect(page.locator(f"li.alert#{alert_id}")).to_have_count(0)
    shot(page, "alerts-filtered")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, site.people["viewer"])
    page.goto("/console/alerts")
    expect(page.locator(f"li.alert#{alert_id}")).to_be_visible()
    expect(page.locator(f"li.alert#{alert_id} form.alert-actions")).to_have_count(0)

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, site.people["other"])
    page.goto("/console/alerts")
    expect(page.locator(f"li.alert#{alert_id}")).to_have_count(0)
    token = page.locator("form.signout [name=csrf_token]").input_value()
    resp = page.context.request.post(f"/console/alerts/{alert_id}/status", form={"status": "resolved",
                                                                                 "csrf_token": token})
    assert resp.status == 404
    assert page.context.request.get(f"/console/deposits/{work_id}/preview").status == 404
