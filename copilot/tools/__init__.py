"""Tools the executor may call, behind the policy: GitHub, Jira, MCP servers, the sandbox.

`Toolbox` (registry.py) is the API the run engine uses; `TOOLS` is the one list of built-in
tools. `Sandbox` and `run_tool` are the old offline stand-ins, kept until the engine switches.
"""

from copilot.tools.legacy import Sandbox, run_tool
from copilot.tools.registry import BUILTIN, TOOLS, Prepared, Toolbox, ToolOutcome, ToolSpec

__all__ = [
    "BUILTIN",
    "TOOLS",
    "Prepared",
    "Sandbox",
    "ToolOutcome",
    "ToolSpec",
    "Toolbox",
    "run_tool",
]
