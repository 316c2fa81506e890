"""Ops Copilot: a governed multi-agent operations assistant."""
