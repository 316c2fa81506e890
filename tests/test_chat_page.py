"""The app through Streamlit's AppTest: navigation, the chat flow, approvals, bad input."""

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from copilot.config import Settings
from tests.conftest import REPO, RUNBOOKS

APP = str(REPO / "streamlit_app.py")
OOM = "Pods in checkout are OOMKilled; raise the limit and open a ticket"


@pytest.fixture
def app(settings: Settings, monkeypatch) -> AppTest:
    monkeypatch.setenv("COPILOT_HOME", str(settings.home))
    monkeypatch.setenv("COPILOT_CORPUS", str(settings.corpus))
    monkeypatch.delenv("LLM_PROVIDER", raising=False)
    monkeypatch.chdir(settings.home)
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def texts(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown) + "\n".join(c.value for c in at.caption)


def test_chat_answers_with_plan_citations_and_verdict(app: AppTest):
    assert app.sidebar.selectbox[0].value == "stub"
    app.chat_input[0].set_value("TLS certificate for api.acme.com expires in 3 days").run()
    assert not app.exception and not app.error
    body = texts(app)
    assert "tls-certificate-expiry.md#" in body  # answer lines cite their runbook chunks
    labels = [e.label for e in app.expander]
    assert any(label.startswith("Plan (") for label in labels)
    assert any(label.startswith("Citations (") for label in labels)
    assert "Reviewer: PASS" in body  # st.badge renders as a markdown badge
    assert len(app.chat_message) == 2


def test_a_task_no_runbook_covers_says_so_and_why(app: AppTest):
    app.chat_input[0].set_value("SAP HANA memory allocator throws errors in the finance system")
    app.run()
    assert not app.exception and not app.error
    body = texts(app)
    assert "**No runbook covers this task.**" in body and "Possibly related:" in body
    assert "Why: no runbook mentions HANA (relevance 0." in body
    assert "Reviewer: WARN" in body


def test_follow_up_stays_in_the_same_chat(app: AppTest):
    app.chat_input[0].set_value("Kafka consumer lag keeps growing on orders").run()
    app.chat_input[0].set_value("what do I check first?").run()
    assert not app.exception and not app.error
    assert len(app.chat_message) == 4
    assert "message-queue-consumer-lag.md#" in texts(app)


def test_bad_input_shows_a_clear_error(app: AppTest):
    app.chat_input[0].set_value("   ").run()
    assert "The task is empty" in app.error[0].value
    app.chat_input[0].set_value("y" * 9000).run()
    assert "limit is 8,000" in app.error[0].value
    assert not app.exception


def test_a_request_is_approved_on_the_approvals_page(app: AppTest, settings):
    from copilot.service import Services

    Services(settings).run(OOM, user="alice")  # someone else asked; analyst decides
    app.switch_page("pages/screens/approvals.py").run()
    assert not app.exception
    approve = [b for b in app.button if b.label == "Approve"]
    assert len(approve) == 2
    approve[0].click().run()
    assert not app.exception and not app.error
    assert len([b for b in app.button if b.label == "Approve"]) == 1
    flash = " ".join(s.value for s in app.success)
    assert "approved by analyst" in flash and "created" in flash
    made = [h.value for h in app.subheader]
    assert "Made in the sandbox" in made  # the ticket or branch the approval created


def test_the_chat_shows_its_requests_inline_and_the_run_continued_elsewhere(app: AppTest, settings):
    from copilot.service import Services

    app.chat_input[0].set_value(OOM).run()
    assert any("wait for approval" in i.value for i in app.info)
    # The cards are inline in the conversation; nobody approves their own request.
    assert not [b for b in app.button if b.label == "Approve"]
    assert len([b for b in app.button if b.label == "Withdraw"]) == 2
    # A lead approves one request from another process; the requester withdraws the other.
    pending = [r["approval_id"] for r in Services(settings).store.query(
        "SELECT approval_id FROM approvals WHERE status = 'pending' ORDER BY step"
    )]  # fmt: skip
    Services(settings).engine().decide(pending[0], approve=True, user="lead")
    app.run()
    next(t for t in app.text_input if t.label.startswith("Note")).set_value("CAB first")
    next(b for b in app.button if b.label == "Withdraw").click().run()
    assert not app.exception
    body = texts(app)
    assert "rejected by analyst: CAB first" in body
    assert "1 action done." in body and "1 action rejected." in body
    assert not [b for b in app.button if b.label == "Approve"]


def test_a_reload_reopens_the_conversation_from_the_store(app: AppTest, settings):
    app.chat_input[0].set_value("Redis is evicting keys").run()
    conversation = app.query_params["c"]
    fresh = AppTest.from_file(APP, default_timeout=120)
    fresh.query_params["c"] = conversation
    fresh.run()
    assert not fresh.exception
    assert len(fresh.chat_message) == 2
    assert "redis-memory-eviction.md#" in texts(fresh)
    labels = [b.label for b in fresh.button]
    assert "New conversation" in labels and any(label.startswith("Redis") for label in labels)


def test_a_huge_task_is_refused_without_echoing_it_back(app: AppTest):
    app.chat_input[0].set_value("line one of the paste\n" + "y" * 9000).run()
    shown = " ".join(m.value for m in app.markdown) + " ".join(t.value for t in app.text)
    assert "y" * 500 not in shown and "y" * 500 not in app.error[0].value
    assert "limit is 8,000" in app.error[0].value


def test_audit_page_shows_verified_chain_and_events(app: AppTest):
    app.chat_input[0].set_value("Disk full on the postgres volume").run()
    app.switch_page("pages/screens/audit.py").run()
    assert not app.exception
    assert "Chain verified" in app.success[0].value
    assert len(app.dataframe) == 1 and len(app.get("download_button")) == 1


def test_audit_page_empty_state_says_how_to_get_data(app: AppTest):
    app.switch_page("pages/screens/audit.py").run()
    assert "python -m copilot demo" in app.info[0].value


def test_knowledge_page_lists_runbooks_and_searches(app: AppTest):
    app.switch_page("pages/screens/knowledge.py").run()
    assert not app.exception
    assert app.metric[0].value == str(RUNBOOKS)
    search = next(t for t in app.text_input if t.label == "Search the runbooks")
    search.set_value("replica lag on postgres").run()
    assert not app.exception
    assert any("postgres-replication-lag.md" in m.value for m in app.markdown)


def test_provider_switch_uses_the_chosen_provider_and_never_shows_the_key(
    settings: Settings, monkeypatch
):
    from tests.fake_openai import FakeOpenAI
    from tests.test_provider_run import CANARY, play_the_model

    with FakeOpenAI(responder=play_the_model) as server:
        monkeypatch.setenv("COPILOT_HOME", str(settings.home))
        monkeypatch.setenv("COPILOT_CORPUS", str(settings.corpus))
        monkeypatch.setenv("OPENAI_API_KEY", CANARY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
        monkeypatch.delenv("LLM_PROVIDER", raising=False)
        monkeypatch.chdir(settings.home)
        st.cache_resource.clear()
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        provider = at.sidebar.selectbox[0]
        assert provider.options == ["stub", "openai"] and provider.value == "stub"
        assert "Model: `stub-runbook-v1`" in [c.value for c in at.sidebar.caption]
        provider.select("openai").run()
        assert "Model: `gpt-4o-mini`" in [c.value for c in at.sidebar.caption]
        at.chat_input[0].set_value("Pods in checkout are OOMKilled").run()
        assert not at.exception and not at.error
        assert "openai/gpt-4o-mini" in texts(at)
        assert server.requests  # the run really went to the (fake) OpenAI server
        rendered = str(at._tree)  # every element the page produced
        assert CANARY not in rendered and CANARY[10:] not in rendered


def test_a_run_finished_elsewhere_joins_its_conversation(app: AppTest, settings):
    from copilot.service import Services

    # What the worker thread leaves behind when the user submits again mid-run: a run of
    # this conversation saved by another script run.
    app.run()
    Services(settings).run("Redis is evicting keys", session_id=app.query_params["c"])
    app.run()
    assert not app.exception
    assert len(app.chat_message) == 2
    assert "redis-memory-eviction.md#" in texts(app)
