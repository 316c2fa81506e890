"""MCP servers (stdio) as a tool source, through the official `mcp` SDK.

`COPILOT_MCP_SERVERS` names a JSON or TOML file:

    [servers.notes]
    command = "python"
    args = ["notes_server.py"]
    env = { NOTES_DIR = "/srv/notes" }
    read_only_tools = ["search_notes"]

Each tool becomes `mcp.<server>.<tool>`. Risk comes from this file only: a tool not listed in
`read_only_tools` writes (needs approval), whatever the server's own `readOnlyHint` says; the
hint is shown in the description, nothing more. A server process is started per listing and
per call: simple, no process to leak, and ~1-3 s per call is acceptable for approved actions.
Their stderr goes to `$COPILOT_HOME/mcp/<server>.log`, not into the CLI's or app's output.
The child gets the SDK's safe environment plus `env` from this file, never our secrets.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import re
import sys
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from copilot.errors import ConfigError, ToolError

T = TypeVar("T")
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class McpServer:
    name: str
    command: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    read_only_tools: frozenset[str] = frozenset()
    timeout_s: float = 30.0


@dataclass(frozen=True)
class McpTool:
    server: str
    name: str
    description: str
    input_schema: dict[str, Any]
    read_only_hint: bool | None


def load_servers(path: Path) -> list[McpServer]:
    """The servers a COPILOT_MCP_SERVERS file lists; ConfigError says what is wrong."""
    if not path.is_file():
        raise ConfigError(f"COPILOT_MCP_SERVERS={path} does not exist; fix the path or unset it.")
    try:
        raw = (
            tomllib.loads(path.read_text())
            if path.suffix == ".toml"
            else json.loads(path.read_text())
        )
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"COPILOT_MCP_SERVERS={path} is not valid: {exc}") from exc
    table = raw.get("servers", raw.get("mcpServers", {})) if isinstance(raw, dict) else None
    if not isinstance(table, dict):
        raise ConfigError(f"{path} needs a `servers` table: name -> {{command, args, ...}}.")
    return [_server(path, name, entry) for name, entry in table.items()]


def _server(path: Path, name: str, entry: Any) -> McpServer:
    if not _NAME.match(name) or not isinstance(entry, dict) or not entry.get("command"):
        raise ConfigError(
            f"{path}: server {name!r} needs a name of letters, digits, '-' or '_' and a command."
        )
    return McpServer(
        name=name,
        command=str(entry["command"]),
        args=[str(a) for a in entry.get("args", [])],
        env={str(k): str(v) for k, v in entry.get("env", {}).items()},
        read_only_tools=frozenset(str(t) for t in entry.get("read_only_tools", [])),
        timeout_s=float(entry.get("timeout_s", 30.0)),
    )


class McpClient:
    """Lists and calls the tools of configured stdio servers, synchronously."""

    def __init__(self, servers: list[McpServer], log_dir: Path | None = None) -> None:
        self.servers = {s.name: s for s in servers}
        self.log_dir = log_dir
        """Where each server's stderr goes (`<name>.log`); None = our stderr."""

    def list_tools(self, server: str) -> list[McpTool]:
        config = self.servers[server]

        async def listing(session: ClientSession) -> list[McpTool]:
            result = await session.list_tools()
            return [
                McpTool(
                    server=server,
                    name=t.name,
                    description=t.description or "",
                    input_schema=dict(t.input_schema or {}),
                    read_only_hint=getattr(t.annotations, "read_only_hint", None)
                    if t.annotations
                    else None,
                )
                for t in result.tools
            ]

        return _run_sync(lambda: _with_session(config, listing, self.log_dir), config.timeout_s)

    def call(self, server: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        config = self.servers[server]

        async def calling(session: ClientSession) -> dict[str, Any]:
            result = await session.call_tool(tool, args, read_timeout_seconds=config.timeout_s)
            texts = [c.text for c in getattr(result, "content", []) if hasattr(c, "text")]
            if getattr(result, "is_error", False):
                raise ToolError(f"MCP server {server!r} tool {tool!r} failed: {' '.join(texts)}")
            structured = getattr(result, "structured_content", None)
            return {
                "server": server,
                "tool": tool,
                "text": "\n".join(texts),
                "structured": structured,
            }

        return _run_sync(lambda: _with_session(config, calling, self.log_dir), config.timeout_s)


async def _with_session(
    config: McpServer, work: Callable[[ClientSession], Awaitable[T]], log_dir: Path | None
) -> T:
    params = StdioServerParameters(command=config.command, args=config.args, env=config.env)
    with contextlib.ExitStack() as stack:
        errlog: TextIO = sys.stderr
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            errlog = stack.enter_context((log_dir / f"{config.name}.log").open("a"))
        with anyio.fail_after(config.timeout_s):
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                return await work(session)


def _run_sync(make: Callable[[], Awaitable[T]], timeout_s: float) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop
    (Streamlit, a FastAPI handler): in a fresh thread with its own loop."""

    async def main() -> T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(anyio.run, main)
        try:
            return future.result(timeout=timeout_s + 5)
        except Exception as exc:  # task groups wrap failures in exception groups
            root = _root(exc)
            if isinstance(root, ToolError):
                raise root from exc
            if isinstance(root, TimeoutError):
                raise ToolError(f"The MCP server did not answer within {timeout_s:.0f} s.") from exc
            raise ToolError(f"MCP call failed: {type(root).__name__}: {root}") from exc


def _root(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
