"""What every Streamlit page shares: cached services, the sidebar choices, error display.

Pages stay thin: they read state from here, call `copilot`, and render. Nothing here loads
the embedding model; only the chat page asks for it, through `retriever()`.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from copilot.config import Settings
from copilot.embeddings import get_embedder
from copilot.errors import CopilotError
from copilot.retriever import Retriever
from copilot.service import Services

# Streamlit keeps cache_resource values until the interpreter is torn down. A Store held
# there keeps copilot.store, and through it the duckdb module, alive past DuckDB's own
# teardown once torch is loaded too, and nanobind then prints ~65 "leaked" lines at every
# app stop and after the test run. Dropping the cached resources first lets them go in order.
atexit.register(st.cache_resource.clear)


@st.cache_resource(show_spinner=False)
def services() -> Services:
    """One Services per server process, built from the environment and .env."""
    return Services(Settings.load())


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


def current_user() -> str:
    return str(st.session_state.get("user") or settings().user)


def current_provider() -> str:
    return str(st.session_state.get("provider") or settings().llm_provider)


@contextmanager
def user_errors() -> Iterator[None]:
    """Show a CopilotError as st.error with its advice instead of a traceback."""
    try:
        yield
    except CopilotError as exc:
        st.error(str(exc), icon=":material/error:")
