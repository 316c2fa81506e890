"""`python -m copilot`: index, search, run, demo, the approval queue and users from a terminal.

Every CopilotError, and every OSError a user can cause (a path that is a file, a folder
without permission), is turned into one `error: ...` line on stderr and exit code 2, in
`main` and nowhere else. Everything written to the terminal goes through `printable`, so a
task holding ANSI escapes or control characters is shown escaped, never replayed.
"""

from __future__ import annotations

import argparse
import getpass
import io
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, cast

from copilot import approvals, evaluation, export, guard, storecopy, telemetry
from copilot.config import Settings
from copilot.errors import ConfigError, CopilotError, CorpusError, InputError
from copilot.evaluation import report as evaluation_report
from copilot.evaluation import suite as evaluation_suite
from copilot.governance import audit, budgets, identity
from copilot.governance.policy import Policy, load_policy
from copilot.guard import Redactor
from copilot.pgstore import is_postgres_url, redact_url, url_password
from copilot.run import runs
from copilot.run.state import RunState
from copilot.run.view import as_dict, summary
from copilot.service import Services, store_at
from copilot.store import utcnow
from copilot.tools import Toolbox

DEMO_TASK = (
    "Pods in checkout are OOMKilled after the last deploy; raise the memory limit "
    "and open a ticket to track it."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m copilot", description="Ops Copilot: governed operations assistant."
    )
    parser.add_argument("--corpus", type=Path, help=CORPUS_HELP)
    parser.add_argument("--home", type=Path, help=HOME_HELP)
    parser.add_argument(
        "--user",
        dest="main_user",
        help="registered user acting through the CLI (default: COPILOT_USER)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("index", help="build or refresh the runbook index")
    search = sub.add_parser("search", help="search the runbooks")
    search.add_argument("query", nargs="?", help="what to look for")
    search.add_argument("-k", type=int, default=4, help="results to show (default 4)")
    search.add_argument("--json", action="store_true", help="print JSON")
    search.add_argument(
        "--jsonl",
        action="store_true",
        help='batch: read {"q": ...} lines on stdin, write results per line',
    )
    run = sub.add_parser("run", help="run a governed task (or a file of tasks)")
    run.add_argument("task", nargs="?", help="the operational task, in quotes")
    run.add_argument(
        "--file",
        type=Path,
        help="batch: one task per line, or JSONL with a 'task' field; one JSON line per run",
    )
    run.add_argument("--json", action="store_true", help="print JSON")
    run.add_argument("--user", help="who is asking (default: COPILOT_USER)")
    run.add_argument(
        "--conversation",
        default="",
        metavar="ID",
        help="start or continue conversation ID: a follow-up ('and the replicas?') builds on "
        "its previous task and answer (the chat's ?c= id works too)",
    )
    listing = sub.add_parser(
        "runs", help="list runs; `runs ID` shows one; `runs resume ID` continues one"
    )
    listing.add_argument("target", nargs="*", metavar="[resume] ID", help="a run id")
    listing.add_argument("--status", choices=runs.STATUSES)
    listing.add_argument("--user", help="only this user's runs (for resume: who resumes)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("demo", help="run a canned task and print it readably")
    queue = sub.add_parser("approvals", help="list approval requests")
    queue.add_argument("--status", choices=approvals.STATUSES)
    queue.add_argument("--json", action="store_true", help="print JSON")
    for name in ("approve", "reject"):
        p = sub.add_parser(name, help=f"{name} a pending request by id; the run then goes on")
        p.add_argument("approval_id")
        if name == "approve":
            p.add_argument("--note", default="", help="why (optional)")
            p.add_argument(
                "--args",
                type=_json_object,
                help="edited arguments: a JSON object merged over the requested ones",
            )
        else:
            p.add_argument("--reason", dest="note", default="", help="required: why not")
        p.add_argument("--user", help="who decides (default: COPILOT_USER)")
        p.add_argument("--json", action="store_true", help="print JSON")
    _add_telemetry_commands(sub)
    _add_governance_commands(sub)
    _add_tool_commands(sub)
    scan = sub.add_parser("scan", help="check a text for prompt injection (exit 1 if flagged)")
    scan.add_argument("text", nargs="?", help="the text to check, in quotes")
    scan.add_argument("--json", action="store_true", help="print JSON")
    scan.add_argument(
        "--jsonl",
        action="store_true",
        help='batch: read {"text": ...} lines on stdin, write one result per line',
    )
    _add_users_commands(sub)
    _add_bench_command(sub)
    _accept_common_options_after_the_command(sub)
    return parser


def _accept_common_options_after_the_command(sub: Any) -> None:
    """`index --corpus X` as well as `--corpus X index`. SUPPRESS keeps a value given before
    the command when the subcommand's own copy of the option is absent."""
    for command in sub.choices.values():
        command.add_argument("--corpus", type=Path, default=argparse.SUPPRESS, help=CORPUS_HELP)
        command.add_argument("--home", type=Path, default=argparse.SUPPRESS, help=HOME_HELP)


CORPUS_HELP = "runbook folder (default: COPILOT_CORPUS)"
HOME_HELP = "data folder (default: COPILOT_HOME)"
CORPUS_COMMANDS = ("index", "search", "run", "demo")
"""Commands that read the runbooks: a missing corpus folder is an error, not the old index."""


def main(
    argv: Sequence[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> int:
    out = cast(TextIO, Printable(stdout or sys.stdout))
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args, stdin or sys.stdin, out)
    except CopilotError as exc:
        return _fail(str(exc))
    except OSError as exc:  # what a user can cause: a path that is a file, no permission...
        return _fail(_os_message(exc))


def _dispatch(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    _reject_undecodable(args)
    settings = _settings(args)
    if args.command in CORPUS_COMMANDS and not settings.corpus.is_dir():
        raise CorpusError(
            f"Corpus folder {settings.corpus} does not exist; point --corpus (or "
            "COPILOT_CORPUS) at a folder of Markdown runbooks, e.g. --corpus corpus."
        )
    with _warnings_to_stderr():
        services = Services(settings)
        _check_user(services, args)
        for run_id in services.sweep():
            print(f"note: run {run_id} was interrupted; `runs resume {run_id}`", file=sys.stderr)
        return COMMANDS[args.command](services, args, stdin, out)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k in ("corpus", "home") if (v := getattr(args, k, None))}
    settings = Settings.load(**overrides)
    if settings.home.exists() and not settings.home.is_dir():
        raise ConfigError(
            f"Data folder {settings.home} is a file; point --home (or COPILOT_HOME) at a "
            "folder, e.g. --home runtime (it is created if missing)."
        )
    return settings


def _reject_undecodable(args: argparse.Namespace) -> None:
    """Bytes that are not UTF-8 reach argv as lone surrogates (PEP 383); they cannot be
    stored, searched or printed, so they are refused up front."""
    for name, value in vars(args).items():
        if isinstance(value, str) and _SURROGATE.search(value):
            raise InputError(
                f"The {name} holds bytes that are not UTF-8 text; retype it, or set a UTF-8 "
                "locale (e.g. LANG=C.UTF-8) in the terminal that produced it."
            )


_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """Control characters, ANSI escapes and bidi overrides as `\\x1b`-style escapes; newlines
    and tabs stay, so answers keep their layout."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class Printable(io.TextIOBase):
    """A text stream that escapes what `printable` escapes before passing it on."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        escaped = printable(_SURROGATE.sub("\ufffd", text))
        self.inner.write(escaped)
        return len(text)

    def flush(self) -> None:
        self.inner.flush()


def _fail(message: str) -> int:
    print(f"error: {printable(' '.join(message.split()))}", file=sys.stderr)
    return 2


def _os_message(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}. Check that the path exists and that you may write it."


class _CliWarnings(logging.Handler):
    """Library warnings (a skipped runbook) as one `warning: ...` line each. Without a handler
    Python's last-resort one printed them and `index` printed them again."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"warning: {printable(record.getMessage())}", file=sys.stderr)


@contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """For one command only: a handler left on the logger outlives the command, and an object
    of ours still referenced at interpreter exit (with torch loaded) makes nanobind report
    DuckDB's types as leaked."""
    logger = logging.getLogger("copilot")
    handler, propagate = _CliWarnings(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False  # a root handler (a library's basicConfig) would print it again
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def cmd_index(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    report = services.retriever.refresh()  # skipped runbooks are logged: see _CliWarnings
    print(f"index: {report.summary()}", file=out)
    return 0


def cmd_search(services: Services, args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    if not 1 <= args.k <= 50:
        raise InputError("-k must be between 1 and 50.")
    if args.jsonl:
        return _search_jsonl(services, args.k, stdin, out)
    if not args.query or not args.query.strip():
        raise InputError("Give a query, e.g. python -m copilot search 'disk full on db host'.")
    hits = [h.as_dict() for h in services.retriever.search(args.query, args.k)]
    if args.json:
        print(json.dumps({"q": args.query, "results": hits}, indent=2), file=out)
        return 0
    for rank, h in enumerate(hits, 1):
        print(
            f"{rank}. [{h['score']:.3f}] {h['source']} - {h['heading']}  ({h['chunk_id']})",
            file=out,
        )
        print("   " + " ".join(str(h["text"]).split())[:200], file=out)
    return 0


def _search_jsonl(services: Services, k: int, stdin: TextIO, out: TextIO) -> int:
    queries: list[str] = []
    for number, line in enumerate(stdin, 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)["q"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f'stdin line {number} is not {{"q": "..."}} JSON.') from None
        if not isinstance(q, str) or not q.strip():
            raise InputError(f'stdin line {number}: "q" must be a non-empty string.')
        queries.append(q)
    fields = ("source", "heading", "chunk_id", "score", "text")
    for q, hits in zip(queries, services.retriever.search_many(queries, k), strict=True):
        results = [{f: h.as_dict()[f] for f in fields} for h in hits]
        out.write(json.dumps({"q": q, "results": results}) + "\n")
    return 0


def cmd_run(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    if args.file:
        return _run_file(services, args, out)
    if not args.task:
        raise InputError("Give a task in quotes, or --file TASKS for many.")
    user = args.user or services.settings.user
    state = services.engine().start(args.task, user=user, session_id=args.conversation)
    if args.json:
        print(json.dumps(as_dict(state), indent=2, default=str), file=out)
    else:
        print(format_run(state), file=out)
    return 0 if state.verdict != "fail" else 1


def _run_file(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    """Many tasks, one process, one model load; a bad line is reported and skipped."""
    try:
        lines = args.file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read --file {args.file}: {exc}") from None
    engine, user, failures = services.engine(), args.user or services.settings.user, 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            task = runs.task_of_line(line, number)
            state = engine.start(task, user=user, session_id=args.conversation)
            row = as_dict(state) if args.json else runs.brief(state)
        except CopilotError as exc:
            failures += 1
            row = {"line": number, "error": str(exc)}
            print(f"error: line {number}: {exc}", file=sys.stderr)
        out.write(json.dumps(row, default=str) + "\n")
        out.flush()
    return 1 if failures else 0


def cmd_demo(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    print(f"Task: {DEMO_TASK}\n", file=out)
    user = args.user or services.settings.user
    print(format_run(services.engine().start(DEMO_TASK, user=user)), file=out)
    return 0


def format_run(state: RunState) -> str:
    lines = [
        f"Run {state.run_id} - {state.status} - provider {state.provider}/{state.model}"
        f" - cost ${state.cost:.6f}",
        summary(state),
        "",
        "Plan:",
    ]
    for s in state.steps:
        tool = f": {s.tool}" + (f" on {s.target} ({s.mode})" if s.target else "") if s.tool else ""
        lines.append(f"  {s.position}. {s.title} [{s.action}{tool}] - {s.status}")
    lines += ["", "Answer:", state.answer, "", "Citations:"]
    lines += [
        f"  - {c['chunk_id']} ({c['heading']}, score {c['score']})"
        for c in as_dict(state)["citations"]
    ]
    lines += ["", f"Reviewer verdict: {state.verdict.upper()}"]
    lines += [f"  - {r}" for r in state.reasons]
    pending = state.pending()
    if pending:
        lines += ["", "Waiting for approval (python -m copilot approve ID):"]
        lines += [f"  - {s.approval_id}: {s.tool} {json.dumps(s.args)[:100]}" for s in pending]
    if state.error:
        lines += ["", f"Error: {state.error}"]
    return "\n".join(lines)


def cmd_runs(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    target = list(args.target)
    if target[:1] == ["resume"]:
        if len(target) != 2:
            raise InputError("Usage: python -m copilot runs resume RUN_ID")
        state = services.engine().resume(target[1])
        print(json.dumps(as_dict(state), default=str) if args.json else format_run(state), file=out)
        return 0
    if len(target) > 1:
        raise InputError("Give one run id (runs ID), or `runs resume ID`.")
    if target:
        detail = runs.show(services.store, target[0])
        if args.json:
            print(json.dumps(detail, indent=2, default=str), file=out)
        else:
            print(format_run(RunState.from_json(detail["state_json"])), file=out)
            print(runs.format_approvals(detail["approvals"]), file=out)
        return 0
    rows = runs.list_runs(services.store, status=args.status, user=args.user)
    if args.json:
        print(json.dumps(rows, indent=2, default=str), file=out)
        return 0
    if not rows:
        print("No runs yet. Try: python -m copilot demo", file=out)
    for r in rows:
        print(
            f"{r['run_id']}  {r['status']:<17} {r['user_name']:<10} "
            f"{r['created_at']:%Y-%m-%d %H:%M}  {runs.one_line(r['task'], 60)}",
            file=out,
        )
    return 0


def cmd_approvals(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    rows = approvals.list_approvals(services.store, args.status)
    if args.json:
        print(json.dumps([runs.approval_json(r) for r in rows], indent=2, default=str), file=out)
        return 0
    if not rows:
        print(
            "No approval requests. Run a task that asks for a write, e.g. python -m copilot demo.",
            file=out,
        )
    for r in rows:
        print(
            f"{r['approval_id']}  {r['status']:<9} {r['tool']:<28} run {r['run_id']}  "
            f"{str(r['action'])[:60]}",
            file=out,
        )
    return 0


def _decide(approve: bool) -> Callable[[Services, argparse.Namespace, TextIO, TextIO], int]:
    def command(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
        done = services.engine().decide(
            args.approval_id,
            approve=approve,
            user=args.user or services.settings.user,
            note=args.note,
            args=getattr(args, "args", None),
        )
        step = done.state.step(int(done.approval["step"]))
        if args.json:
            print(json.dumps(runs.decided_json(done), indent=2, default=str), file=out)
        else:
            print(runs.decided_line(done, step), file=out)
            print(f"run {done.state.run_id}: {done.state.status} - {summary(done.state)}", file=out)
        return 0 if done.tool_status in (None, "done") else 1

    return command


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, e.g. \'{"summary": "..."}\'')
    return value


def _add_telemetry_commands(sub: Any) -> None:
    side = sub.add_parser("sidecar", help="serve telemetry as JSON (Grafana) and /metrics")
    side.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    side.add_argument("--port", type=int, default=8000, help="default 8000")
    dump = sub.add_parser("export", help="write usage, approvals, audit, reviews as CSV + JSON")
    dump.add_argument("--out", type=Path, default=Path("reports/telemetry"), help="folder")
    _range_args(dump)
    tables = sub.add_parser("metrics", help="cost, latency, approvals, reviewer outcomes tables")
    _range_args(tables)
    for name in ("provider", "model", "user"):
        tables.add_argument(f"--{name}", help=f"only this {name}")
    prune = sub.add_parser("prune", help="delete one provider's LLM usage rows (audited)")
    prune.add_argument("--provider", help="required: whose rows to delete, e.g. stub")
    prune.add_argument("--before", metavar="DATE", help="only rows older than this (UTC)")
    prune.add_argument("--user", help="who prunes (default: COPILOT_USER)")


def _add_tool_commands(sub: Any) -> None:
    tools = sub.add_parser("tools", help="list the tools: reads or writes, live or sandbox, target")
    tools.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("tickets", help="list sandbox Jira tickets, GitHub issues and PR branches")


def cmd_tools(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    toolbox = Toolbox(services.settings, services.store)
    rows = [
        {
            "name": spec.name,
            "writes": spec.writes,
            "mode": toolbox.mode(spec.name),
            "target": toolbox.target(spec.name, {}),
            "description": spec.description,
        }
        for spec in toolbox.specs()
    ]
    for server, problem in toolbox.mcp_errors.items():
        print(f"warning: MCP server {server}: {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2), file=out)
        return 0
    for r in rows:
        kind = "write" if r["writes"] else "read"
        print(
            f"{r['name']:<30} {kind:<5} {r['mode']:<7} {r['target']:<22} {r['description']}",
            file=out,
        )
    return 0


def cmd_tickets(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    toolbox = Toolbox(services.settings, services.store)
    for title, tickets in (
        ("Sandbox Jira tickets", toolbox.sandbox_jira.recent()),
        ("Sandbox GitHub issues", toolbox.sandbox_issues.recent()),
    ):
        print(f"{title}: {len(tickets)}", file=out)
        for t in tickets:
            print(f"  {t['key']:<12} {t['status']:<12} {t['summary'][:70]}", file=out)
    branches = toolbox.repo.branches()
    print(f"Sandbox pull request branches ({toolbox.repo.path}): {len(branches)}", file=out)
    for branch in branches:
        print(f"  {branch}", file=out)
    return 0


def _range_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", metavar="DATE", help="UTC, e.g. 2024-05-01")
    parser.add_argument("--to", dest="end", metavar="DATE", help="UTC, exclusive")


def cmd_sidecar(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    if not 1 <= args.port <= 65535:
        raise InputError(f"--port {args.port} is not a TCP port; use 1-65535, e.g. 8000.")
    # Imported here: FastAPI and uvicorn are only needed by this command.
    import uvicorn

    from copilot.sidecar import create_app

    print(f"sidecar: http://{args.host}:{args.port}/healthz (Ctrl-C stops it)", file=out)
    uvicorn.run(create_app(services.settings), host=args.host, port=args.port, log_level="info")
    return 0


def cmd_export(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    filters = telemetry.Filters.parse(args.start, args.end)
    manifest = export.export_files(services.store, args.out, filters)
    for name, table in manifest["tables"].items():
        rows = f"{table['rows']:>8} {'row ' if table['rows'] == 1 else 'rows'}"
        print(f"{name:<13} {rows} -> {args.out / name}.csv, .json", file=out)
    head = manifest["audit_chain_head"]
    print(f"manifest: {args.out / 'manifest.json'} (audit head #{head['seq']})", file=out)
    return 0


def cmd_metrics(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    filters = telemetry.Filters.parse(args.start, args.end, args.provider, args.model, args.user)
    print(export.metrics_text(services.store, filters), file=out)
    return 0


def cmd_prune(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    before = telemetry.parse_time(args.before, "--before")
    actor = args.user or services.settings.user
    count = telemetry.prune_usage(services.store, args.provider or "", before, actor=actor)
    noun = "row" if count == 1 else "rows"
    print(f"pruned {count} llm_usage {noun} of provider {args.provider} (audited)", file=out)
    return 0


# -- Governance: policy check/explain, audit list/verify ---------------------------------------


def _add_governance_commands(sub: Any) -> None:
    policy = sub.add_parser("policy", help="check a Cedar policy file, explain a decision")
    what = policy.add_subparsers(dest="policy_command", required=True, metavar="check|explain")
    check = what.add_parser("check", help="parse and type-check a policy file")
    check.add_argument("file", nargs="?", type=Path, help="default: COPILOT_POLICY or built-in")
    explain = what.add_parser("explain", help="what the policy decides for one request")
    explain.add_argument("--user", help="who asks (default: COPILOT_USER)")
    explain.add_argument("--role", required=True, help="requester, approver or admin")
    explain.add_argument("--action", required=True, help="tool name, e.g. jira.create_issue")
    explain.add_argument("--writes", action="store_true", help="the tool writes")
    explain.add_argument("--target", default="sandbox", help="e.g. jira:OPS, github:owner/repo")
    explain.add_argument("--tainted", action="store_true", help="flagged content shaped it")
    explain.add_argument("--environment", default="default")
    explain.add_argument("--requested-by", help="with --action approve: the requester")
    explain.add_argument("--json", action="store_true", help="print JSON")
    budget = sub.add_parser("budget", help="today's LLM spend against each limit")
    budget.add_argument("--user", help="whose spend (default: COPILOT_USER)")
    budget.add_argument("--json", action="store_true", help="print JSON")
    store_cmd = sub.add_parser("store", help="move the governance DuckDB file into PostgreSQL")
    store_verbs = store_cmd.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    copy = store_verbs.add_parser("copy", help="copy every table, then verify the audit chain")
    copy.add_argument(
        "--to",
        help="postgresql://USER@HOST[:PORT]/DB (default: COPILOT_DATABASE_URL); leave the "
        "password out and set it in COPILOT_DATABASE_URL or PGPASSWORD",
    )
    copy.add_argument("--from", dest="source", type=Path, help="DuckDB file (default: the home's)")
    copy.add_argument("--replace", action="store_true", help="delete rows already there first")
    copy.add_argument("--json", action="store_true", help="print JSON")
    audit_cmd = sub.add_parser("audit", help="list audit events, or `audit verify` the chain")
    audit_cmd.add_argument("verb", nargs="?", choices=["verify"], help="verify the hash chain")
    audit_cmd.add_argument("--head", type=Path, help="head file or export manifest to compare")
    audit_cmd.add_argument("--run", help="only this run id")
    audit_cmd.add_argument("--actor", help="only this actor")
    audit_cmd.add_argument("--action", help="only this action, e.g. approval.decided")
    audit_cmd.add_argument("--limit", type=int, default=500, help="newest N (default 500)")
    audit_cmd.add_argument("--json", action="store_true", help="print JSON")


def cmd_policy(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    tools = _tool_registry()
    if args.policy_command == "check":
        path = args.file or services.settings.policy
        policy = Policy.load(path, tools=tools)
        rules = ", ".join(policy.rule_ids)
        print(f"policy OK: {policy.source} ({rules}); sha256 {policy.hash}", file=out)
        return 0
    policy = load_policy(services.settings, tools=tools)
    user = args.user or services.settings.user
    if args.action == "approve":
        if not args.requested_by:
            raise InputError("--action approve needs --requested-by NAME (who asked).")
        decision = policy.can_approve(
            user, args.role, approval_id="explain", requested_by=args.requested_by,
            tool="", target=args.target,
        )  # fmt: skip
    else:
        writes = args.writes or bool(tools and tools.get(args.action))
        decision = policy.decide(
            user, args.role, args.action, writes=writes, target=args.target,
            tainted=args.tainted, environment=args.environment,
        )  # fmt: skip
    if args.json:
        print(json.dumps(decision.as_dict(), indent=2), file=out)
        return 0
    print(f"decision: {decision.effect}", file=out)
    print(f"rules:    {', '.join(decision.rule_ids) or '(none: nothing permits it)'}", file=out)
    print(f"reason:   {decision.reason}", file=out)
    print(f"policy:   {policy.source} sha256 {decision.policy_hash}", file=out)
    return 0


def _tool_registry() -> dict[str, bool] | None:
    """Tool name -> writes, from the tool registry, so unknown tools are denied here too."""
    try:
        from copilot.tools import TOOLS
    except ImportError:  # the registry moved; decisions then trust --writes
        return None
    return {name: spec.writes for name, spec in TOOLS.items()}


def cmd_budget(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    user = args.user or services.settings.user
    spend = budgets.spend_today(services.store, user)
    limits = budgets.Limits.from_settings(services.settings)
    scopes = [
        (f"user {user} today", spend.user_usd, limits.user_usd),
        ("everyone today", spend.total_usd, limits.total_usd),
        ("each run", None, limits.run_usd),
    ]
    rows: list[dict[str, Any]] = [
        {"scope": scope, "spent_usd": spent, "limit_usd": limit,
         "level": budgets.level(spent or 0.0, limit)}
        for scope, spent, limit in scopes
    ]  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=1), file=out)
        return 0
    for row in rows:
        spent = "" if row["spent_usd"] is None else f"${row['spent_usd']:.6f} of "
        limit = f"${row['limit_usd']:.6f}" if row["limit_usd"] else "no limit"
        print(f"{row['scope']:<24} {spent}{limit}  [{row['level']}]", file=out)
    return 0


def cmd_store(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    settings = services.settings
    target = args.to or settings.database_url
    if not is_postgres_url(target):
        raise InputError(
            "store copy needs a destination: --to postgresql://USER@HOST/DB or "
            "COPILOT_DATABASE_URL (the password from that variable or PGPASSWORD)."
        )
    source_path = args.source or settings.db_path
    if not source_path.is_file():
        raise InputError(f"No governance DuckDB file at {source_path}; pass --from PATH.")
    redact = Redactor(settings.secret_values())
    dest = store_at(_with_password(target, settings.database_url), redact=redact)
    report = storecopy.copy_store(store_at(source_path, redact=redact), dest, replace=args.replace)
    if args.json:
        print(json.dumps(storecopy.as_dict(report)), file=out)
    else:
        print(f"{source_path} -> {redact_url(target)}", file=out)
        print("\n".join(storecopy.describe(report)), file=out)
    return 0 if report.chain.ok else 1


def _with_password(url: str, configured: str) -> str:
    """--to without a password takes the one in COPILOT_DATABASE_URL for the same server
    (PGPASSWORD needs nothing: libpq reads it)."""
    if url_password(url) or not url_password(configured):
        return url
    if url.split("@")[-1] != configured.split("@")[-1]:
        return url
    return configured


def cmd_audit(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    if args.verb == "verify":
        head_file = args.head or services.store.head_file
        if args.head and not args.head.exists():
            raise InputError(f"--head {args.head} does not exist.")
        check = audit.verify_chain(services.store, audit.read_head(head_file))
        if args.json:
            print(json.dumps({**check.as_dict(), "head_file": str(head_file)}), file=out)
        else:
            verdict = "intact" if check.ok else f"BROKEN at event {check.broken_at}"
            print(f"audit chain {verdict}: {check.events} events; {check.reason}", file=out)
            if not check.head_checked:
                print(f"(no head file at {head_file}: a cut-off tail is not detectable)", file=out)
        return 0 if check.ok else 1
    if not 1 <= args.limit <= 100_000:
        raise InputError("--limit must be between 1 and 100000.")
    rows = audit.events(services.store, args.run, args.limit, actor=args.actor, action=args.action)
    if args.json:
        print(json.dumps(rows, indent=1, default=str), file=out)
        return 0
    if not rows:
        print("No audit events match. Run a task, e.g. python -m copilot demo.", file=out)
    for r in rows:
        print(
            f"{r['seq']:>6} {r['created_at']:%Y-%m-%d %H:%M:%S} {r['actor']:<12} "
            f"{r['action']:<22} {r['run_id'] or '-':<12} {str(r['reason'])[:70]}",
            file=out,
        )
    return 0


def cmd_scan(_services: Services, args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    if args.jsonl:
        return _scan_jsonl(stdin, out)
    if not args.text or not args.text.strip():
        raise InputError(
            "Give a text to check, e.g. python -m copilot scan 'ignore previous instructions', "
            'or pipe {"text": ...} lines into python -m copilot scan --jsonl.'
        )
    result = guard.assess(args.text, "text")
    if args.json:
        print(json.dumps(result.as_dict(), ensure_ascii=False), file=out)
    else:
        print(f"{'FLAGGED' if result.flagged else 'clean'} (score {result.score:.2f})", file=out)
        for reason in result.reasons:
            print(f"  - {reason}", file=out)
    return 1 if result.flagged else 0


def _scan_jsonl(stdin: TextIO, out: TextIO) -> int:
    """Every line is read and checked before the model loads, then one batched assessment."""
    texts: list[str] = []
    for number, line in enumerate(stdin, 1):
        if not line.strip():
            continue
        try:
            text = json.loads(line)["text"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f'stdin line {number} is not {{"text": "..."}} JSON.') from None
        if not isinstance(text, str):
            raise InputError(f'stdin line {number}: "text" must be a string.')
        texts.append(text)
    for result in guard.assess_chunks(texts, [f"line {i}" for i in range(1, len(texts) + 1)]):
        out.write(json.dumps(result.as_dict(), ensure_ascii=False) + "\n")
    return 0


# Commands that act, and the least role their --user needs (the CLI is an admin channel:
# it acts as a registered user, never as whoever typed a name).
ACTING_ROLES = {
    "run": ("requester", "running a task"),
    "demo": ("requester", "running the demo task"),
    "runs resume": ("requester", "resuming a run"),
    "approve": ("approver", "approving"),
    "reject": ("approver", "rejecting"),
    "prune": ("admin", "pruning usage rows"),
    "users": ("admin", "managing users"),
}


def _check_user(services: Services, args: argparse.Namespace) -> None:
    """Resolve --user to a registered, enabled user with the role the command needs; the
    commands then read `args.user` as before."""
    settings = services.settings
    # With header/OIDC too: the CLI's users live in the store. `index` also creates the first
    # admin because `make run` indexes first: its password then shows before the app starts.
    if settings.auth != "none" and (args.command in ACTING_ROLES or args.command == "index"):
        identity.ensure_initial_admin(services.store, settings.home)
    command = args.command
    if command == "runs" and list(args.target)[:1] == ["resume"]:
        command = "runs resume"
    if command not in ACTING_ROLES:
        return
    name = getattr(args, "user", None) or args.main_user
    who = identity.resolve_cli_user(services.store, settings, name)
    role, doing = ACTING_ROLES[command]
    identity.require(who, role, doing)
    args.user, args.identity = who.name, who  # the engine takes `role=args.identity.role`


def _add_bench_command(sub: Any) -> None:
    bench = sub.add_parser(
        "bench", help="run the evaluation suite: governed vs baseline, metrics and report"
    )
    bench.add_argument("--suite", choices=evaluation_suite.SUITES, default="quick")
    bench.add_argument("--config", choices=evaluation.CHOICES, default="both")
    bench.add_argument("--provider", help="LLM provider (default: LLM_PROVIDER, else stub)")
    bench.add_argument("--tasks", type=int, help="run only N tasks, spread over the kinds")
    bench.add_argument("--out", type=Path, help="report folder (default: reports/bench)")
    bench.add_argument("--json", action="store_true", help="print the report as JSON")


def cmd_bench(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    """The suite runs in its own temp world; `services` (the user's home) is not touched."""
    request = evaluation.BenchRequest(
        suite=args.suite,
        config=args.config,
        provider=args.provider or services.settings.llm_provider,
        tasks=args.tasks,
        out=args.out,
    )
    built, paths = evaluation.run_bench(request, lambda line: print(line, file=sys.stderr))
    if args.json:
        print(json.dumps(built, indent=1, default=str), file=out)
        return 0
    print(evaluation_report.metrics_table(built), file=out)
    print(f"\nwall time {built['wall_s']} s; report: {paths[1]} and {paths[0]}", file=out)
    return 0


def _add_users_commands(sub: Any) -> None:
    users = sub.add_parser("users", help="manage who may sign in (admins only)")
    verbs = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = verbs.add_parser("add", help="register a user")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=identity.ROLES)
    setpw = verbs.add_parser("set-password", help="set a new password (also unlocks)")
    setpw.add_argument("name")
    for p in (add, setpw):
        p.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin (else prompt or generate)",
        )
    listing = verbs.add_parser("list", help="list users, roles and lockouts")
    listing.add_argument("--json", action="store_true", help="print JSON")
    disable = verbs.add_parser("disable", help="stop a user from signing in or acting")
    disable.add_argument("name")
    for p in (add, setpw, listing, disable):
        p.add_argument("--user", help="admin acting (default: COPILOT_USER)")


def cmd_users(services: Services, args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    store, actor = services.store, args.user
    if args.users_command == "list":
        return _print_users(identity.list_users(store), args.json, out)
    if args.users_command == "disable":
        identity.disable_user(store, args.name, actor=actor)
        print(f"disabled {args.name} (audited)", file=out)
        return 0
    password, generated = _new_password(args.password_stdin, stdin)
    if args.users_command == "add":
        identity.add_user(store, args.name, args.role, password, actor=actor)
        print(f"added {args.name} as {args.role} (audited)", file=out)
    else:
        identity.set_password(store, args.name, password, actor=actor)
        identity.forget_initial_password(services.settings.home, args.name)
        print(f"set the password of {args.name} (audited)", file=out)
    if generated:
        print(f"password for {args.name}: {password}  (shown once; pass it on safely)", file=out)
    return 0


def _new_password(from_stdin: bool, stdin: TextIO) -> tuple[str, bool]:
    """(password, generated): from stdin, typed twice at a terminal, or generated."""
    if from_stdin:
        password = stdin.readline().rstrip("\r\n")
        if not password:
            raise InputError(
                "--password-stdin read an empty line; pipe the password in, e.g. "
                "printf '%s\\n' \"$PW\" | python -m copilot users add NAME --role requester "
                "--password-stdin"
            )
        return identity.check_password(password), False
    if stdin.isatty():
        first = getpass.getpass("New password (Enter to generate one): ")
        if first:
            if getpass.getpass("Repeat it: ") != first:
                raise InputError("The two passwords differ; run the command again.")
            return identity.check_password(first), False
    return identity.generate_password(), True


def _print_users(rows: list[dict[str, Any]], as_json: bool, out: TextIO) -> int:
    if as_json:
        print(json.dumps(rows, indent=2, default=str), file=out)
        return 0
    for r in rows:
        state = "enabled" if r["enabled"] else "disabled"
        if r["locked_until"] and r["locked_until"] > utcnow():
            state += f", locked until {r['locked_until']:%Y-%m-%d %H:%M} UTC"
        print(f"{r['name']:<24} {r['role']:<10} {state}", file=out)
    return 0


COMMANDS: dict[str, Callable[[Services, argparse.Namespace, TextIO, TextIO], int]] = {
    "index": cmd_index,
    "search": cmd_search,
    "run": cmd_run,
    "runs": cmd_runs,
    "demo": cmd_demo,
    "approvals": cmd_approvals,
    "approve": _decide(True),
    "reject": _decide(False),
    "sidecar": cmd_sidecar,
    "export": cmd_export,
    "metrics": cmd_metrics,
    "prune": cmd_prune,
    "policy": cmd_policy,
    "audit": cmd_audit,
    "budget": cmd_budget,
    "tools": cmd_tools,
    "tickets": cmd_tickets,
    "scan": cmd_scan,
    "users": cmd_users,
    "store": cmd_store,
    "bench": cmd_bench,
}
