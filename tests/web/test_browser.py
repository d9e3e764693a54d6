"""The web app in Chromium against a real ``callfleet serve``: signing in, the CRM pages, live
search, keyboard use, and the security rules a user could run into."""

from __future__ import annotations

import re

from playwright.sync_api import BrowserContext, expect

from tests.web.conftest import Site, new_context, sign_in

NAV = ["Campaigns", "Contacts", "Companies", "Calls", "Assistants", "Phone numbers", "Settings"]


def test_sign_in_navigation_and_sign_out(site: Site, context: BrowserContext) -> None:
    email = site.user("Acme", "owner")
    page = context.new_page()
    page.goto(site.url + "/contacts")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fcontacts$"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("wrong password!")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Email or password is incorrect")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(site.url + "/contacts")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link")).to_have_text(NAV)
    expect(nav.get_by_role("link", name="Contacts")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("main")).to_be_visible()
    expect(page.get_by_role("heading", name="No contacts yet")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(site.url + "/login")
    page.goto(site.url + "/companies")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fcompanies$"))


def test_crm_pages_with_the_keyboard_and_live_search(site: Site,
                                                     context: BrowserContext) -> None:
    email = site.user("Keyboard Co", "member")
    page = context.new_page()
    sign_in(page, site, email)
    page.goto(site.url + "/companies/new")
    # Keyboard only: type, Tab between fields, Enter submits.
    page.get_by_label("Name", exact=True).focus()
    page.keyboard.type("Northwind Traders")
    page.keyboard.press("Tab")
    page.keyboard.type("northwind.example")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Company created.")
    expect(page.get_by_role("heading", level=1)).to_have_text("Northwind Traders")

    page.get_by_role("link", name="Add contact").first.click()
    page.get_by_label("First name").fill("Sarah")
    page.get_by_label("Last name").fill("Chen")
    page.get_by_label("Phone", exact=True).fill("12")
    page.get_by_role("button", name="Create contact").click()
    # The error sits beside the field, the field says it is invalid, and the summary links it.
    phone = page.get_by_label("Phone", exact=True)
    expect(phone).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#e-phone")).to_have_text("Is not a valid phone number")
    expect(page.get_by_role("alert").get_by_role("link")).to_have_attribute("href", "#f-phone")
    expect(page.get_by_label("First name")).to_have_value("Sarah")
    phone.fill("(415) 555-1234")
    page.get_by_role("button", name="Create contact").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Sarah Chen")
    expect(page.get_by_text("+14155551234")).to_be_visible()

    for first, phone_number in (("Bob", "+14155550111"), ("Carla", "+12125550123")):
        page.goto(site.url + "/contacts/new")
        page.get_by_label("First name").fill(first)
        page.get_by_label("Last name").fill("Jones")
        page.get_by_label("Company").select_option(label="Northwind Traders")
        page.get_by_label("Phone", exact=True).fill(phone_number)
        page.get_by_role("button", name="Create contact").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text(first)

    page.goto(site.url + "/contacts")
    rows = page.get_by_role("region", name="Contacts found").locator("tbody tr")
    expect(rows).to_have_count(3)
    page.evaluate("window.notReloaded = true")
    page.get_by_label("Search").fill("212 555")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Carla Jones")
    expect(page).to_have_url(re.compile(r"search=212\+555"))
    assert page.evaluate("window.notReloaded") is True  # swapped by htmx, not reloaded
    page.get_by_label("Search").fill("")
    page.get_by_label("Lead status").select_option("qualified")
    expect(page.get_by_role("heading", name="No contacts match")).to_be_visible()


def test_security_rules(site: Site, context: BrowserContext) -> None:
    owner_a = site.user("Tenant A", "owner")
    user_b = site.user("Tenant B", "owner")
    page = context.new_page()
    sign_in(page, site, owner_a)
    page.goto(site.url + "/companies/new")
    page.get_by_label("Name", exact=True).fill("A private company")
    page.get_by_role("button", name="Create company").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("A private company")
    company_url = page.url.split("?")[0]

    # A form post without its CSRF token, from this signed-in browser, is refused.
    refused = page.request.post(site.url + "/companies/new",
                                form={"name": "Forged company"}, max_redirects=0)
    assert refused.status == 403
    page.goto(site.url + "/companies")
    expect(page.get_by_text("Forged company")).to_have_count(0)

    # Team B's user sees a 404 for team A's company.
    other = new_context(context.browser)  # type: ignore[arg-type]
    try:
        page_b = other.new_page()
        sign_in(page_b, site, user_b)
        response = page_b.goto(company_url)
        assert response is not None and response.status == 404
        expect(page_b.get_by_role("heading", name="Not found")).to_be_visible()
        expect(page_b.get_by_text("A private company")).to_have_count(0)
    finally:
        other.close()
