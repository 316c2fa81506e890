"""Browser fixtures: the real app and sidecar, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.servers import Stack, running_stack

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, built_index: Path) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("e2e-home")
    shutil.copytree(built_index, home / "index")
    with running_stack(home, tmp_path_factory.mktemp("e2e-logs")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is missing: run `make test-e2e` (it installs it).")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def page(browser: Browser) -> Iterator[Page]:
    """One tab for the whole journey, at a common laptop width."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, accept_downloads=True)
    tab = context.new_page()
    yield tab
    context.close()
