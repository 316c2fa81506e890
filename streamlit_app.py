"""Entry point: signs the user in, routes between the pages and draws the shared sidebar."""

from __future__ import annotations

import streamlit as st

from copilot import ui
from copilot.errors import CopilotError

st.set_page_config(page_title="Ops Copilot", page_icon=":material/shield:", layout="wide")

try:
    settings = ui.settings()
except CopilotError as exc:  # a broken .env must say what to fix, not show a traceback
    st.error(f"Configuration problem: {exc}")
    st.stop()

# The screens live one folder down, in pages/screens/: Streamlit treats any script directly in
# pages/ as a legacy auto-discovered page, and a deep link (/telemetry) would then run it
# without this entry point (no sidebar, wrong navigation).
pages = [
    st.Page("pages/screens/chat.py", title="Chat", icon=":material/chat:", default=True),
    st.Page("pages/screens/approvals.py", title="Approvals", icon=":material/approval:"),
    st.Page("pages/screens/telemetry.py", title="Telemetry", icon=":material/monitoring:"),
    st.Page("pages/screens/audit.py", title="Audit log", icon=":material/policy:"),
    st.Page("pages/screens/knowledge.py", title="Knowledge base", icon=":material/menu_book:"),
    st.Page("pages/screens/evaluation.py", title="Evaluation", icon=":material/fact_check:"),
]
users_page = st.Page("pages/screens/users.py", title="Users", icon=":material/group:")

# Every page needs a signed-in user. Until then the navigation only resolves which page the
# URL asked for (so a deep link opens after signing in) and the sign-in form is all there is.
try:
    ui.bootstrap_users()
    who = ui.signed_in()
except CopilotError as exc:  # header/OIDC: no identity header, or no role for these groups
    st.error(str(exc), icon=":material/lock:")
    st.stop()
if who is None:
    st.session_state.pop(ui.IDENTITY_KEY, None)
    st.navigation([*pages, users_page], position="hidden")
    ui.sign_in_page()
    st.stop()
st.session_state[ui.IDENTITY_KEY] = who

with st.sidebar:
    ui.sidebar_identity(who)
    providers = settings.available_providers()
    st.selectbox(
        "LLM provider",
        providers,
        index=providers.index(settings.llm_provider) if settings.llm_provider in providers else 0,
        key="provider",
        help="Providers whose keys are set in .env. 'stub' works offline.",
    )
    model = {
        "stub": "stub-runbook-v1",
        "openai": settings.openai_model,
        "azure": settings.azure_deployment,
    }[ui.current_provider()]
    st.caption(f"Model: `{model}`")
    ui.sidebar_budget(who.name)

st.navigation([*pages, users_page] if who.can("admin") else pages).run()
