"""Governance: policy as code (Cedar), identity (sign-in, roles), budgets per LLM call, the
verifiable audit log."""
