"""Governance: policy as code (Cedar), budgets per LLM call, the verifiable audit log."""
