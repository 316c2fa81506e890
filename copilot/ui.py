"""What every Streamlit page shares: cached services, the sidebar choices, error display.

Pages stay thin: they read state from here, call `copilot`, and render. Nothing here loads
the embedding model; only the chat page asks for it, through `retriever()`.
"""

from __future__ import annotations

import atexit
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from copilot import approvals
from copilot.config import Settings
from copilot.embeddings import get_embedder
from copilot.errors import CopilotError
from copilot.governance import budgets, identity
from copilot.governance.identity import Identity
from copilot.retriever import Retriever
from copilot.run.runs import decided_line
from copilot.service import Services

IDENTITY_KEY = "identity"
"""session_state: the Identity the entry point resolved for this run (every sign-in mode)."""
SIGNED_IN_KEY = "signed_in_user"
"""session_state: the name a local sign-in succeeded for; cleared by Sign out."""
# Streamlit keeps cache_resource values until the interpreter is torn down. A Store held
# there keeps copilot.store, and through it the duckdb module, alive past DuckDB's own
# teardown once torch is loaded too, and nanobind then prints ~65 "leaked" lines at every
# app stop and after the test run. Dropping the cached resources first lets them go in order.
atexit.register(st.cache_resource.clear)


@st.cache_resource(show_spinner=False)
def services() -> Services:
    """One Services per server process, built from the environment and .env. Starting it
    marks runs whose process died as interrupted and expires stale approval requests."""
    built = Services(Settings.load())
    built.sweep()
    return built


@st.cache_resource(show_spinner="Loading the runbook index and the MiniLM model (once)...")
def retriever() -> Retriever:
    """The retriever with its index loaded and the model warm: the chat page's first cost."""
    r = services().retriever
    r.refresh()
    r.search("warm up", 1)
    return r


@st.cache_resource(show_spinner=False)
def warm_model_in_background() -> threading.Thread:
    """Start loading the model while the analyst types; cached, so once per process."""
    thread = threading.Thread(target=get_embedder, name="warm-minilm", daemon=True)
    thread.start()
    return thread


def settings() -> Settings:
    return services().settings


def current_identity() -> Identity:
    """Who is signed in. The entry point stops every page run before this if nobody is."""
    found = st.session_state.get(IDENTITY_KEY)
    if not isinstance(found, Identity):
        st.error("Sign in first.", icon=":material/lock:")
        st.stop()
    return found


def current_user() -> str:
    """The signed-in user's name: the actor of runs and decisions made in this session."""
    return current_identity().name


def require_role(role: str) -> Identity:
    """Stop the page with an explanation unless the signed-in user has `role` or above."""
    who = current_identity()
    if not who.can(role):
        st.error(
            f"This needs the {role} role; you are signed in as {who.name} ({who.role}). "
            "Ask an admin to change your role.",
            icon=":material/lock:",
        )
        st.stop()
    return who


@st.cache_resource(show_spinner=False)
def bootstrap_users() -> str | None:
    """Once per server process: on the first start, the `admin` user and its password file."""
    if settings().auth != "local":
        return None
    return identity.ensure_initial_admin(services().store, settings().home)


@st.cache_data(ttl=10, show_spinner=False)
def _active_identity(name: str) -> Identity | None:
    # Cached briefly: a disabled user or a changed role takes effect within 10 s, without a
    # DB read on every click.
    return identity.active_identity(services().store, name)


def signed_in() -> Identity | None:
    """Who this browser session is under COPILOT_AUTH, or None when a sign-in is needed.
    Header and OIDC problems (no header, no role) raise CopilotError with advice."""
    config = settings()
    if config.auth == "none":
        return Identity(config.user, "admin")
    if config.auth == "header":
        return identity.identity_from_headers(dict(st.context.headers), config)
    if config.auth == "oidc":
        if not st.user.is_logged_in:
            return None
        return identity.identity_from_claims(st.user.to_dict(), config)
    name = st.session_state.get(SIGNED_IN_KEY)
    found = _active_identity(str(name)) if name else None
    if found is None:
        st.session_state.pop(SIGNED_IN_KEY, None)
    return found


def sign_in_page() -> None:
    """The form shown instead of any page until someone signs in."""
    st.title("Sign in")
    if settings().auth == "oidc":
        _oidc_sign_in()
        return
    with st.form("sign-in", clear_on_submit=True):  # the password leaves widget state
        name = st.text_input("User name", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        with user_errors():
            who = identity.authenticate(services().store, name, password)
            st.session_state[SIGNED_IN_KEY] = who.name
            _active_identity.clear()
            st.rerun()
    first = settings().home / identity.INITIAL_PASSWORD_FILE
    if first.exists():  # only until the first admin changes that password
        st.caption(
            f"First start: the `{identity.INITIAL_ADMIN}` password is in `{first}` on the "
            "server. Admins add users on the Users page or with "
            "`python -m copilot users add NAME --role requester|approver|admin`."
        )


def _oidc_sign_in() -> None:
    try:
        configured = "auth" in st.secrets
    except (FileNotFoundError, st.errors.StreamlitSecretNotFoundError):
        configured = False
    if not configured:
        st.error(
            "COPILOT_AUTH=oidc needs an [auth] section in .streamlit/secrets.toml "
            "(redirect_uri, cookie_secret, client_id, client_secret, "
            "server_metadata_url); see 'Serving a team' in the README."
        )
        return
    if st.button("Sign in with single sign-on", type="primary"):
        st.login()


def sidebar_identity(who: Identity) -> None:
    """Name, role and Sign out at the top of the sidebar."""
    mode = settings().auth
    st.markdown(f":material/person: **{who.name}** · {who.role}")
    if mode == "none":
        st.warning(
            "COPILOT_AUTH=none: no sign-in, everyone acts as this admin. For development only.",
            icon=":material/warning:",
        )
    elif mode == "header":
        st.caption("Signed in by your single sign-on proxy.")
    elif st.button("Sign out", icon=":material/logout:"):
        sign_out(who)


def sign_out(who: Identity) -> None:
    """Forget everything this browser session held (chat history included), then rerun;
    with OIDC also end Streamlit's sign-in cookie."""
    with user_errors():
        identity.record_signout(services().store, who.name)
    st.session_state.clear()
    if settings().auth == "oidc":
        st.logout()  # reruns the app itself
    st.rerun()


def current_provider() -> str:
    return str(st.session_state.get("provider") or settings().llm_provider)


@contextmanager
def user_errors() -> Iterator[None]:
    """Show a CopilotError as st.error with its advice instead of a traceback."""
    try:
        yield
    except CopilotError as exc:
        st.error(str(exc), icon=":material/error:")


def first_line(text: str, limit: int = 200) -> str:
    """What to echo of a task: its first line, cut, so a huge paste is not shown back whole."""
    lines = text.strip().splitlines() or [""]
    head = lines[0][:limit]
    more = len(text.strip()) - len(head)
    return head + (f" ... ({more:,} more characters)" if more > 0 else "")


def refusal(task: str, reason: str) -> str:
    return (
        f"Not run: {reason}" if not task.strip() else f"Not run: {first_line(task, 80)}\n\n{reason}"
    )


def show_flash() -> None:
    """The outcome of a decision, kept across the rerun that the decision triggers."""
    kind, text = st.session_state.pop("flash", (None, ""))
    if kind:
        {"error": st.error, "warning": st.warning, "success": st.success}[kind](text)


def pending_rows(approval_ids: list[str]) -> list[dict[str, Any]]:
    """The pending requests among these ids, read once for all the cards of one answer (an
    id decided meanwhile comes back bare, and its card draws nothing)."""
    rows = {r["approval_id"]: r for r in approvals.list_approvals(services().store, "pending")}
    return [rows.get(i, {"approval_id": i}) for i in approval_ids]


def approval_card(row: dict[str, Any], *, key_prefix: str) -> None:
    """One pending request: what it does, where, why it waits; Approve or Reject with a
    reason. The same card on the Approvals page and inline in the chat."""
    approval_id = row["approval_id"]
    if "tool" not in row:
        return  # decided meanwhile; the next rerun shows the outcome
    with st.container(border=True):
        st.markdown(f"**{row['tool']}** on `{row.get('target') or 'sandbox'}` - {row['action']}")
        expires = row.get("expires_at")
        st.caption(
            f"Request `{approval_id}` - run `{row['run_id']}` - asked by "
            f"{row['requested_by']} at {row['created_at']:%Y-%m-%d %H:%M} UTC"
            + (f" - expires {expires:%Y-%m-%d %H:%M} UTC" if expires else "")
            + f" - rule `{row['rule']}`: {row['reason']}"
        )
        if row.get("task"):
            st.caption(f"Task: {first_line(row['task'], 300)}")
        cites = json.loads(row.get("citations_json") or "[]")
        if cites:
            st.caption("Motivated by: " + ", ".join(cites))
        preview = json.loads(row.get("preview_json") or "null")
        if preview and preview.get("kind") == "diff":
            st.code(preview["text"], language="diff", wrap_lines=True)
        args = json.loads(row["args_json"])
        shown = {k: v for k, v in args.items() if k != "changes"}  # the diff shows those
        st.code(json.dumps(shown, indent=2), language="json", wrap_lines=True)
        decision_controls(row, f"{key_prefix}-{approval_id}")


def decision_controls(row: dict[str, Any], key: str) -> None:
    """Approvers decide others' requests; the requester may withdraw their own; others only
    read. The policy checks again when the decision is claimed: this spares useless buttons."""
    who = current_identity()
    own = row["requested_by"] == who.name
    if not own and not who.can("approver"):
        st.caption("Only approvers and admins can approve or reject this request.")
        return
    if own:
        st.caption("You asked for this: another approver decides (four eyes). You may withdraw it.")
    edited = None if own else edit_arguments(row, key)
    note = st.text_input(
        "Note (required to reject)", key=f"note-{key}", placeholder="why, for the record"
    )
    left, right, _ = st.columns([1, 1, 4])
    if not own and left.button(
        "Approve", key=f"approve-{key}", type="primary", icon=":material/check:"
    ):
        decide(row["approval_id"], True, note, edited)
    if right.button("Withdraw" if own else "Reject", key=f"reject-{key}", icon=":material/close:"):
        decide(row["approval_id"], False, note)


def edit_arguments(row: dict[str, Any], key: str) -> dict[str, Any] | None:
    """An approver may change what runs (say, a ticket's summary); None when unchanged."""
    shown = {k: v for k, v in json.loads(row["args_json"]).items() if k != "changes"}
    original = json.dumps(shown, indent=2)
    with st.expander("Edit arguments before approving"):
        text = st.text_area("Arguments (JSON)", value=original, key=f"args-{key}", height=160)
    if text.strip() == original.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        st.error(f"The edited arguments are not JSON ({exc.msg}); fix them or undo the edit.")
        return None
    return value if isinstance(value, dict) else None


def decide(approval_id: str, approve: bool, note: str, args: dict[str, Any] | None = None) -> None:
    """Decide; the run goes on in this process. The outcome survives the rerun."""
    try:
        with st.spinner("Recording the decision and continuing the run..."):
            done = (
                services()
                .engine(current_provider())
                .decide(
                    approval_id,
                    approve=approve,
                    user=current_user(),
                    role=current_identity().role,
                    note=note,
                    args=args,
                )
            )
    except CopilotError as exc:
        st.session_state["flash"] = ("error", str(exc))
    else:
        step = done.state.step(int(done.approval["step"]))
        text = decided_line(done, step) + f" - run {done.state.run_id} is {done.state.status}"
        st.session_state["flash"] = ("warning" if done.tool_error else "success", text)
    st.rerun()


def sidebar_budget(user: str) -> None:
    """Today's LLM spend against each configured limit; warns at 80 % and at 100 %."""
    limits = budgets.Limits.from_settings(settings())
    if not (limits.user_usd or limits.total_usd or limits.run_usd):
        return
    spend = budgets.spend_today(services().store, user)
    for label, spent, limit in (
        ("Your spend today", spend.user_usd, limits.user_usd),
        ("Team spend today", spend.total_usd, limits.total_usd),
    ):
        if not limit:
            continue
        level = budgets.level(spent, limit)
        text = f"{label}: ${spent:.4f} of ${limit:.2f}"
        if level == "over":
            st.error(text, icon=":material/block:")
        elif level == "warn":
            st.warning(text, icon=":material/warning:")
        else:
            st.caption(text)
    if limits.run_usd:
        st.caption(f"Per-run limit: ${limits.run_usd:.2f}")


def csv_download(frame: Any, name: str) -> None:
    """A button offering exactly `frame` (a DataFrame) as `<name>.csv`."""
    st.download_button(
        "Download CSV",
        frame.to_csv(index=False),
        file_name=f"{name}.csv",
        mime="text/csv",
        key=f"csv-{name}",
        icon=":material/download:",
    )


def chart_with_csv(fig: Any, frame: Any, name: str) -> None:
    """A panel's Plotly chart and the CSV of exactly the data it draws."""
    st.plotly_chart(fig, key=f"chart-{name}")
    csv_download(frame, name)
