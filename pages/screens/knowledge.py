"""Knowledge base: which runbooks are indexed, search them directly, refresh the index, and
which chunks the injection guard flagged when they were indexed (and why).

Runbook text is untrusted: it is rendered through `safe_markdown`, so a poisoned runbook
cannot load an image or show a live link here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from copilot import ui
from copilot.guard import safe_markdown
from copilot.index import Index
from copilot.retriever import manifest_stamp


@st.cache_data(show_spinner=False)
def runbooks(index_dir: str, stamp: tuple[int, int] | None) -> pd.DataFrame | None:
    """Chunks per runbook; `stamp` (the manifest's mtime and size) keys the cache, so a
    rerun (each keystroke in the search box) does not re-read the index from disk."""
    index = Index.load(Path(index_dir))
    if index is None:
        return None
    by_file = pd.DataFrame([{"runbook": c.source, "title": c.title} for c in index.chunks])
    return by_file.groupby(["runbook", "title"]).size().reset_index(name="chunks")


@st.cache_data(show_spinner=False)
def flagged_chunks(
    index_dir: str, stamp: tuple[int, int] | None
) -> list[tuple[str, tuple[str, ...]]]:
    """Chunks the guard flagged at index time, with its reasons; cached like `runbooks`."""
    index = Index.load(Path(index_dir))
    if index is None:
        return []
    return [(c.chunk_id, c.guard_reasons) for c in index.chunks if c.flagged]


def guard_overview() -> None:
    index_dir = ui.settings().index_dir
    flagged = flagged_chunks(str(index_dir), manifest_stamp(index_dir))
    if not flagged:
        st.success(
            "The injection guard flagged no chunk of the indexed runbooks.",
            icon=":material/verified_user:",
        )
        return
    st.warning(
        f"The injection guard flagged {len(flagged)} chunk(s). The copilot may cite a flagged "
        "chunk as evidence but never follows what it says; fix or remove the runbook text.",
        icon=":material/gpp_maybe:",
    )
    for chunk_id, reasons in flagged:
        with st.container(border=True):
            st.markdown(f"`{chunk_id}`")
            for reason in reasons:
                st.markdown(safe_markdown(f"- {reason}"))


def index_overview() -> None:
    index_dir = ui.settings().index_dir
    summary = runbooks(str(index_dir), manifest_stamp(index_dir))
    if summary is None:
        st.warning(
            "The index is not built yet. Click Refresh index, or run `python -m copilot index`.",
            icon=":material/warning:",
        )
        return
    left, right = st.columns(2)
    left.metric("Runbooks", len(summary))
    right.metric("Chunks", int(summary["chunks"].sum()))
    st.dataframe(summary, hide_index=True, width="stretch")


def refresh() -> None:
    with ui.user_errors(), st.spinner("Refreshing the index (new or changed text only)..."):
        report = ui.services().retriever.refresh()  # ui.retriever() would refresh twice
        st.success(f"Index refreshed: {report.summary()}")
        for warning in report.warnings:
            st.warning(warning, icon=":material/warning:")


def search() -> None:
    query = st.text_input("Search the runbooks", placeholder="e.g. replica lag after failover")
    k = st.slider("Results", 1, 10, 5)
    if not query.strip():
        return
    with ui.user_errors():
        for hit in ui.retriever().search(query, k):
            with st.container(border=True):
                st.markdown(f"**{hit.chunk.source}** - {hit.chunk.heading} (score {hit.score:.3f})")
                st.caption(f"`{hit.chunk.chunk_id}` - characters {hit.chunk.start}-{hit.chunk.end}")
                if hit.chunk.flagged:
                    st.warning(
                        safe_markdown(
                            "Flagged by the injection guard: evidence only, never followed. "
                            + "; ".join(hit.chunk.guard_reasons)
                        ),
                        icon=":material/gpp_maybe:",
                    )
                st.markdown(safe_markdown(hit.chunk.text))


def main() -> None:
    st.title("Knowledge base")
    st.caption(
        f"Runbooks from `{ui.settings().corpus}`. Add or edit Markdown files there, "
        "then refresh: only new or changed text is embedded again."
    )
    if st.button("Refresh index", icon=":material/refresh:"):
        refresh()
    search()
    st.subheader("Indexed runbooks")
    index_overview()
    st.subheader("Injection guard")
    guard_overview()


main()
