"""Identity: users in the store, argon2 sign-in with lockout, the first admin, the header and
OIDC role mappings, and the CLI's users commands and --user check."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from copilot.cli import main
from copilot.config import Settings
from copilot.errors import ConfigError, InputError, NotFound, PolicyDenied
from copilot.governance import audit, identity
from copilot.governance.identity import Identity
from copilot.service import open_store
from copilot.store import Store, utcnow
from tests.conftest import REPO

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with its production cost takes ~0.5 s per hash on this machine; the lockout
    logic does not depend on the cost, so in-process tests use a cheap one."""
    monkeypatch.setattr(
        identity, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("COPILOT_AUTH", "local")
    monkeypatch.setenv("COPILOT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # no stray .env from the repo
    return Settings(home=tmp_path / "home", auth="local")


@pytest.fixture
def store(local: Settings) -> Store:
    return open_store(local)


def actions(store: Store) -> list[str]:
    return [e["action"] for e in reversed(audit.events(store))]


# --- the first start -----------------------------------------------------------------------


def test_first_start_creates_admin_with_a_private_password_file(store, local, capsys):
    password = identity.ensure_initial_admin(store, local.home)
    assert password
    path = local.home / identity.INITIAL_PASSWORD_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == password
    assert password in capsys.readouterr().err  # printed once, on stderr
    assert identity.authenticate(store, "admin", password) == Identity("admin", "admin")

    assert identity.ensure_initial_admin(store, local.home) is None  # users exist now
    assert password not in capsys.readouterr().err
    assert [u["name"] for u in identity.list_users(store)] == ["admin"]


def test_password_file_is_private_even_when_an_old_one_was_readable(store, local):
    local.home.mkdir(parents=True, exist_ok=True)
    old = local.home / identity.INITIAL_PASSWORD_FILE
    old.write_text("stale\n")
    old.chmod(0o644)
    password = identity.ensure_initial_admin(store, local.home, stderr=io.StringIO())
    assert stat.S_IMODE(old.stat().st_mode) == 0o600 and old.read_text().strip() == password


# --- local sign-in -------------------------------------------------------------------------


def test_wrong_password_and_unknown_user_get_the_same_answer(store):
    identity.add_user(store, "dana", "approver", PASSWORD, actor="admin")
    for name, password in (("dana", "nope nope nope"), ("nobody", PASSWORD), ("", "")):
        with pytest.raises(InputError, match=r"^Wrong user name or password\.$"):
            identity.authenticate(store, name, password)
    assert identity.authenticate(store, " dana ", PASSWORD) == Identity("dana", "approver")
    assert actions(store).count("signin_failed") == 3 and actions(store)[-1] == "signin"


def test_five_failures_lock_the_account_for_fifteen_minutes(store, monkeypatch):
    identity.add_user(store, "dana", "requester", PASSWORD, actor="admin")
    for _ in range(identity.MAX_FAILED_ATTEMPTS):
        with pytest.raises(InputError, match="Wrong"):
            identity.authenticate(store, "dana", "guess guess guess")
    with pytest.raises(InputError, match="locked until"):
        identity.authenticate(store, "dana", PASSWORD)  # even the right password
    row = identity.get_user(store, "dana")
    assert row and row["locked_until"] - utcnow() > timedelta(minutes=14)
    assert "account_locked" in actions(store) and "signin_refused" in actions(store)

    later = utcnow() + timedelta(minutes=16)
    monkeypatch.setattr(identity, "utcnow", lambda: later)
    assert identity.authenticate(store, "dana", PASSWORD).name == "dana"
    assert identity.get_user(store, "dana")["failed_attempts"] == 0  # type: ignore[index]


def test_an_admin_unlocks_by_setting_a_new_password(store):
    identity.add_user(store, "dana", "requester", PASSWORD, actor="admin")
    for _ in range(identity.MAX_FAILED_ATTEMPTS):
        with pytest.raises(InputError):
            identity.authenticate(store, "dana", "x" * 12)
    identity.set_password(store, "dana", "a brand new one", actor="admin")
    assert identity.authenticate(store, "dana", "a brand new one").role == "requester"
    with pytest.raises(InputError, match="Wrong"):
        identity.authenticate(store, "dana", PASSWORD)


def test_disabled_users_cannot_sign_in_and_the_last_admin_stays(store):
    identity.add_user(store, "root", "admin", PASSWORD, actor="system")
    identity.add_user(store, "dana", "requester", PASSWORD, actor="root")
    identity.disable_user(store, "dana", actor="root")
    with pytest.raises(InputError, match="disabled"):
        identity.authenticate(store, "dana", PASSWORD)
    assert identity.active_identity(store, "dana") is None
    with pytest.raises(InputError, match="last enabled admin"):
        identity.disable_user(store, "root", actor="root")
    with pytest.raises(NotFound, match="users list"):
        identity.disable_user(store, "ghost", actor="root")


def test_user_input_is_checked(store):
    with pytest.raises(InputError, match="too short"):
        identity.add_user(store, "dana", "requester", "short", actor="admin")
    with pytest.raises(InputError, match="Unknown role"):
        identity.add_user(store, "dana", "owner", PASSWORD, actor="admin")
    with pytest.raises(InputError, match="not usable"):
        identity.add_user(store, "dana; drop table", "requester", PASSWORD, actor="admin")
    identity.add_user(store, "dana@example.com", "requester", PASSWORD, actor="admin")
    with pytest.raises(InputError, match="already exists.*set-password"):
        identity.add_user(store, "dana@example.com", "admin", PASSWORD, actor="admin")


def test_the_password_never_reaches_the_store_or_the_audit_log(store, local):
    canary = "canary-Pa55word-7f3a9c"
    identity.add_user(store, "dana", "requester", canary, actor="admin")
    with pytest.raises(InputError):
        identity.authenticate(store, "dana", canary + "-typo")
    identity.authenticate(store, "dana", canary)
    stored = store.query("SELECT password_hash FROM users WHERE name = 'dana'")[0]
    assert stored["password_hash"].startswith("$argon2id$")
    for path in local.home.glob("governance.duckdb*"):
        assert canary.encode() not in path.read_bytes()
    assert audit.verify_chain(store).ok


# --- header and OIDC mapping ---------------------------------------------------------------

TEAM = Settings(
    auth="header",
    auth_role_map="ops-admins=admin, ops-leads=approver, ops=requester",
    auth_user_header="X-Auth-Request-User",
    auth_groups_header="X-Auth-Request-Groups",
)


@pytest.mark.parametrize(
    ("groups", "role"),
    [
        ("ops", "requester"),
        ("ops, ops-leads", "approver"),
        ("ops-leads;ops-admins", "admin"),
        ("ops-admins ops", "admin"),
    ],
)
def test_header_groups_map_to_the_highest_role(groups, role):
    headers = {"x-auth-request-user": "dana", "X-AUTH-REQUEST-GROUPS": groups}
    assert identity.identity_from_headers(headers, TEAM) == Identity("dana", role)


def test_header_mode_refuses_a_missing_user_or_an_unmapped_group():
    with pytest.raises(InputError, match="No X-Auth-Request-User header"):
        identity.identity_from_headers({"X-Forwarded-User": "mallory"}, TEAM)
    with pytest.raises(PolicyDenied, match="no role here"):
        identity.identity_from_headers(
            {"X-Auth-Request-User": "eve", "X-Auth-Request-Groups": "sales"}, TEAM
        )
    fallback = Settings(auth="header", auth_default_role="requester")
    assert identity.identity_from_headers({"X-Forwarded-User": "eve"}, fallback).role == "requester"


def test_oidc_claims_map_to_a_role():
    settings = Settings(auth="oidc", auth_role_map="ops-leads=approver")
    claims = {"email": "dana@example.com", "groups": ["staff", "ops-leads"], "sub": "123"}
    assert identity.identity_from_claims(claims, settings) == Identity(
        "dana@example.com", "approver"
    )
    roles = Settings(auth="oidc", oidc_role_claim="roles", auth_role_map="copilot-admin=admin")
    assert (
        identity.identity_from_claims({"email": "a@x", "roles": "copilot-admin"}, roles).role
        == "admin"
    )
    with pytest.raises(InputError, match="COPILOT_OIDC_NAME_CLAIM"):
        identity.identity_from_claims({"groups": ["ops-leads"]}, settings)
    with pytest.raises(PolicyDenied):
        identity.identity_from_claims({"email": "eve@x", "groups": ["staff"]}, settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COPILOT_AUTH": "ldap"}, "COPILOT_AUTH='ldap' is not known"),
        ({"COPILOT_AUTH_ROLE_MAP": "ops=root"}, "is not GROUP=ROLE"),
        ({"COPILOT_AUTH_DEFAULT_ROLE": "boss"}, "COPILOT_AUTH_DEFAULT_ROLE='boss'"),
    ],
)
def test_bad_auth_settings_are_refused_at_load(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.load(environ=env, dotenv=None)


def test_settings_read_the_auth_mode_from_the_environment():
    s = Settings.load(
        environ={"COPILOT_AUTH": "Header", "COPILOT_AUTH_ROLE_MAP": "a=admin"}, dotenv=None
    )
    assert (s.auth, identity.parse_role_map(s.auth_role_map)) == ("header", {"a": "admin"})
    assert Settings.load(environ={}, dotenv=None).auth == "local"  # safe by default


# --- the CLI -------------------------------------------------------------------------------


def cli(*argv: str, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdin=io.StringIO(stdin), stdout=out)
    return code, out.getvalue()


def test_resolve_cli_user(store, local):
    identity.add_user(store, "dana", "approver", PASSWORD, actor="admin")
    assert identity.resolve_cli_user(store, local, "dana") == Identity("dana", "approver")
    with pytest.raises(InputError, match="users add ghost"):
        identity.resolve_cli_user(store, local, "ghost")
    identity.add_user(store, "root", "admin", PASSWORD, actor="admin")
    identity.disable_user(store, "dana", actor="root")
    with pytest.raises(InputError, match="not a registered, enabled user"):
        identity.resolve_cli_user(store, local, "dana")
    dev = Settings(home=local.home, auth="none")
    assert identity.resolve_cli_user(store, dev, "anyone") == Identity("anyone", "admin")


def test_cli_users_commands(local, store, capsys):
    code, _ = cli("users", "list")  # COPILOT_USER defaults to 'analyst', not registered
    assert code == 2 and "users add analyst" in capsys.readouterr().err
    assert (local.home / identity.INITIAL_PASSWORD_FILE).exists()  # the first start

    code, out = cli(
        "--user",
        "admin",
        "users",
        "add",
        "dana",
        "--role",
        "approver",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0 and "added dana as approver" in out and PASSWORD not in out
    code, out = cli("users", "add", "bob", "--role", "requester", "--user", "admin")
    generated = out.split("password for bob: ")[1].split()[0]  # no terminal: one is generated
    assert identity.authenticate(store, "bob", generated).role == "requester"

    code, out = cli("users", "list", "--json", "--user", "admin")
    listed = {u["name"]: u for u in json.loads(out)}
    assert {n: u["role"] for n, u in listed.items()} == {
        "admin": "admin",
        "bob": "requester",
        "dana": "approver",
    }
    assert "password_hash" not in listed["dana"]

    code, out = cli(
        "users",
        "set-password",
        "dana",
        "--password-stdin",
        "--user",
        "admin",
        stdin="another long one\n",
    )
    assert code == 0 and identity.authenticate(store, "dana", "another long one")
    code, out = cli("users", "disable", "bob", "--user", "admin")
    assert code == 0 and "disabled bob" in out
    code, out = cli("users", "list", "--user", "admin")
    assert "bob" in out and "disabled" in out
    assert {"user_added", "password_set", "user_disabled"} <= set(actions(store))


def test_cli_roles_apply_to_the_named_user(local, store, capsys):
    identity.ensure_initial_admin(store, local.home, stderr=io.StringIO())
    identity.add_user(store, "bob", "requester", PASSWORD, actor="admin")
    code, _ = cli("users", "add", "eve", "--role", "admin", "--user", "bob", stdin=PASSWORD)
    assert code == 2 and "bob is a requester; managing users needs the admin role" in (
        capsys.readouterr().err
    )
    code, _ = cli("approve", "no-such-id", "--user", "bob")
    assert code == 2 and "approving needs the approver role" in capsys.readouterr().err
    code, _ = cli("prune", "--provider", "stub", "--user", "ghost")
    assert code == 2 and "'ghost' is not a registered, enabled user" in capsys.readouterr().err
    code, _ = cli(
        "--user",
        "admin",
        "users",
        "add",
        "eve",
        "--role",
        "requester",
        "--password-stdin",
        stdin="\n",
    )
    assert code == 2 and "read an empty line" in capsys.readouterr().err
    code, _ = cli(
        "--user",
        "admin",
        "users",
        "set-password",
        "admin",
        "--password-stdin",
        stdin="a long new admin password\n",
    )
    assert code == 0 and not (local.home / identity.INITIAL_PASSWORD_FILE).exists()


def test_cli_with_auth_none_accepts_any_name(tmp_path, monkeypatch):
    monkeypatch.setenv("COPILOT_AUTH", "none")
    monkeypatch.setenv("COPILOT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    code, out = cli("users", "add", "dana", "--role", "admin", "--user", "whoever")
    assert code == 0 and "added dana" in out
    assert not (tmp_path / "home" / identity.INITIAL_PASSWORD_FILE).exists()


def test_cli_users_as_a_real_process(tmp_path):
    home = tmp_path / "home"
    env = {
        **os.environ,
        "COPILOT_AUTH": "local",
        "COPILOT_HOME": str(home),
        "COPILOT_USER": "admin",
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "copilot",
            "users",
            "add",
            "dana",
            "--role",
            "approver",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    password = (home / identity.INITIAL_PASSWORD_FILE).read_text().strip()
    assert password in done.stderr and password not in done.stdout  # printed once, on stderr
    assert stat.S_IMODE((home / identity.INITIAL_PASSWORD_FILE).stat().st_mode) == 0o600
    listed = subprocess.run(
        [sys.executable, "-m", "copilot", "users", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert listed.returncode == 0 and password not in listed.stderr  # not printed again
    assert [u["name"] for u in json.loads(listed.stdout)] == ["admin", "dana"]


def test_cli_in_header_mode_still_needs_a_registered_user(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COPILOT_AUTH", "header")
    monkeypatch.setenv("COPILOT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    code, _ = cli("users", "list", "--user", "mallory")
    assert code == 2 and "not a registered, enabled user" in capsys.readouterr().err
    code, out = cli("users", "list", "--user", "admin")  # the first admin exists for the CLI
    assert code == 0 and out.startswith("admin")


def test_make_run_shows_the_first_admin_password_before_the_app_starts(
    settings, monkeypatch, capsys
):
    monkeypatch.setenv("COPILOT_AUTH", "local")
    monkeypatch.setenv("COPILOT_HOME", str(settings.home))
    monkeypatch.setenv("COPILOT_CORPUS", str(settings.corpus))
    monkeypatch.chdir(settings.home)
    code, out = cli("index")  # what `make run` runs before `streamlit run`
    password = (settings.home / identity.INITIAL_PASSWORD_FILE).read_text().strip()
    assert code == 0 and password in capsys.readouterr().err and password not in out
    code, _ = cli("index")
    assert code == 0 and password not in capsys.readouterr().err  # once


def test_role_lookup_for_the_run_engine(store, local):
    identity.add_user(store, "root", "admin", PASSWORD, actor="system")
    identity.add_user(store, "dana", "approver", PASSWORD, actor="root")
    role_of = identity.role_lookup(store, local)
    assert (role_of("dana"), role_of("root"), role_of("ghost")) == ("approver", "admin", "")
    identity.disable_user(store, "dana", actor="root")
    assert role_of("dana") == ""  # disabled: no role, so the policy denies
    assert identity.role_lookup(store, Settings(home=local.home, auth="none"))("x") == "admin"
