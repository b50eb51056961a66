"""Sign-in, sign-out, lockout, cookie flags, CSRF rejection and roles, in real Chromium."""

from __future__ import annotations

import re

from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import Site, shot, sign_in


def test_sign_in_wrong_password_then_right_then_sign_out(page: Page, context: BrowserContext, site: Site) -> None:
    page.goto("/console/deposits")
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next=/console/deposits"))
    assert page.locator("html").get_attribute("lang") == "en"
    shot(page, "sign-in")
    page.get_by_label("E-mail").fill(site.people["legal"].email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("wrong e-mail or password")
    sign_in(page, site.people["legal"])
    expect(page.get_by_role("heading", name="Deposits")).to_be_visible()
    expect(page.get_by_text("legal@acme.example")).to_be_visible()
    cookie = next(c for c in context.cookies() if c["name"] == "dep_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert not cookie["secure"]  # plain http on 127.0.0.1 only; any other host gets Secure
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    page.goto("/console/deposits")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))


def test_signing_out_kills_the_copied_cookie(browser_context_pair: tuple[Page, Page], site: Site) -> None:
    first, second = browser_context_pair
    sign_in(first, site.people["legal"])
    token = next(c for c in first.context.cookies() if c["name"] == "dep_session")
    second.context.add_cookies([token])
    second.goto("/console/deposits")
    expect(second.get_by_role("heading", name="Deposits")).to_be_visible()
    first.get_by_role("button", name="Sign out").click()
    second.goto("/console/deposits")
    expect(second).to_have_url(re.compile(r"/console/sign-in"))


def test_lockout_after_five_failures(page: Page, site: Site) -> None:
    person = site.people["lockme"]
    page.goto("/console/sign-in")
    for _ in range(5):
        page.get_by_label("E-mail").fill(person.email)
        page.get_by_label("Password").fill("wrong guess")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("wrong e-mail or password")
    page.get_by_label("E-mail").fill(person.email)
    page.get_by_label("Password").fill(person.password)  # the right password no longer helps
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("too many failed sign-ins; try again in 15 minutes")
    assert "/console/sign-in" in page.url
    shot(page, "sign-in-locked")


def test_csrf_token_required_and_origin_checked(page: Page, site: Site) -> None:
    sign_in(page, site.people["legal"])
    api = page.context.request
    no_token = api.post("/console/sign-out", form={"x": "1"})
    assert no_token.status == 403
    assert "did not come from this site" in no_token.text()
    page.goto("/console/upload")
    token = page.locator("#upload-form [name=csrf_token]").input_value()
    forged = api.post("/console/deposits", headers={"Origin": "https://evil.example", "X-CSRF-Token": token},
                      multipart={"kind": "other", "file": {"name": "x.txt", "mimeType": "text/plain",
                                                           "buffer": b"x"}})
    assert forged.status == 403
    wrong = api.post("/console/deposits", headers={"X-CSRF-Token": "0" * 64},
                     multipart={"kind": "other", "file": {"name": "x.txt", "mimeType": "text/plain", "buffer": b"x"}})
    assert wrong.status == 403
    page.goto("/console/deposits")  # still signed in: the refused sign-out did nothing
    expect(page.get_by_role("heading", name="Deposits")).to_be_visible()


def test_viewer_reads_but_cannot_upload(page: Page, site: Site) -> None:
    sign_in(page, site.people["viewer"])
    expect(page.get_by_role("link", name="Deposit a file")).to_have_count(0)
    resp = page.goto("/console/upload")
    assert resp is not None and resp.status == 403
    expect(page.get_by_role("alert")).to_contain_text("viewer")
    page.goto("/console/deposits")
    token = page.locator("form.signout [name=csrf_token]").input_value()
    posted = page.context.request.post("/console/deposits", headers={"X-CSRF-Token": token},
                                       multipart={"kind": "other", "file": {"name": "x.txt",
                                                                            "mimeType": "text/plain", "buffer": b"x"}})
    assert posted.status == 403


def test_security_headers(page: Page, site: Site) -> None:
    resp = page.goto("/console/sign-in")
    assert resp is not None
    h = resp.headers
    assert "script-src 'self'" in h["content-security-policy"] and "frame-ancestors 'none'" in h[
        "content-security-policy"]
    assert h["x-content-type-options"] == "nosniff"
    assert h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "no-referrer"
