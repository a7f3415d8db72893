"""The playground in a real browser (Debian's Chromium, driven by Playwright) against a real
copygen server with the embedded model: a marketer's path, errors, keys, accessibility."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.conftest import Server, start_server, stop_server, wait_ready

CHROMIUM = Path("/usr/bin/chromium")
#: The README's screenshot, rewritten only when asked (COPYGEN_UPDATE_SCREENSHOTS=1), so a
#: test run leaves the working tree clean.
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "playground.png"
#: Chromium on a closed network: no background connections, no first-run, no component update.
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is needed: apt-get install -y chromium (make test does it as root)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 1300})
    opened = context.new_page()
    requested: list[str] = []
    opened.on("request", lambda request: requested.append(request.url))
    opened.goto(f"{server.url}/")
    expect(opened.get_by_label("Channel")).to_contain_text("SMS")  # the catalog loaded
    yield opened
    foreign = [u for u in requested if not u.startswith((server.url, "blob:", "data:"))]
    assert foreign == [], "the page asked another origin"
    context.close()


def _generate(page: Page) -> bool:
    """Press Generate and wait for the result; whether draft text was seen on the way."""
    page.get_by_role("button", name="Generate").click()
    saw_draft = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        saw_draft = saw_draft or bool(page.locator("#draft").text_content())
        status = page.locator("#status").text_content() or ""
        if "variant(s) in" in status or status.startswith("Not generated"):
            return saw_draft
        time.sleep(0.02)
    raise AssertionError("no result within 120 s")


def test_a_brief_streams_drafts_then_checked_variants_with_channel_counts(
    page: Page, tmp_path: Path
) -> None:
    page.get_by_label("Product").fill("Solar phone charger")
    page.get_by_label("Facts").fill("charges a phone in two hours of sunlight")
    page.get_by_label("Audience").fill("hikers")
    page.get_by_label("Channel").select_option("sms")
    page.get_by_label("Tone").fill("playful")
    page.get_by_label("Keywords").fill("🌞")
    page.get_by_label("Variants").fill("2")
    expect(page.locator("#channel-rule")).to_contain_text("70 once any other character")
    emoji_counts = []
    for _ in range(3):  # sampling: a few tries for a variant that carries the emoji
        saw_draft = _generate(page)
        assert saw_draft, "no draft text appeared while decoding"
        items = page.locator("#variants-list li")
        expect(items.first).to_be_visible()
        for index in range(items.count()):
            item = items.nth(index)
            if "🌞" in (item.locator(".copy").text_content() or ""):
                emoji_counts.append(item.locator(".meta").text_content() or "")
        if emoji_counts:
            break
    assert emoji_counts, "no variant carried the emoji keyword in three tries"
    assert all(" / 70 UCS-2" in meta for meta in emoji_counts)  # 70 per segment
    expect(page.get_by_role("button", name="Export CSV")).to_be_enabled()
    update = os.environ.get("COPYGEN_UPDATE_SCREENSHOTS") == "1"
    shot = SCREENSHOT if update else tmp_path / SCREENSHOT.name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_a_variant_can_be_rated_and_the_rating_is_stored(page: Page, server: Server) -> None:
    page.get_by_label("Product").fill("Cold brew subscription")
    page.get_by_label("Channel").select_option("email_subject")
    page.get_by_label("Variants").fill("2")
    _generate(page)
    good = page.get_by_role("button", name="Rate variant 1 good")
    good.click()
    expect(good).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#status")).to_contain_text("rated good")
    expect(page.get_by_role("button", name="Rate variant 1 poor")).to_be_disabled()
    for _ in range(50):  # the stored counts are re-read in the background after a write
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        if 'copygen_feedback_stored{rating="up"} 0.0' not in metrics:
            break
        time.sleep(0.1)
    assert 'copygen_feedback_stored{rating="up"}' in metrics
    stored = [line for line in metrics.splitlines()
              if line.startswith('copygen_feedback_stored{rating="up"}')]  # fmt: skip
    assert float(stored[0].split()[-1]) >= 1


def test_a_validation_error_shows_beside_its_field_and_nothing_typed_is_lost(page: Page) -> None:
    page.get_by_label("Product").fill("")
    page.get_by_label("Audience").fill("commuters")
    _generate(page)
    expect(page.locator("#product-error")).to_contain_text("at least 1 character")
    expect(page.get_by_label("Audience")).to_have_value("commuters")


def test_the_page_has_no_serious_accessibility_violations(page: Page) -> None:
    results = Axe().run(page)
    serious = [
        v["id"]
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]
    assert serious == []


def test_with_keys_on_a_wrong_key_shows_the_401_message(browser: Browser) -> None:
    keyed = start_server({"COPYGEN_API_KEYS": "web:right-key-0123456789abcdef"})
    try:
        wait_ready(keyed)
        page = browser.new_page()
        page.goto(f"{keyed.url}/")
        page.get_by_label("API key").fill("wrong-key-0123456789abcdef")
        page.get_by_label("Product").fill("Desk lamp")
        _generate(page)
        expect(page.locator("#form-error")).to_contain_text("not valid")
        page.close()
    finally:
        stop_server(keyed)
