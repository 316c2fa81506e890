"""`python -m copilot`: index, search, run, demo, the approval queue and users from a terminal.

Every CopilotError is turned into one line on stderr and exit code 2, here and nowhere else.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from copilot import approvals, export, telemetry
from copilot.agents import RunResult
from copilot.config import Settings
from copilot.errors import CopilotError, InputError
from copilot.governance import identity
from copilot.service import Services
from copilot.store import utcnow
from copilot.tools import Sandbox

DEMO_TASK = (
    "Pods in checkout are OOMKilled after the last deploy; raise the memory limit "
    "and open a ticket to track it."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m copilot", description="Ops Copilot: governed operations assistant."
    )
    parser.add_argument("--corpus", type=Path, help="runbook folder (default: COPILOT_CORPUS)")
    parser.add_argument("--home", type=Path, help="data folder (default: COPILOT_HOME)")
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
    run = sub.add_parser("run", help="run a governed task")
    run.add_argument("task", help="the operational task, in quotes")
    run.add_argument("--json", action="store_true", help="print JSON")
    run.add_argument("--user", help="who is asking (default: COPILOT_USER)")
    sub.add_parser("demo", help="run a canned task and print it readably")
    queue = sub.add_parser("approvals", help="list approval requests")
    queue.add_argument("--status", choices=approvals.STATUSES)
    for name in ("approve", "reject"):
        p = sub.add_parser(name, help=f"{name} a pending request by id")
        p.add_argument("approval_id")
        p.add_argument("--note", default="")
        p.add_argument("--user", help="who decides (default: COPILOT_USER)")
    _add_telemetry_commands(sub)
    _add_users_commands(sub)
    return parser


def main(
    argv: Sequence[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> int:
    out = stdout or sys.stdout
    args = _parser().parse_args(argv)
    try:
        overrides = {k: v for k, v in (("corpus", args.corpus), ("home", args.home)) if v}
        services = Services(Settings.load(**overrides))
        _check_user(services, args)
        return COMMANDS[args.command](services, args, stdin or sys.stdin, out)
    except CopilotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_index(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    report = services.retriever.refresh()
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
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
    result = services.copilot().run(args.task, user=args.user)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, default=str), file=out)
    else:
        print(format_run(result), file=out)
    return 0 if result.verdict != "fail" else 1


def cmd_demo(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    print(f"Task: {DEMO_TASK}\n", file=out)
    print(format_run(services.copilot().run(DEMO_TASK, user="demo")), file=out)
    return 0


def format_run(result: RunResult) -> str:
    lines = [
        f"Run {result.run_id} - {result.status} - provider {result.provider}/{result.model}"
        f" - cost ${result.cost_usd:.6f}",
        result.summary,
        "",
        "Plan:",
    ]
    lines += [
        f"  {s.position}. {s.title} [{s.action}{': ' + s.tool if s.tool else ''}] - {s.status}"
        for s in result.steps
    ]
    lines += ["", "Answer:", result.answer, "", "Citations:"]
    lines += [f"  - {c['chunk_id']} ({c['heading']}, score {c['score']})" for c in result.citations]
    lines += ["", f"Reviewer verdict: {result.verdict.upper()}"]
    lines += [f"  - {r}" for r in result.reasons]
    pending = [s for s in result.steps if s.approval_id]
    if pending:
        lines += ["", "Waiting for approval (python -m copilot approve ID):"]
        lines += [f"  - {s.approval_id}: {s.tool} {json.dumps(s.args)[:100]}" for s in pending]
    return "\n".join(lines)


def cmd_approvals(services: Services, args: argparse.Namespace, _in: TextIO, out: TextIO) -> int:
    rows = approvals.list_approvals(services.store, args.status)
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
        row = approvals.decide(
            services.store,
            Sandbox(services.settings.home),
            args.approval_id,
            approve=approve,
            user=args.user or services.settings.user,
            note=args.note,
        )
        print(f"{row['approval_id']}: {row['status']} by {row['decided_by']}", file=out)
        return 0

    return command


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
        print(f"{name:<13} {table['rows']:>8} rows -> {args.out / name}.csv, .json", file=out)
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
    print(f"pruned {count} llm_usage rows of provider {args.provider} (audited)", file=out)
    return 0


# Commands that act, and the least role their --user needs (the CLI is an admin channel:
# it acts as a registered user, never as whoever typed a name).
ACTING_ROLES = {
    "run": ("requester", "running a task"),
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
    if args.command not in ACTING_ROLES:
        return
    name = getattr(args, "user", None) or args.main_user
    who = identity.resolve_cli_user(services.store, settings, name)
    role, doing = ACTING_ROLES[args.command]
    identity.require(who, role, doing)
    args.user, args.identity = who.name, who  # the engine takes `role=args.identity.role`


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
    "demo": cmd_demo,
    "approvals": cmd_approvals,
    "approve": _decide(True),
    "reject": _decide(False),
    "sidecar": cmd_sidecar,
    "export": cmd_export,
    "metrics": cmd_metrics,
    "prune": cmd_prune,
    "users": cmd_users,
}
