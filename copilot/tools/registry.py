"""The one list of tools, and the Toolbox the run engine calls them through.

A tool is a `ToolSpec`: name, description for the planner, whether it writes, its argument
model (validation and JSON schema), which system it targets and what preview an approval card
shows. The built-in tools are `BUILTIN`; MCP servers add `mcp.<server>.<tool>` at run time.
Nothing else lists tools: the policy, the planner prompt and the pages read this module.

Each tool runs `live` (credentials set) or in the `sandbox` (a local git repository and
tickets in the governance store). Writes carry an idempotency key: `call` looks the key up
first and returns the object an earlier attempt made instead of making a second one.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from copilot.config import Settings
from copilot.errors import CopilotError, InputError, ToolError
from copilot.store import Store
from copilot.tools import args as A
from copilot.tools.adapters import GitHubLive, GitHubSandbox, JiraLive, JiraSandbox
from copilot.tools.edits import Edit, plan_edit
from copilot.tools.github import GitHub
from copilot.tools.http import RetryPolicy
from copilot.tools.jira import Jira
from copilot.tools.mcp import McpClient, McpTool, load_servers
from copilot.tools.sandbox import SandboxRepo, SandboxTickets


@dataclass(frozen=True)
class ToolSpec:
    name: str
    """jira.create_issue, github.create_pull_request, mcp.<server>.<tool>"""
    description: str
    """One line for the planner prompt and the approval card."""
    writes: bool
    args_model: type[BaseModel]
    system: str = ""
    """github, jira or mcp: decides the mode (live/sandbox) and how the target is named."""
    preview: str = "none"
    """What the approval card shows: diff (file changes), fields (the object to create), none."""

    def json_schema(self) -> dict[str, Any]:
        return self.args_model.model_json_schema()


def _spec(name: str, writes: bool, model: type[BaseModel], description: str) -> ToolSpec:
    system = name.split(".", 1)[0]
    preview = "none" if not writes else "diff" if name.endswith("pull_request") else "fields"
    return ToolSpec(name, description, writes, model, system, preview)


BUILTIN: tuple[ToolSpec, ...] = (
    _spec("jira.search", False, A.JiraSearch, "search Jira issues by text or JQL"),
    _spec("jira.get_issue", False, A.JiraGetIssue, "read one Jira issue"),
    _spec("jira.create_issue", True, A.JiraCreateIssue, "open a Jira ticket"),
    _spec("jira.comment", True, A.JiraComment, "comment on a Jira ticket"),
    _spec("jira.transition", True, A.JiraTransition, "move a Jira ticket (e.g. to Done)"),
    _spec("github.search_issues", False, A.GithubSearchIssues, "search GitHub issues and PRs"),
    _spec("github.read_file", False, A.GithubReadFile, "read a file from the repository"),
    _spec("github.list_commits", False, A.GithubListCommits, "list recent commits"),
    _spec("github.create_issue", True, A.GithubCreateIssue, "open a GitHub issue"),
    _spec("github.comment", True, A.GithubComment, "comment on a GitHub issue or PR"),
    _spec(
        "github.create_pull_request",
        True,
        A.GithubCreatePullRequest,
        "open a pull request that changes the service's manifest, flag or config file "
        "(the file and the edit are derived from the task)",
    ),
)

TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in BUILTIN}
"""The built-in tools by name (MCP tools come from `Toolbox.specs()`)."""

_PLANNER_HIDDEN = {"changes"}
_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")  # filled in by prepare(), never by the planner


@dataclass(frozen=True)
class ToolOutcome:
    status: str  # done, error
    output: dict[str, Any] | None
    error: str | None
    latency_ms: float


@dataclass(frozen=True)
class Prepared:
    """Arguments ready to approve and run, with what the approval card shows.

    `args` is None when the change cannot be made (no such file or field): `note` says why,
    and the engine reports the step instead of inventing a path."""

    args: dict[str, Any] | None
    preview: dict[str, str] = field(default_factory=lambda: {"kind": "none", "text": ""})
    note: str = ""


class Toolbox:
    """Every tool, live or sandbox, built from Settings; no globals."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.retry = RetryPolicy(
            max_attempts=4, max_wait_s=settings.tool_max_retry_s, sleep=sleep, clock=clock
        )
        self.github = _github(settings, self.retry, transport)
        self.jira = _jira(settings, self.retry, transport)
        self.repo = SandboxRepo(settings.home)
        self.sandbox_jira = SandboxTickets(store, "jira")
        self.sandbox_issues = SandboxTickets(store, "github")
        self._adapters: dict[tuple[str, str], Any] = {
            ("jira", "sandbox"): JiraSandbox(self.sandbox_jira),
            ("github", "sandbox"): GitHubSandbox(self.repo, self.sandbox_issues),
        }
        if self.jira:
            self._adapters["jira", "live"] = JiraLive(self.jira)
        if self.github:
            self._adapters["github", "live"] = GitHubLive(self.github)
        self.mcp = (
            McpClient(load_servers(Path(settings.mcp_servers)), settings.home / "mcp")
            if settings.mcp_servers
            else None
        )
        self._mcp_specs: dict[str, ToolSpec] | None = None
        self.mcp_errors: dict[str, str] = {}
        """Servers whose tools could not be listed, with the reason (shown, not raised)."""

    # The list ---------------------------------------------------------------------------
    def specs(self) -> list[ToolSpec]:
        return [*BUILTIN, *self._mcp_tools().values()]

    def spec(self, name: str) -> ToolSpec:
        found = TOOLS.get(name) or (
            self._mcp_tools().get(name) if name.startswith("mcp.") else None
        )
        if found is None:
            known = ", ".join(s.name for s in self.specs())
            raise ToolError(f"{name!r} is not a known tool; known: {known}.")
        return found

    def writes(self, name: str) -> bool | None:
        """True for writes, False for reads, None for a tool nobody registered."""
        try:
            return self.spec(name).writes
        except ToolError:
            return None

    def mode(self, name: str) -> str:
        system = self.spec(name).system
        if system == "github":
            return "live" if self.github else "sandbox"
        if system == "jira":
            return "live" if self.jira else "sandbox"
        return "live"

    def target(self, name: str, args: dict[str, Any]) -> str:
        spec = self.spec(name)
        if spec.system == "mcp":
            return f"mcp:{name.split('.')[1]}"
        if self.mode(name) == "sandbox":
            return f"sandbox:{spec.system}"
        if spec.system == "jira":
            issue = str(args.get("issue") or "")
            return (
                f"jira:{args.get('project') or issue.split('-')[0] or self.settings.jira_project}"
            )
        return f"github:{args.get('repo') or self.settings.github_repository}"

    def planner_doc(self) -> str:
        lines = [
            "Tools you may propose (the policy layer decides; writes wait for human approval):"
        ]
        for spec in self.specs():
            props = spec.json_schema().get("properties", {})
            shown = {k: _json_type(v) for k, v in props.items() if k not in _PLANNER_HIDDEN}
            kind = "write" if spec.writes else "read"
            lines.append(f"- {spec.name} {json.dumps(shown)}   {kind}: {spec.description}")
        return "\n".join(lines)

    # Before approval --------------------------------------------------------------------
    def validate(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """Canonical arguments (defaults filled in), or InputError before any request."""
        spec = self.spec(name)
        try:
            model = spec.args_model.model_validate(args)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            fields = ", ".join(spec.json_schema().get("properties", {}))
            raise InputError(
                f"{name} arguments are not valid ({problems}). Fields: {fields}."
            ) from None
        return model.model_dump(mode="json", exclude_none=spec.system == "mcp")

    def prepare(self, name: str, args: dict[str, Any], *, task: str) -> Prepared:
        canonical = self.validate(name, args)
        spec = self.spec(name)
        if not spec.writes:
            return Prepared(canonical)
        if spec.preview != "diff":
            text = "\n".join(f"{k}: {v}" for k, v in canonical.items() if v not in ("", [], None))
            return Prepared(canonical, {"kind": "fields", "text": text})
        try:
            return self._prepare_change(canonical, task)
        except ToolError as exc:
            return Prepared(
                None, note=f"Could not read the repository to propose the change: {exc}"
            )

    def _prepare_change(self, args: dict[str, Any], task: str) -> Prepared:
        files = _Files(self._adapter("github.read_file")[0], args.get("repo", ""))
        if args["changes"]:  # a caller that brings its own contents still gets the real diff
            edits = [
                Edit(c["path"], files.read_text(c["path"]) or "", c["content"], c["path"])
                for c in args["changes"]
            ]
            changes = [
                {**c, "base_sha": c["base_sha"] or files.shas.get(c["path"], "")}
                for c in args["changes"]
            ]
            diff = "".join(e.diff for e in edits)
            return Prepared({**args, "changes": changes}, {"kind": "diff", "text": diff})
        planned = plan_edit(task, files)
        if not isinstance(planned, Edit):
            return Prepared(None, note=planned.note)
        body = f"{args['body'].rstrip()}\n\nChange: {planned.summary}".strip()
        ready = {
            **args,
            "path": planned.path,
            "body": body,
            "changes": [
                {
                    "path": planned.path,
                    "content": planned.after,
                    "base_sha": files.shas.get(planned.path, ""),
                }
            ],
        }
        return Prepared(ready, {"kind": "diff", "text": planned.diff}, planned.summary)

    # Running ----------------------------------------------------------------------------
    def call(self, name: str, args: dict[str, Any], *, key: str | None = None) -> ToolOutcome:
        """Run one tool; every failure becomes an `error` outcome, never an exception."""
        started = time.perf_counter()
        try:
            output = self._call(name, args, key)
            status, error = "done", None
        except CopilotError as exc:
            output, status, error = None, "error", str(exc)
        except Exception as exc:  # a dead git, a malformed response: still an outcome
            output, status, error = None, "error", f"{name} failed ({type(exc).__name__}: {exc})"
        return ToolOutcome(status, output, error, (time.perf_counter() - started) * 1000)

    def _call(self, name: str, args: dict[str, Any], key: str | None) -> dict[str, Any]:
        canonical = self.validate(name, args)
        spec = self.spec(name)
        context = {"mode": self.mode(name), "target": self.target(name, canonical)}
        if spec.system == "mcp":
            server, tool = name.split(".", 2)[1:]
            assert self.mcp is not None  # spec() found the tool, so the client exists
            return {**self.mcp.call(server, tool, canonical), **context}
        if not spec.writes:
            return {**self._run(name, canonical, ""), **context}
        if spec.preview == "diff":
            _require_changes(canonical)  # before the lookup: no request for a call that cannot run
        key = key or uuid.uuid4().hex[:16]
        if not _KEY.fullmatch(key):
            # It becomes a Jira label and a branch name: no spaces, no git-special characters.
            raise InputError(f"Idempotency key {key!r} must be 1-64 letters, digits, '-' or '_'.")
        existing = self.lookup(name, canonical, key)
        if existing is not None:
            return {**existing, **context, "existing": True}
        return {**self._run(name, canonical, key), **context}

    def _adapter(self, name: str) -> tuple[Any, str]:
        """The adapter (system, mode) that runs this tool, and the tool's method name."""
        system, op = name.split(".", 1)
        return self._adapters[system, self.mode(name)], op

    def _run(self, name: str, args: dict[str, Any], key: str) -> dict[str, Any]:
        adapter, op = self._adapter(name)
        result: dict[str, Any] = getattr(adapter, op)(args, key)
        return result

    def lookup(self, name: str, args: dict[str, Any], key: str) -> dict[str, Any] | None:
        """The object an earlier attempt with this key created (the API's own search)."""
        if self.spec(name).system == "mcp":
            return None  # an MCP server offers no search we could trust for this
        adapter, op = self._adapter(name)
        finder = getattr(adapter, f"find_{op}", None)
        return None if finder is None else finder(self.validate(name, args), key)

    # MCP --------------------------------------------------------------------------------
    def _mcp_tools(self) -> dict[str, ToolSpec]:
        """MCP tools, listed once per Toolbox (each listing starts the server)."""
        if self._mcp_specs is None:
            self._mcp_specs = {}
            for server in self.mcp.servers.values() if self.mcp else []:
                try:
                    tools = self.mcp.list_tools(server.name) if self.mcp else []
                except CopilotError as exc:
                    self.mcp_errors[server.name] = str(exc)
                    continue
                for tool in tools:
                    spec = _mcp_spec(tool, writes=tool.name not in server.read_only_tools)
                    self._mcp_specs[spec.name] = spec
        return self._mcp_specs


class _Files:
    """What edits.plan_edit reads: the live repository or the sandbox one."""

    def __init__(self, adapter: Any, repo: str) -> None:
        self.adapter = adapter
        self.repo = repo
        self.shas: dict[str, str] = {}
        """Blob sha of each file read: the approved diff applies only to that version."""

    def list_dir(self, path: str) -> list[str]:
        result: list[str] = self.adapter.list_dir(path, self.repo)
        return result

    def read_text(self, path: str) -> str | None:
        found: dict[str, Any] | None = self.adapter.read(path, self.repo)
        if found is None:
            return None
        self.shas[path] = str(found["sha"])
        return str(found["content"])


def _require_changes(args: dict[str, Any]) -> None:
    if not args.get("changes"):
        raise InputError(
            "github.create_pull_request has no file changes: call Toolbox.prepare() with the "
            "task first, which reads the file and makes the edit."
        )


def _github(
    settings: Settings, retry: RetryPolicy, transport: httpx.BaseTransport | None
) -> GitHub | None:
    if not settings.github_token:
        return None
    return GitHub(
        token=settings.github_token,
        api_url=settings.github_api_url,
        repo=settings.github_repository,
        timeout_s=settings.tool_timeout_s,
        retry=retry,
        transport=transport,
    )


def _jira(
    settings: Settings, retry: RetryPolicy, transport: httpx.BaseTransport | None
) -> Jira | None:
    if not (settings.jira_base_url and settings.jira_api_token):
        return None
    return Jira(
        base_url=settings.jira_base_url,
        email=settings.jira_email,
        api_token=settings.jira_api_token,
        project=settings.jira_project,
        timeout_s=settings.tool_timeout_s,
        retry=retry,
        transport=transport,
    )


_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list[Any],
    "object": dict[str, Any],
}


def _mcp_spec(tool: McpTool, *, writes: bool) -> ToolSpec:
    """A ToolSpec for an MCP tool; its argument model is built from the server's schema."""
    props = tool.input_schema.get("properties", {})
    required = set(tool.input_schema.get("required", []))
    fields: dict[str, Any] = {}
    for prop, schema in props.items():
        kind = _JSON_TYPES.get(str(schema.get("type")), Any)
        fields[prop] = (kind, ...) if prop in required else (kind | None, None)
    model = create_model(
        f"mcp_{tool.server}_{tool.name}",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )
    hint = " (server says read-only: a hint only)" if tool.read_only_hint and writes else ""
    description = (tool.description.splitlines() or [tool.name])[0] + hint
    return ToolSpec(
        f"mcp.{tool.server}.{tool.name}",
        description,
        writes,
        model,
        "mcp",
        "fields" if writes else "none",
    )


def _json_type(schema: dict[str, Any]) -> str:
    if "type" in schema:
        return str(schema["type"])
    options = [str(o.get("type")) for o in schema.get("anyOf", []) if o.get("type") != "null"]
    return "|".join(options) or "any"
