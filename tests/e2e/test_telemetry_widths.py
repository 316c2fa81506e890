"""The Telemetry page at laptop and desktop widths, on 30 days of day buckets: the screenshots
the README shows (docs/screenshots/telemetry-1280.png, telemetry-1920.png)."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import Page, expect

from copilot.config import Settings
from copilot.service import open_store
from copilot.store import utcnow
from tests.e2e import journey
from tests.e2e.servers import Stack
from tests.test_telemetry import seed

WIDTHS = (1280, 1920)


def test_telemetry_is_legible_at_1280_and_1920(page: Page, stack: Stack):
    seed(open_store(Settings(home=stack.home)), base=utcnow() - timedelta(hours=2))
    # The app's first request goes to its root: a deep link as the very first request after
    # a server start shows Streamlit's "page not found" notice once, over the page.
    journey.open_page(page, stack.app_url, "chat", stack.login("admin"))
    journey.open_page(page, stack.app_url, "telemetry", stack.login("admin"))
    journey.choose(page, "Time range", "Last 30 days")
    journey.choose(page, "Bucket", "1d")
    expect(journey.charts(page)).to_have_count(5, timeout=60_000)
    for width in WIDTHS:
        path = journey.screenshot_at_width(page, "telemetry", width)
        assert path.name == f"telemetry-{width}.png" and path.stat().st_size > 0
