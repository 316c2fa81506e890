"""Tools the executor may call, behind the policy: GitHub, Jira, MCP servers, the sandbox.

`Toolbox` (registry.py) is the API the run engine uses; `TOOLS` is the one list of built-in
tools.
"""

from copilot.tools.registry import BUILTIN, TOOLS, Prepared, Toolbox, ToolOutcome, ToolSpec

__all__ = [
    "BUILTIN",
    "TOOLS",
    "Prepared",
    "ToolOutcome",
    "ToolSpec",
    "Toolbox",
]
