"""Users: who may sign in and with which role. Admins only; the CLI's `users` commands do the
same from a terminal."""

from __future__ import annotations

import streamlit as st

from copilot import ui
from copilot.governance import identity
from copilot.governance.identity import Identity
from copilot.store import Store


def show_new_password() -> None:
    """A generated password is shown once, right after it was made, then forgotten."""
    made = st.session_state.pop("new-password", None)
    if made:
        name, password = made
        st.success(
            f"Password for **{name}**: `{password}` - shown once; pass it on safely. "
            "They can be given a new one here or with `users set-password`.",
            icon=":material/key:",
        )


def add_user(store: Store, admin: Identity) -> None:
    with st.form("add-user", clear_on_submit=True):
        left, right = st.columns([2, 1])
        name = left.text_input("Name", placeholder="dana or dana@example.com")
        role = right.selectbox("Role", identity.ROLES)
        submitted = st.form_submit_button("Add user", icon=":material/person_add:")
    if submitted:
        with ui.user_errors():
            password = identity.generate_password()
            identity.add_user(store, name.strip(), role, password, actor=admin.name)
            st.session_state["new-password"] = (name.strip(), password)
            st.rerun()


def change_user(store: Store, admin: Identity, names: list[str]) -> None:
    left, middle, right = st.columns([2, 1, 1], vertical_alignment="bottom")
    name = left.selectbox("User", names, key="user-to-change")
    if middle.button("New password", icon=":material/key:", disabled=not name):
        with ui.user_errors():
            password = identity.generate_password()
            identity.set_password(store, name, password, actor=admin.name)
            identity.forget_initial_password(ui.settings().home, name)
            st.session_state["new-password"] = (name, password)
            st.rerun()
    if right.button("Disable", icon=":material/block:", disabled=not name):
        with ui.user_errors():
            identity.disable_user(store, name, actor=admin.name)
            st.rerun()


def main() -> None:
    admin = ui.require_role("admin")
    st.title("Users")
    st.caption(
        f"Sign-in mode: `{ui.settings().auth}`. Requesters run tasks; approvers also decide "
        "approvals; admins also prune usage rows and manage users. Every change is audited."
    )
    show_new_password()
    store = ui.services().store
    with ui.user_errors():
        rows = identity.list_users(store)
        st.dataframe(rows, hide_index=True, width="stretch")
        st.subheader("Add a user")
        add_user(store, admin)
        st.subheader("Change a user")
        change_user(store, admin, [r["name"] for r in rows if r["enabled"]])


main()
