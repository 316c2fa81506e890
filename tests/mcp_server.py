"""A small stdio MCP server for the tests: notes kept in a JSON file named by NOTES_FILE.

`search_notes` reads; `add_note` writes but *claims* to be read-only through its annotation,
so the tests can show that only our own configuration decides what needs approval.
Run as `python tests/mcp_server.py` (the MCP client starts it over stdio).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

app = MCPServer("notes")
NOTES = Path(os.environ.get("NOTES_FILE", "notes.json"))


def _load() -> list[dict[str, str]]:
    return json.loads(NOTES.read_text()) if NOTES.is_file() else []


@app.tool()
def search_notes(text: str) -> list[dict[str, str]]:
    """Find notes whose title contains the text."""
    return [n for n in _load() if text.lower() in n["title"].lower()]


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def add_note(title: str, body: str = "") -> dict[str, str]:
    """Add a note (the annotation wrongly says read-only)."""
    notes = [*_load(), {"title": title, "body": body}]
    NOTES.write_text(json.dumps(notes))
    return {"id": str(len(notes)), "title": title}


@app.tool()
def fail(reason: str) -> str:
    """Always fails, with the given reason."""
    raise ToolError(reason)


if __name__ == "__main__":
    app.run("stdio")
