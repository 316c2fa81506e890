"""An analyst's journey in a real browser, in order: sign-in, chat, follow-up, a second user
signing in, approval by that user, telemetry, the sidecar's figures, audit log, knowledge base;
then bad input. Each test continues where the previous one left the shared tab and data."""

from __future__ import annotations

import csv
import json
import subprocess
import urllib.parse
import urllib.request
from typing import Any

from playwright.sync_api import Page, expect

from tests.conftest import RUNBOOKS
from tests.e2e import journey
from tests.e2e.conftest import SECOND_USER
from tests.e2e.servers import Stack

TASK = "Pods in checkout are OOMKilled; raise the memory limit and open a ticket"


def sidecar(stack: Stack, path: str, **params: str) -> dict[str, Any]:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{stack.sidecar_url}{path}{query}", timeout=10) as response:
        return dict(json.loads(response.read()))


def test_chat_answers_a_task_and_a_follow_up(page: Page, stack: Stack):
    journey.open_page(page, stack.app_url, "chat", stack.login("admin"))
    expect(page.get_by_text("Try one of these")).to_be_visible()
    journey.submit_task(page, TASK)
    journey.wait_for_answers(page, 1)
    expect(page.get_by_text("Done - verdict PASS")).to_be_visible()  # the live status box
    expect(page.get_by_text("Reviewer: PASS")).to_be_visible()
    expect(journey.visible_text(page, "pod-oomkilled.md#mitigation")).to_be_visible()
    expect(page.get_by_text("2 actions wait for approval before running.")).to_be_visible()
    expect(page.get_by_role("button", name="Withdraw")).to_have_count(2)  # own: no Approve
    journey.open_expander(page, "Plan (")
    expect(journey.visible_text(page, "jira.create_issue")).to_be_visible()
    journey.open_expander(page, "Citations (")
    expect(journey.visible_text(page, "score 0.")).to_be_visible()
    journey.screenshot(page, "chat")

    journey.submit_task(page, "what should I check first?")
    journey.wait_for_answers(page, 2)
    expect(page.get_by_test_id("stChatMessage")).to_have_count(4)
    expect(page.get_by_test_id("stChatMessage").last).to_contain_text("pod-oomkilled.md#")

    # Someone else signs in at the same browser and asks a read-only question: signing out
    # cleared the admin's chat.
    journey.sign_out(page)
    journey.sign_in(page, *stack.login(SECOND_USER))
    journey.submit_task(page, "Pods are OOMKilled in checkout: what should I check first?")
    journey.wait_for_answers(page, 1)
    expect(page.get_by_test_id("stChatMessage")).to_have_count(2)
    expect(page.get_by_test_id("stChatMessage").last).to_contain_text("pod-oomkilled.md#")


def test_approving_runs_the_tool(page: Page, stack: Stack):
    # The admin asked; dana, an approver, decides (four eyes).
    journey.open_page(page, stack.app_url, "approvals", stack.login(SECOND_USER))
    approve = page.get_by_role("button", name="Approve")
    expect(approve).to_have_count(2)  # the Jira ticket and the pull request from the chat
    journey.screenshot(page, "approvals")
    approve.first.click()
    expect(page.get_by_role("button", name="Approve")).to_have_count(1)
    expect(page.get_by_test_id("stDataFrame")).to_be_visible()  # the decided table
    expect(page.get_by_text("approved by dana")).to_be_visible()
    # The decision ran the tool: a sandbox ticket or a pull request branch now exists.
    branches = subprocess.run(
        ["git", "-C", str(stack.home / "sandbox_repo"), "branch"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flash = page.get_by_test_id("stAlertContentSuccess").inner_text()
    assert "SANDBOX-1" in flash or "copilot/" in branches


def test_telemetry_charts_follow_filters_and_match_the_sidecar(page: Page, stack: Stack, tmp_path):
    journey.open_page(page, stack.app_url, "telemetry", stack.login("admin"))
    expect(journey.charts(page)).to_have_count(5, timeout=60_000)
    total = sidecar(stack, "/metrics/llm/summary")["summary"]
    assert total["calls"] > 0
    expect(journey.metric(page, "LLM calls")).to_have_text(f"{total['calls']:,}")
    journey.screenshot(page, "telemetry")

    journey.choose(page, "User", SECOND_USER)
    dana = sidecar(stack, "/metrics/llm/summary", user=SECOND_USER)["summary"]
    assert 0 < dana["calls"] < total["calls"]
    expect(journey.metric(page, "LLM calls")).to_have_text(f"{dana['calls']:,}")
    expect(journey.charts(page)).to_have_count(4)  # dana's question asked for no write

    download = journey.download(page, "Download CSV", nth=-1)
    assert download.suggested_filename == "provider_snapshot.csv"
    saved = tmp_path / "providers.csv"
    download.save_as(saved)
    with saved.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sum(int(r["calls"]) for r in rows) == dana["calls"]
    assert {r["provider"] for r in rows} == {"stub"}


def test_governance_figures_match_between_page_and_sidecar(page: Page, stack: Stack):
    journey.open_page(page, stack.app_url, "telemetry", stack.login("admin"))
    governance = sidecar(stack, "/metrics/governance/summary")
    by_status = {r["status"]: r["approvals"] for r in governance["approvals"]}
    assert by_status["approved"] == 1 and by_status["pending"] >= 1
    expect(journey.metric(page, "Approved")).to_have_text(str(by_status["approved"]))
    expect(journey.metric(page, "Pending")).to_have_text(str(by_status["pending"]))


def test_audit_and_knowledge_pages(page: Page, stack: Stack):
    journey.open_page(page, stack.app_url, "audit", stack.login("admin"))
    expect(page.get_by_text("Chain verified")).to_be_visible()
    journey.screenshot(page, "audit")
    journey.open_page(page, stack.app_url, "knowledge", stack.login("admin"))
    expect(journey.metric(page, "Runbooks")).to_have_text(str(RUNBOOKS))
    page.get_by_label("Search the runbooks", exact=True).fill("certificate expires soon")
    page.get_by_label("Search the runbooks", exact=True).press("Enter")
    expect(page.get_by_text("tls-certificate-expiry.md").first).to_be_visible(timeout=60_000)
    journey.screenshot(page, "knowledge")


def test_evaluation_page(page: Page, stack: Stack):
    """The committed example bench report (docs/bench-example.json) as the page draws it."""
    journey.open_page(page, stack.app_url, "evaluation", stack.login("admin"))
    expect(page.get_by_text("Latest run:")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Earlier bench runs")).to_be_visible(timeout=60_000)
    journey.screenshot(page, "evaluation")


def test_bad_input_gets_a_clear_error(page: Page, stack: Stack):
    journey.open_page(page, stack.app_url, "chat", stack.login("admin"))
    journey.submit_task(page, "   ")
    journey.expect_error(page, "The task is empty")
    journey.submit_task(page, "x" * 8100)
    journey.expect_error(page, "the limit is 8,000")
    expect(page.get_by_text("Traceback")).to_have_count(0)
