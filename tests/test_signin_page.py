"""Signing in to the app through Streamlit's AppTest, in each COPILOT_AUTH mode."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest

from copilot.config import Settings
from copilot.governance import audit, identity
from copilot.service import open_store
from tests.conftest import REPO

APP = str(REPO / "streamlit_app.py")
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app runs in this process under AppTest: a cheap argon2 keeps the lockout test fast."""
    monkeypatch.setattr(
        identity, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


def start(settings: Settings, monkeypatch: pytest.MonkeyPatch, auth: str, **env: str) -> AppTest:
    monkeypatch.setenv("COPILOT_AUTH", auth)
    monkeypatch.setenv("COPILOT_HOME", str(settings.home))
    monkeypatch.setenv("COPILOT_CORPUS", str(settings.corpus))
    monkeypatch.delenv("LLM_PROVIDER", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(settings.home)
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    return at


@pytest.fixture
def app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    at = start(settings, monkeypatch, "local").run()
    assert not at.exception
    return at


def admin_password(settings: Settings) -> str:
    return (Path(settings.home) / identity.INITIAL_PASSWORD_FILE).read_text().strip()


def sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input[0].input(name)
    at.text_input[1].input(password)
    at.button[0].click().run()
    if not at.error:
        # AppTest quirk: the run that follows the app's st.rerun() gives the sidebar's widgets
        # other ids than the next run does, so a click right away would be lost. A browser's
        # next rerun starts from the main script's hash and keeps them; one plain run here
        # settles them the same way.
        at.run()
    return at


def signed_in_as(at: AppTest) -> str:
    return "\n".join(m.value for m in at.sidebar.markdown)


def test_pages_wait_for_sign_in_and_a_wrong_password_is_refused(app: AppTest, settings):
    assert app.title[0].value == "Sign in"
    assert not app.chat_input and not app.sidebar.selectbox  # no page, no sidebar
    sign_in(app, "admin", "not the password")
    assert app.error[0].value == "Wrong user name or password."
    assert app.title[0].value == "Sign in" and not app.chat_input


def test_sign_in_shows_name_and_role_then_sign_out_ends_the_session(app: AppTest, settings):
    sign_in(app, "admin", admin_password(settings))
    assert not app.exception and not app.error
    assert app.chat_input and "**admin** · admin" in signed_in_as(app)
    assert not [t for t in app.sidebar.text_input if t.label == "Your name"]
    assert app.sidebar.selectbox[0].label == "LLM provider"  # kept as it was
    app.sidebar.button[0].click().run()  # Sign out
    assert app.title[0].value == "Sign in" and not app.chat_input
    events = [e["action"] for e in audit.events(open_store(settings))]
    assert events[:2] == ["signout", "signin"]


def test_five_wrong_passwords_lock_the_account(app: AppTest, settings):
    for attempt in range(1, identity.MAX_FAILED_ATTEMPTS + 1):
        sign_in(app, "admin", f"guess number {attempt}")
        assert "Wrong user name or password" in app.error[0].value
    sign_in(app, "admin", admin_password(settings))
    assert "locked until" in app.error[0].value and not app.chat_input
    assert "account_locked" in [e["action"] for e in audit.events(open_store(settings))]


def test_a_deep_link_opens_after_signing_in(app: AppTest, settings):
    app.switch_page("pages/screens/audit.py").run()
    assert app.title[0].value == "Sign in"
    sign_in(app, "admin", admin_password(settings))
    assert app.title[0].value == "Audit log"


def test_a_requester_sees_no_approve_button_but_an_approver_does(app: AppTest, settings):
    store = open_store(settings)
    identity.add_user(store, "rita", "requester", PASSWORD, actor="admin")
    identity.add_user(store, "dana", "approver", PASSWORD, actor="admin")
    sign_in(app, "rita", PASSWORD)
    app.chat_input[0].set_value("Pods in checkout are OOMKilled; raise the limit and open a ticket")
    app.run()
    assert any("wait for approval" in i.value for i in app.info)
    app.switch_page("pages/screens/approvals.py").run()
    assert not app.exception
    assert not [b for b in app.button if b.label in ("Approve", "Reject")]
    assert len([b for b in app.button if b.label == "Withdraw"]) == 2  # her own requests

    app.sidebar.button[0].click().run()  # Sign out, and dana signs in in this browser
    sign_in(app, "dana", PASSWORD)
    assert app.title[0].value == "Approvals"
    assert len([b for b in app.button if b.label == "Approve"]) == 2
    requested = [r["user_name"] for r in store.query("SELECT user_name FROM runs")]
    assert requested == ["rita"]  # the run is recorded under the signed-in name


def test_disabling_a_user_ends_their_session(app: AppTest, settings):
    store = open_store(settings)
    identity.add_user(store, "rita", "requester", PASSWORD, actor="admin")
    sign_in(app, "rita", PASSWORD)
    assert app.chat_input
    identity.disable_user(store, "rita", actor="admin")
    st.cache_data.clear()  # the app re-reads a user at most 10 s later
    app.run()
    assert app.title[0].value == "Sign in" and not app.chat_input


def test_header_mode_without_the_proxy_header_shows_no_page(settings, monkeypatch):
    at = start(settings, monkeypatch, "header", COPILOT_AUTH_ROLE_MAP="ops=requester").run()
    assert not at.exception
    assert "No X-Forwarded-User header" in at.error[0].value
    assert not at.text_input and not at.chat_input  # no password form in header mode
    assert not (settings.home / identity.INITIAL_PASSWORD_FILE).exists()


def test_oidc_mode_maps_the_signed_in_user_to_a_role(settings, monkeypatch):
    at = start(settings, monkeypatch, "oidc", COPILOT_AUTH_ROLE_MAP="ops-leads=approver")
    at.user = {"is_logged_in": True, "email": "dana@example.com", "groups": ["ops-leads"]}
    at.run()
    assert not at.exception and not at.error
    assert "**dana@example.com** · approver" in signed_in_as(at)
    assert [b.label for b in at.sidebar.button][:1] == ["Sign out"]


def test_oidc_mode_without_secrets_says_what_to_configure(settings, monkeypatch):
    at = start(settings, monkeypatch, "oidc")
    at.user = {"is_logged_in": False}
    at.run()
    assert not at.exception
    assert "[auth] section in .streamlit/secrets.toml" in at.error[0].value


def test_none_mode_warns_in_the_sidebar(settings, monkeypatch):
    at = start(settings, monkeypatch, "none").run()
    assert not at.exception and at.chat_input
    assert "COPILOT_AUTH=none" in at.sidebar.warning[0].value
    assert "**analyst** · admin" in signed_in_as(at)


def test_an_admin_manages_users_on_the_users_page(app: AppTest, settings):
    sign_in(app, "admin", admin_password(settings))
    app.switch_page("pages/screens/users.py").run()
    assert not app.exception and app.title[0].value == "Users"
    app.text_input[0].input("rita")
    app.selectbox[0].select("approver")
    next(b for b in app.button if b.label == "Add user").click().run()
    assert not app.exception and not app.error
    password = app.success[0].value.split("`")[1]  # shown once
    store = open_store(settings)
    assert identity.authenticate(store, "rita", password).role == "approver"
    app.run()
    assert not app.success  # and gone on the next run

    app.selectbox(key="user-to-change").select("rita")
    next(b for b in app.button if b.label == "Disable").click().run()
    assert identity.active_identity(store, "rita") is None
    assert "user_disabled" in [e["action"] for e in audit.events(store)]


def test_the_users_page_is_for_admins_only(app: AppTest, settings):
    identity.add_user(open_store(settings), "rita", "approver", PASSWORD, actor="admin")
    sign_in(app, "rita", PASSWORD)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app.switch_page("pages/screens/users.py")  # not in an approver's navigation


def test_oidc_sign_out_ends_the_provider_session(settings, monkeypatch):
    at = start(settings, monkeypatch, "oidc", COPILOT_AUTH_ROLE_MAP="ops=requester")
    at.user = {"is_logged_in": True, "email": "rita@example.com", "groups": "ops"}
    at.run()
    at.sidebar.button[0].click().run()
    assert not at.exception and at.title[0].value == "Sign in"
    assert "signout" in [e["action"] for e in audit.events(open_store(settings))]


def test_the_first_start_hint_goes_once_the_admin_password_changes(app: AppTest, settings):
    assert any("initial_admin_password" in c.value for c in app.caption)
    store = open_store(settings)
    identity.set_password(store, "admin", "a new admin password", actor="admin")
    identity.forget_initial_password(settings.home, "admin")
    app.run()
    assert not any("initial_admin_password" in c.value for c in app.caption)
