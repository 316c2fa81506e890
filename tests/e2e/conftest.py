"""Browser fixtures: the real app and sidecar, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.servers import REPO, Stack, running_stack

SECOND_USER = "dana"

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
        running.passwords.update(register_users(home))
        yield running


def register_users(home: Path) -> dict[str, str]:
    """The first admin (created with its password file by whichever process starts first)
    and a second person, an approver, added by that admin through the CLI."""
    password = "dana-e2e-password"
    env = {**os.environ, "COPILOT_HOME": str(home), "COPILOT_AUTH": "local"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "copilot",
            "--user",
            "admin",
            "users",
            "add",
            SECOND_USER,
            "--role",
            "approver",
            "--password-stdin",
        ],
        input=password + "\n",
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    admin = (home / "initial_admin_password").read_text().strip()
    return {"admin": admin, SECOND_USER: password}


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
