"""The issue's whole path in Chromium against a real ``callfleet serve`` (simulated carrier,
time sped up): import contacts with a column mapping, create an assistant, buy a number,
create and run a campaign, watch the live dashboard reach ``completed`` without reloading,
open a call and read its transcript, undo an extracted value; and a member cannot open the
API keys."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.web.conftest import Site, new_context, sign_in, start_site

PEOPLE = ["Ava", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lea"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from start_site(tmp_path_factory.mktemp("web-bar"), CALLFLEET_TIME_SCALE="7200",
                          CALLFLEET_SIM_INVALID_PERCENT="0")


def _csv(tmp: Path) -> Path:
    lines = ["Given,Family,Cell,Remark"]
    for i, name in enumerate(PEOPLE):
        lines.append(f"{name},Tester,(212) 555-{1200 + i:04d},imported")
    path = tmp / "people.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_build_run_watch_and_undo(site: Site, context: BrowserContext,
                                         tmp_path: Path) -> None:
    page = context.new_page()
    sign_in(page, site, site.user("Bar Co", "owner"))

    # A company, then its contacts from a CSV whose headers need mapping.
    page.goto(site.url + "/companies/new")
    page.get_by_label("Name", exact=True).fill("Bar Prospects")
    page.get_by_role("button", name="Create company").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bar Prospects")
    page.get_by_role("link", name="Import CSV").click()
    page.get_by_label("CSV file").set_input_files(_csv(tmp_path))
    page.get_by_role("button", name="Upload and preview").click()
    page.get_by_label("Given").select_option("first_name")
    page.get_by_label("Family").select_option("last_name")
    page.get_by_label("Cell").select_option("phone")
    page.get_by_label("Remark").select_option("")
    expect(page.get_by_label("Company", exact=True)).to_have_value(re.compile("^comp_"))
    page.get_by_role("button", name="Start import").click()
    expect(page.get_by_role("heading", name="Import finished")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("status").first).to_contain_text(f"{len(PEOPLE)} new")

    # An assistant from a template; a number bought and assigned to it.
    page.goto(site.url + "/assistants")
    page.get_by_label("Name", exact=True).fill("Bar setter")
    page.get_by_label("Template").select_option("outbound-setter")
    page.get_by_role("button", name="Create assistant").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bar setter")
    page.goto(site.url + "/phone-numbers")
    page.get_by_label("Area code").fill("212")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("button", name=re.compile(r"^Buy \+1212")).first.click()
    expect(page.get_by_role("status")).to_have_text("Number bought.")
    page.get_by_label(re.compile(r"^Assistant for \+1212")).select_option(label="Bar setter")
    page.get_by_role("button", name="Assign").click()
    expect(page.get_by_role("status")).to_have_text("Assignment saved.")

    # The campaign: all day, every day, one attempt each.
    page.goto(site.url + "/campaigns/new")
    page.get_by_label("Name", exact=True).fill("Bar campaign")
    page.get_by_label("Assistant", exact=True).select_option(label="Bar setter")
    page.get_by_label("Company", exact=True).select_option(label="Bar Prospects")
    page.get_by_role("group", name="Caller-ID numbers").get_by_role("checkbox").first.check()
    page.get_by_label("Window opens").fill("00:00")
    page.get_by_label("Window closes").fill("23:59")
    for day in ("Sat", "Sun"):
        page.get_by_label(day, exact=True).check()
    page.get_by_label("Attempts per contact").fill("1")
    page.get_by_label("Concurrent calls").fill("4")
    page.get_by_role("button", name="Create campaign").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bar campaign")
    page.get_by_role("button", name="Add the company's contacts").click()
    expect(page.get_by_role("status").first).to_contain_text(f"{len(PEOPLE)} contacts added")
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("#campaign-status")).to_have_text(re.compile("running|completed"))

    # The live dashboard reaches completed by itself: no reload, no navigation.
    page.evaluate("window.stillHere = 'yes'")
    expect(page.locator("#campaign-status")).to_have_text("completed", timeout=120_000)
    assert page.evaluate("window.stillHere") == "yes"
    expect(page.locator("#stat-completed")).to_have_text(str(len(PEOPLE)))

    # An answered call: its transcript reads as a conversation.
    page.goto(site.url + "/calls?outcome=answered")
    page.get_by_role("region", name="Calls found").locator("tbody a").first.click()
    transcript = page.get_by_role("region", name="Transcript")
    expect(transcript.locator(".turn-assistant").first).to_contain_text("Bar")
    expect(transcript.locator(".turn-user").first).to_be_visible()
    undo_an_extracted_value(page, site)


def undo_an_extracted_value(page: Page, site: Site) -> None:
    """Find an analysed call that wrote a value into its contact, and undo it from the
    contact's page."""
    page.goto(site.url + "/calls?outcome=answered")
    links = [a.get_attribute("href") for a in
             page.get_by_role("region", name="Calls found").locator("tbody a").all()]
    for _ in range(60):  # the analysis runs in the background after each call
        for href in links:
            page.goto(site.url + str(href))
            undo = page.get_by_role("button", name="Undo the extracted values")
            if undo.count():
                page.get_by_role("region", name="Call").get_by_role("link").first.click()
                expect(page.get_by_role("heading", name="Learned from calls")).to_be_visible()
                page.get_by_role("button", name=re.compile(r"^Undo")).first.click()
                expect(page.get_by_role("status").first).to_have_text(
                    "The values that call wrote were undone.")
                expect(page.get_by_text(re.compile("^Undone"))).to_be_visible()
                return
        page.wait_for_timeout(500)
    raise AssertionError("no analysed call wrote a value")


def test_a_member_cannot_open_api_keys(site: Site, context: BrowserContext) -> None:
    member = site.user("Bar Co", "member")
    page = context.new_page()
    sign_in(page, site, member)
    response = page.goto(site.url + "/settings/api-keys")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("Ask an owner or an admin")
    other = new_context(context.browser)  # type: ignore[arg-type]
    try:
        owner = other.new_page()
        sign_in(owner, site, "owner@bar-co.example.com")
        owner.goto(site.url + "/settings/api-keys")
        expect(owner.get_by_role("heading", name="API keys")).to_be_visible()
    finally:
        other.close()
