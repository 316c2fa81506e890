"""`python -m copilot` in-process through main(), and once as a real subprocess."""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from copilot.cli import main
from copilot.config import Settings
from copilot.store import Store
from tests.conftest import REPO, RUNBOOKS


@pytest.fixture
def env(settings: Settings, monkeypatch):
    monkeypatch.setenv("COPILOT_HOME", str(settings.home))
    monkeypatch.setenv("COPILOT_CORPUS", str(settings.corpus))
    monkeypatch.delenv("LLM_PROVIDER", raising=False)
    monkeypatch.chdir(settings.home)  # no stray .env from the repo
    return settings


def run(*argv: str, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdin=io.StringIO(stdin), stdout=out)
    return code, out.getvalue()


def test_index_reports_unchanged_corpus(env):
    code, out = run("index")
    assert code == 0 and f"0 added, 0 changed, 0 removed, {RUNBOOKS} unchanged" in out


def test_search_json_and_jsonl(env):
    code, out = run("search", "certificate expires soon", "-k", "2", "--json")
    data = json.loads(out)
    assert code == 0 and len(data["results"]) == 2
    assert data["results"][0]["source"] == "tls-certificate-expiry.md"
    lines = '{"q": "disk full"}\n{"q": "redis evictions"}\n'
    code, out = run("search", "--jsonl", "-k", "3", stdin=lines)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["q"] for r in rows] == ["disk full", "redis evictions"]
    assert set(rows[0]["results"][0]) == {"source", "heading", "chunk_id", "score", "text"}
    assert rows[1]["results"][0]["source"] == "redis-memory-eviction.md"


def test_run_json_has_the_promised_fields(env):
    code, out = run("run", "Postgres replica is lagging behind the primary", "--json")
    data = json.loads(out)
    assert code == 0
    assert {"run_id", "status", "plan", "answer", "citations", "review", "cost_usd"} <= set(data)
    assert {"source", "chunk_id"} <= set(data["citations"][0])
    assert data["review"]["verdict"] == "pass" and data["review"]["reasons"]


def test_demo_prints_plan_answer_and_verdict_and_approvals_flow(env):
    code, out = run("demo")
    assert code == 0
    assert "Plan:" in out and "Reviewer verdict: PASS" in out and "Citations:" in out
    approval_id = out.split("Waiting for approval")[1].split("\n  - ")[1].split(":")[0]
    code, out = run("approvals", "--status", "pending")
    assert approval_id in out
    code, out = run("approve", approval_id, "--user", "lead")
    assert code == 0 and "approved by lead" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "   "], "The task is empty"),
        (["search", "--jsonl"], None),
        (["approve", "does-not-exist"], "No approval request"),
        (["--corpus", "/nonexistent", "index"], "does not exist"),
    ],
)
def test_user_errors_exit_nonzero_with_advice(env, capsys, argv, message):
    code, _ = run(*argv, stdin="not json\n")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ")
    if message:
        assert message in err


def test_unknown_subcommand_and_bad_config_in_a_real_process(tmp_path: Path):
    env = {**os.environ, "COPILOT_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "copilot", "frobnicate"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "invalid choice: 'frobnicate'" in done.stderr
    env["LLM_PROVIDER"] = "openai"
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "copilot", "approvals"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "OPENAI_API_KEY" in done.stderr
    assert "Traceback" not in done.stderr


def test_db_held_by_another_process_is_a_clear_cli_error(env):
    from tests.test_store import hold_lock

    Path(env.db_path).parent.mkdir(parents=True, exist_ok=True)
    holder = hold_lock(env.db_path)  # e.g. a duckdb shell left open on the file
    try:
        proc_env = {**os.environ, "COPILOT_DB_LOCK_TIMEOUT": "0.5", "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, "-m", "copilot", "run", "disk full on db-3"],
            capture_output=True,
            text=True,
            env=proc_env,
            cwd=env.home,
            timeout=120,
        )
    finally:
        holder.communicate("\n", timeout=10)
    assert done.returncode == 2
    assert "locked by another process" in done.stderr and "Traceback" not in done.stderr
    assert Store(env.db_path).query("SELECT count(*) AS n FROM runs")[0]["n"] == 0


NOISE_SCRIPT = """
import sys
from copilot.embeddings import get_embedder
from streamlit.testing.v1 import AppTest

get_embedder()  # torch loaded, as in the app after a first chat answer
at = AppTest.from_file(sys.argv[1], default_timeout=120)
at.run()
assert not at.exception, at.exception
"""


def test_app_and_cli_exit_without_nanobind_leak_noise(env):
    """A Store cached by st.cache_resource (and the CLI's warning handler) used to outlive
    DuckDB's teardown with torch loaded: ~65 `nanobind: leaked` lines at every app stop."""
    proc_env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    page = str(REPO / "pages" / "screens" / "audit.py")
    commands = (["-c", NOISE_SCRIPT, page], ["-m", "copilot", "run", "disk full on db-3"])
    for argv in commands:
        done = subprocess.run(
            [sys.executable, *argv],
            capture_output=True,
            text=True,
            env=proc_env,
            cwd=env.home,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert "nanobind: leaked" not in done.stderr


# -- One line and exit 2, never a traceback -----------------------------------------------------


def cli(*argv: str | bytes, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m copilot` in a real process; bytes arguments reach argv as the OS gives them."""
    proc_env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "copilot", *argv],
        capture_output=True,
        text=True,
        env=proc_env,
        cwd=cwd,
        timeout=300,
    )


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_corpus_and_home_are_accepted_after_the_command(env, tmp_path):
    home = tmp_path / "elsewhere"
    shutil.copytree(env.home / "index", home / "index")
    code, out = run("index", "--corpus", str(env.corpus), "--home", str(home))
    assert code == 0 and f"{RUNBOOKS} unchanged" in out
    code, out = run("--home", str(home), "approvals")
    assert code == 0 and "No approval requests" in out


def test_a_missing_corpus_is_an_error_for_search_too(env, capsys):
    code, _ = run("search", "disk full", "--corpus", "/nonexistent")
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "Corpus folder /nonexistent does not exist" in line


def test_index_warnings_print_once(env, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(env.corpus, corpus)
    (corpus / "notes.txt").write_text("not a runbook")
    code, out = run("index", "--corpus", str(corpus))
    err = capsys.readouterr().err
    assert code == 0 and f"{RUNBOOKS} unchanged" in out
    assert err.splitlines() == ["warning: skipped notes.txt: not a Markdown (.md) file"]


def test_control_and_ansi_characters_are_shown_escaped(env, capsys):
    code, _ = run("approve", "\x1b[2Jgone\x07\u202e")
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "\\x1b[2Jgone\\x07\\u202e" in line
    assert "\x1b" not in line and "\x07" not in line and "\u202e" not in line
    code, out = run("run", "disk full on db-3 \x1b[31mNOW\x1b[0m")
    assert code == 0 and "\x1b" not in out


def test_bad_bytes_in_a_task_and_a_file_as_home_are_one_line_errors(env):
    done = cli("run", b"disk full on db-\xff\xfe", cwd=env.home)
    line = one_error_line(done.stderr)
    assert done.returncode == 2 and "not UTF-8" in line
    a_file = env.home / "not-a-folder"
    a_file.write_text("x")
    for argv in (["--home", str(a_file), "approvals"], ["approvals", "--home", str(a_file)]):
        done = cli(*argv, cwd=env.home)
        line = one_error_line(done.stderr)
        assert done.returncode == 2 and "is a file; point --home" in line
    done = cli("--home", str(a_file / "below"), "approvals", cwd=env.home)
    line = one_error_line(done.stderr)
    assert done.returncode == 2 and "Not a directory" in line
