"""Moved to `copilot.governance.audit`; this name stays importable for older callers."""

from copilot.governance.audit import ChainCheck, count, events, read_head, verify_chain

__all__ = ["ChainCheck", "count", "events", "read_head", "verify_chain"]
