"""`python -m copilot`: index, search, run, demo and the approval queue from a terminal.

Every CopilotError, and every OSError a user can cause (a path that is a file, a folder
without permission), is turned into one `error: ...` line on stderr and exit code 2, in
`main` and nowhere else. Everything written to the terminal goes through `printable`, so a
task holding ANSI escapes or control characters is shown escaped, never replayed.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, cast

from copilot import approvals, export, telemetry
from copilot.agents import RunResult
from copilot.config import Settings
from copilot.errors import ConfigError, CopilotError, CorpusError, InputError
from copilot.service import Services
from copilot.tools import Sandbox

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
        return COMMANDS[args.command](Services(settings), args, stdin, out)


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
}
