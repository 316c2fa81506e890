"""A whole governed run with LLM_PROVIDER=openai, against the fake OpenAI server.

The server plays planner, executor and reviewer (it tells them apart by the system prompt)
and cites the passages it was shown. The run is built exactly as the entry points build it:
`Services(settings).run(...)`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import secrets
import string
from collections.abc import Iterator
from typing import Any

import pytest

from copilot.config import Settings
from copilot.export import export_files
from copilot.llm.pricing import DEFAULT_PRICES
from copilot.run.context import RunHooks
from copilot.run.view import as_dict
from copilot.service import Services, make_retriever
from copilot.telemetry import Filters
from tests.fake_openai import Behaviour, FakeOpenAI, Recorded, ok, status

TASK = "Pods in the checkout service are OOMKilled; what should I look at?"
CANARY = "sk-canary-" + "".join(secrets.choice(string.ascii_letters) for _ in range(32))
TOKENS = {"plan": (1200, 300), "execute": (800, 150), "review": (900, 40)}
_PASSAGE_ID = re.compile(r'<passage id="([^"]+)"')


def purpose_of(request: Recorded) -> str:
    role = re.match(r"You are the (\w+)", request.message("system"))
    return {"planner": "plan", "executor": "execute", "reviewer": "review"}[
        role.group(1) if role else ""
    ]


def play_the_model(request: Recorded) -> Behaviour:
    """Valid JSON for each role, citing only passages the request showed."""
    ids = _PASSAGE_ID.findall(request.message("user"))
    purpose = purpose_of(request)
    if purpose == "plan":
        steps = [
            {"title": "Diagnose the OOMKilled pods", "action": "answer", "citations": ids[:1]},
            {"title": "Mitigate the memory pressure", "action": "answer", "citations": ids[1:2]},
        ]
        reply: dict[str, Any] = {"steps": steps}
    elif purpose == "execute":
        return ok(f"- Read the pod events and limits [{ids[0]}]", *TOKENS[purpose])
    else:
        reply = {"verdict": "pass", "reasons": ["every line cites a retrieved passage"]}
    return ok(json.dumps(reply), *TOKENS[purpose])


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(responder=play_the_model) as fake:
        yield fake
    assert not fake.errors


@pytest.fixture
def services(settings: Settings, server: FakeOpenAI) -> Services:
    return Services(
        dataclasses.replace(
            settings,
            llm_provider="openai",
            openai_api_key=CANARY,
            openai_base_url=server.openai_url,
            openai_model="gpt-4o-mini",
            llm_max_attempts=2,
            llm_rate_limit_per_min=10_000,
        )
    )


@pytest.fixture(autouse=True)
def debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the openai client's included


def usage(services: Services, run_id: str) -> list[dict[str, Any]]:
    return services.store.query(
        "SELECT purpose, provider, model, prompt_tokens, completion_tokens, cost_usd, status,"
        " error_class, attempts, fallback FROM llm_usage WHERE run_id = ? ORDER BY created_at",
        [run_id],
    )


def audit_actions(services: Services, run_id: str) -> list[str]:
    rows = services.store.query(
        "SELECT action FROM audit_events WHERE run_id = ? ORDER BY seq", [run_id]
    )
    return [r["action"] for r in rows]


def assert_canary_never_stored_or_logged(
    services: Services, caplog: pytest.LogCaptureFixture, stored: str = TASK
) -> None:
    # The store closes its connection after every transaction, so the files are complete.
    raw = b"".join(p.read_bytes() for p in services.settings.home.glob("governance.duckdb*"))
    assert stored.encode() in raw  # strings are findable in the raw bytes, so absence means it
    assert CANARY.encode() not in raw and CANARY[10:].encode() not in raw
    assert CANARY not in caplog.text and CANARY[10:] not in caplog.text
    assert all(CANARY not in str(r.args) for r in caplog.records)
    out = services.settings.home / "export"
    export_files(services.store, out, Filters.parse(None, None))
    exported = b"".join(f.read_bytes() for f in out.iterdir())
    assert b"OOMKilled" in exported  # the export really holds the run (its task is audited)
    assert CANARY.encode() not in exported and CANARY[10:].encode() not in exported


def test_a_run_records_openai_usage_and_cost(services, server, caplog):
    result = services.run(TASK)

    # The fake model's one line ("Read the pod events and limits") cites whichever passage
    # came first, not the section that says it: the reviewer's support check warns.
    assert result.status == "completed" and result.verdict == "warn", result.reasons
    problems = [r for r in result.reasons if r.startswith("step ")]
    assert problems and all("weakly supported" in r for r in problems), problems
    assert (result.provider, result.model, result.fallbacks) == ("openai", "gpt-4o-mini", 0)
    assert all(s.citations for s in result.steps)
    rows = usage(services, result.run_id)
    assert [r["purpose"] for r in rows] == ["plan", "execute", "execute", "review"]
    price = json.loads(DEFAULT_PRICES.read_text())["gpt-4o-mini"]
    for row in rows:
        prompt, completion = TOKENS[row["purpose"]]
        assert (row["provider"], row["model"], row["status"]) == ("openai", "gpt-4o-mini", "ok")
        assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, completion)
        expected = (prompt * price["input"] + completion * price["output"]) / 1_000_000
        assert row["cost_usd"] == pytest.approx(expected)
        assert row["attempts"] == 1 and not row["fallback"]
    assert result.cost == pytest.approx(sum(r["cost_usd"] for r in rows), abs=1e-6)
    assert len(server.requests) == 4
    assert all(r.headers["authorization"] == f"Bearer {CANARY}" for r in server.requests)
    assert_canary_never_stored_or_logged(services, caplog)


def test_invalid_json_once_is_repaired(services, server, caplog):
    chatty = "Sure! Here is the plan: step one, check the pods."
    server.script(ok(chatty, 500, 20))
    result = services.run(TASK)

    assert result.status == "completed" and result.fallbacks == 0
    plan_requests = [r for r in server.requests if purpose_of(r) == "plan"]
    assert len(plan_requests) == 2
    first, repair = (r.body["messages"] for r in plan_requests)
    assert repair[: len(first)] == first
    assert repair[-2] == {"role": "assistant", "content": chatty}
    assert "not valid" in repair[-1]["content"]
    plan_rows = [r for r in usage(services, result.run_id) if r["purpose"] == "plan"]
    assert [(r["status"], r["error_class"]) for r in plan_rows] == [
        ("failed", "InvalidJSON"),
        ("ok", None),
    ]
    # The invalid reply was billed, so it is costed too.
    assert plan_rows[0]["cost_usd"] == pytest.approx((500 * 0.15 + 20 * 0.60) / 1_000_000)
    assert "llm.failed" in audit_actions(services, result.run_id)
    assert_canary_never_stored_or_logged(services, caplog)


def test_a_failing_provider_falls_back_to_the_stub_and_the_run_completes(services, server, caplog):
    def failing(request: Recorded) -> Behaviour:
        # A badly behaved server that quotes the key back in its error.
        echoed = request.headers["authorization"]
        return status(500, headers={"Retry-After": "0"}, message=f"upstream broke for {echoed}")

    server.responder = failing
    result = services.run(TASK)

    assert result.status == "completed" and result.fallbacks >= 3  # plan, steps, review
    rows = usage(services, result.run_id)
    failed = [r for r in rows if r["status"] == "failed"]
    stub = [r for r in rows if r["provider"] == "stub"]
    assert failed and all(
        (r["provider"], r["model"], r["error_class"], r["attempts"])
        == ("openai", "gpt-4o-mini", "InternalServerError", 2)
        for r in failed
    )
    assert len(stub) == len(failed) and all(r["fallback"] and r["status"] == "ok" for r in stub)
    assert all(r["cost_usd"] is None for r in failed)
    actions = audit_actions(services, result.run_id)
    assert actions.count("llm.fallback") == len(failed) == result.fallbacks
    assert actions.count("llm.failed") == len(failed)
    assert len(server.requests) == 2 * len(failed)  # LLM_MAX_ATTEMPTS=2, never more
    assert_canary_never_stored_or_logged(services, caplog, stored="upstream broke for Bearer")


def test_a_rejected_key_trips_the_breaker_so_the_server_is_asked_once(services, server, caplog):
    server.responder = lambda request: status(401, message="invalid api key")
    result = services.run(TASK)

    assert result.status == "completed" and result.fallbacks >= 3
    assert len(server.requests) == 1  # 401 is not retried, and later steps skip the provider
    rows = usage(services, result.run_id)
    failed = [r for r in rows if r["status"] == "failed"]
    assert failed[0]["error_class"] == "AuthenticationError" and failed[0]["attempts"] == 1
    assert all(r["attempts"] == 0 for r in failed[1:])  # skipped, still recorded
    assert len(failed) == result.fallbacks
    assert_canary_never_stored_or_logged(services, caplog)


class Streaming(RunHooks):
    streams = True

    def __init__(self) -> None:
        self.pieces: dict[int, list[str]] = {}

    def on_text(self, position: int, delta: str) -> None:
        self.pieces.setdefault(position, []).append(delta)


def test_answers_stream_piece_by_piece_and_usage_is_still_recorded(services, server):
    hooks = Streaming()
    result = services.run(TASK, hooks=hooks)

    execute = [r for r in server.requests if purpose_of(r) == "execute"]
    assert execute and all(r.body.get("stream") is True for r in execute)
    for step in result.steps:
        assert "".join(hooks.pieces[step.position]).strip() == step.answer
        assert len(hooks.pieces[step.position]) > 1  # really in pieces, not one blob
    rows = [r for r in usage(services, result.run_id) if r["purpose"] == "execute"]
    assert rows and all(
        (r["status"], r["prompt_tokens"], r["completion_tokens"]) == ("ok", *TOKENS["execute"])
        for r in rows
    )


def test_a_stream_broken_mid_answer_says_so_before_the_offline_answer(services, server):
    def half_then_error(request: Recorded) -> Behaviour:
        if purpose_of(request) != "execute":
            return play_the_model(request)
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": "- half an "}}],
        }
        events = [chunk, {"error": {"message": "overloaded"}}]
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
        return Behaviour(raw_body=body, content_type="text/event-stream")

    server.responder = half_then_error
    hooks = Streaming()
    result = services.run(TASK, hooks=hooks)
    shown = "".join(hooks.pieces[1])
    assert shown.startswith("- half an ") and "stopped mid-answer" in shown
    assert result.steps[0].answer.startswith("- ") and "half an" not in result.steps[0].answer
    assert result.fallbacks >= 1


def test_secrets_never_leave_the_machine_in_a_prompt(services, server, tmp_path):
    """A key pasted into the task, and one in a runbook, are redacted before any request."""
    import shutil

    pasted = "sk-pasted-" + "Q" * 30
    corpus = tmp_path / "corpus"
    shutil.copytree(services.settings.corpus, corpus)
    runbook = corpus / "pod-oomkilled.md"
    in_runbook = "ghp_" + "R" * 36
    runbook.write_text(runbook.read_text() + f"\n\n## Access\nUse token {in_runbook} to log in.\n")
    services.settings = dataclasses.replace(services.settings, corpus=corpus)
    services.retriever = make_retriever(services.settings)
    services.retriever.refresh()
    result = services.run(f"{TASK} The key {pasted} leaked; what should I look at?")
    sent = "\n".join(json.dumps(r.body) for r in server.requests)
    assert server.requests and pasted not in sent and in_runbook not in sent
    assert "[REDACTED]" in sent
    assert pasted not in result.task and pasted not in json.dumps(as_dict(result))
