"""Small steps of a user's journey through the app, shared by every browser test.

Each step acts like a person (click, type, read) and waits for something visible, never a
fixed sleep. New pages join the journey by adding a step or two here.
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Download, Locator, Page, expect

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LONG = 180_000  # ms: the first chat run loads torch and the model in the app process
VERDICT_BADGE = re.compile(r"Reviewer: (PASS|WARN|FAIL)$")  # case-sensitive, unlike text=
PAGES = {
    "chat": "",
    "approvals": "approvals",
    "telemetry": "telemetry",
    "audit": "audit",
    "knowledge": "knowledge",
    "evaluation": "evaluation",
}


def open_page(page: Page, base_url: str, name: str, login: tuple[str, str]) -> None:
    """Open a page by its URL. Loading a URL starts a new Streamlit session, which asks to
    sign in again; the page the URL names opens after that."""
    page.goto(f"{base_url}/{PAGES[name]}")
    sign_in(page, *login)
    expect(page.get_by_role("heading", level=1).first).to_be_visible(timeout=60_000)


def sign_in(page: Page, name: str, password: str) -> None:
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=60_000)
    page.get_by_label("User name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    # The sidebar exists only once signed in, and it names who is.
    expect(page.get_by_test_id("stSidebar")).to_contain_text(name, timeout=60_000)


def sign_out(page: Page) -> None:
    page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=60_000)


def submit_task(page: Page, task: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    expect(box).to_be_editable(timeout=60_000)
    box.fill(task)
    box.press("Enter")


def wait_for_answers(page: Page, count: int) -> None:
    """Wait until `count` assistant answers (each with its verdict badge) are on the page."""
    expect(page.get_by_text(VERDICT_BADGE)).to_have_count(count, timeout=LONG)


def expect_error(page: Page, text: str) -> None:
    expect(page.get_by_text(text, exact=False).first).to_be_visible(timeout=60_000)


def open_expander(page: Page, label_start: str, nth: int = -1) -> None:
    expanders = page.get_by_test_id("stExpander").filter(has_text=label_start)
    target = expanders.nth(nth) if nth >= 0 else expanders.last
    target.locator("summary").click()


def download(page: Page, button_text: str, nth: int = 0) -> Download:
    button = page.get_by_test_id("stDownloadButton").filter(has_text=button_text).nth(nth)
    with page.expect_download(timeout=60_000) as info:
        button.click()
    return info.value


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # Streamlit scrolls inside its main container, so a full-page shot needs a tall viewport.
    size = page.viewport_size or {"width": 1366, "height": 768}
    height = page.evaluate(
        "Math.max(...Array.from(document.querySelectorAll('[data-testid]'), e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": size["width"], "height": min(int(height), 4000)})
    # Plotly re-lays out on the resize event: wait until every plot spans its container.
    page.wait_for_function(
        "Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".every(p => Math.abs(p.getBoundingClientRect().width"
        " - p.parentElement.getBoundingClientRect().width) < 2)"
    )
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    return path


def choose(page: Page, label: str, option: str) -> None:
    """Pick an option of the st.selectbox whose label is `label`."""
    page.get_by_test_id("stSelectbox").filter(has_text=label).first.click()
    page.get_by_role("option", name=option, exact=True).click()


def metric(page: Page, label: str) -> Locator:
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def charts(page: Page) -> Locator:
    return page.get_by_test_id("stPlotlyChart")


def visible_text(page: Page, text: str) -> Locator:
    """The first visible element with text (the collapsed status box repeats answer text)."""
    return page.get_by_text(text, exact=False).locator("visible=true").first


def screenshot_at_width(page: Page, name: str, width: int) -> Path:
    """`<name>-<width>.png` with the window that wide; Plotly re-lays out on the resize."""
    size = page.viewport_size or {"width": 1366, "height": 768}
    page.set_viewport_size({"width": width, "height": size["height"]})
    try:
        return screenshot(page, f"{name}-{width}")
    finally:
        page.set_viewport_size(size)
