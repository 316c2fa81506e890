"""Audit log: every action of every agent and person, hash-chained so edits show."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from copilot import ui
from copilot.governance import audit


def main() -> None:
    st.title("Audit log")
    st.caption(
        "Who did what, when and why: agents, policy decisions, approvals. Each event "
        "carries the hash of the one before it, so an edited, deleted or reordered event is "
        "detected; the head kept in `audit_head.json` outside the database shows a cut-off "
        "tail. `python -m copilot audit verify` gives the same verdict."
    )
    store = ui.services().store
    with ui.user_errors():
        run_id = st.text_input("Filter by run id", placeholder="e.g. 2ed821a11653").strip()
        check = audit.verify_chain(store, audit.read_head(store.head_file))
        if check.ok:
            st.success(
                f"Chain verified: {check.reason}. Head #{check.head_seq} `{check.head[:16]}...`",
                icon=":material/verified_user:",
            )
            if not check.head_checked:
                st.caption(
                    f"No head file at `{store.head_file}` yet: it is written with the first "
                    "event, and from then on a cut-off tail is detected."
                )
        else:
            st.error(
                f"Chain broken at event {check.broken_at}: {check.reason}.",
                icon=":material/gpp_bad:",
            )
        rows = audit.events(store, run_id or None)
        if not rows:
            st.info(
                "No audit events yet. Run a task on the Chat page or `python -m copilot demo`."
                if not run_id
                else f"No events for run {run_id}."
            )
            return
        total = audit.count(store, run_id or None)
        if total > len(rows):
            st.caption(
                f"Showing the latest {len(rows):,} of {total:,} events; "
                "`python -m copilot export` writes them all."
            )
        frame = pd.DataFrame(rows)
        st.dataframe(
            frame,
            hide_index=True,
            width="stretch",
            column_config={"detail": st.column_config.TextColumn(width="large")},
        )
        st.download_button(
            "Download CSV",
            frame.to_csv(index=False),
            "audit_events.csv",
            "text/csv",
            icon=":material/download:",
        )


main()
