"""Who is acting: users, roles, passwords and the four ways to sign in.

Sign-in modes (COPILOT_AUTH):
* local   users in the governance store with argon2 password hashes (default)
* header  a single-sign-on proxy in front of the app sends the user and groups as headers
* oidc    Streamlit's own `st.login` against an OpenID Connect provider
* none    one local operator with the admin role, for development only

Roles are ordered: an approver may do everything a requester may, an admin everything an
approver may. The mapping functions here are pure (headers or claims in, Identity out) so the
modes that Streamlit's test harness cannot drive are tested directly.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from copilot.errors import InputError, NotFound, PolicyDenied
from copilot.store import Store, Transaction, utcnow

if TYPE_CHECKING:
    from copilot.config import Settings

ROLES = ("requester", "approver", "admin")
AUTH_MODES = ("local", "header", "oidc", "none")
MAX_FAILED_ATTEMPTS = 5
LOCKOUT = timedelta(minutes=15)
INITIAL_ADMIN = "admin"
INITIAL_PASSWORD_FILE = "initial_admin_password"
MIN_PASSWORD_CHARS = 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
# argon2-cffi's defaults (RFC 9106 low-memory profile): ~0.1-0.5 s per hash on 2 cores.
_hasher = PasswordHasher()
WRONG_CREDENTIALS = "Wrong user name or password."


@dataclass(frozen=True)
class Identity:
    name: str
    role: str

    def can(self, role: str) -> bool:
        """True when this identity's role is `role` or above it."""
        return ROLES.index(self.role) >= ROLES.index(role)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InputError(f"Unknown role {role!r}; use one of {', '.join(ROLES)}.")
    return role


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise InputError(
            f"User name {name!r} is not usable: use 1-64 letters, digits or . _ @ + - "
            "(starting with a letter or digit), e.g. dana or dana@example.com."
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InputError(
            f"The password is too short: use at least {MIN_PASSWORD_CHARS} characters "
            "(or leave it empty to have one generated)."
        )
    return password


def generate_password() -> str:
    return secrets.token_urlsafe(18)


# --- the users table -----------------------------------------------------------------------


def get_user(store: Store, name: str) -> dict[str, Any] | None:
    rows = store.query(
        "SELECT name, role, enabled, failed_attempts, locked_until, created_at FROM users "
        "WHERE name = ?",
        [name],
    )
    return rows[0] if rows else None


def list_users(store: Store) -> list[dict[str, Any]]:
    return store.query(
        "SELECT name, role, enabled, failed_attempts, locked_until, created_at FROM users "
        "ORDER BY name"
    )


def add_user(store: Store, name: str, role: str, password: str, *, actor: str) -> Identity:
    check_name(name)
    check_role(role)
    digest = _hasher.hash(check_password(password))
    with store.transaction() as tx:
        if _row(tx, name):
            raise InputError(
                f"User {name!r} already exists; change the password with "
                f"`python -m copilot users set-password {name}`."
            )
        _insert(tx, name, role, digest)
        tx.audit(actor=actor, action="user_added", reason=f"{actor} added {name} as {role}")
    return Identity(name, role)


def set_password(store: Store, name: str, password: str, *, actor: str) -> None:
    """New password; also lifts a lockout, which is how an admin unlocks an account."""
    digest = _hasher.hash(check_password(password))
    with store.transaction() as tx:
        _require(tx, name)
        tx.execute(
            "UPDATE users SET password_hash = ?, failed_attempts = 0, locked_until = NULL "
            "WHERE name = ?",
            [digest, name],
            redact=False,
        )
        tx.audit(actor=actor, action="password_set", reason=f"{actor} set {name}'s password")


def disable_user(store: Store, name: str, *, actor: str) -> None:
    with store.transaction() as tx:
        row = _require(tx, name)
        if row["role"] == "admin" and row["enabled"] and _enabled_admins(tx) <= 1:
            raise InputError(
                f"{name} is the last enabled admin; add another first with "
                "`python -m copilot users add NAME --role admin`."
            )
        tx.execute("UPDATE users SET enabled = FALSE WHERE name = ?", [name])
        tx.audit(actor=actor, action="user_disabled", reason=f"{actor} disabled {name}")


def active_identity(store: Store, name: str) -> Identity | None:
    """The user's current role, or None when unknown or disabled (checked on every page run,
    so disabling someone ends their session)."""
    row = get_user(store, name)
    return Identity(row["name"], row["role"]) if row and row["enabled"] else None


def _row(tx: Transaction, name: str) -> dict[str, Any] | None:
    return tx.one(
        "SELECT name, role, password_hash, enabled, failed_attempts, locked_until FROM users "
        "WHERE name = ?",
        [name],
    )


def _require(tx: Transaction, name: str) -> dict[str, Any]:
    row = _row(tx, name)
    if row is None:
        raise NotFound(
            f"No user {name!r}; see `python -m copilot users list` or add one with "
            f"`python -m copilot users add {name} --role requester`."
        )
    return row


def _insert(tx: Transaction, name: str, role: str, digest: str) -> None:
    # Not redacted: Transaction.insert redacts strings, and an argon2 hash is meant to be
    # stored as it is.
    tx.execute(
        "INSERT INTO users (name, role, password_hash, enabled, failed_attempts, created_at) "
        "VALUES (?, ?, ?, TRUE, 0, ?)",
        [name, role, digest, utcnow()],
        redact=False,
    )


def _enabled_admins(tx: Transaction) -> int:
    return int(tx.value("SELECT count(*) FROM users WHERE role = 'admin' AND enabled") or 0)


# --- local sign-in -------------------------------------------------------------------------


def authenticate(store: Store, name: str, password: str) -> Identity:
    """Check a password; 5 wrong ones in a row lock the account for 15 minutes. Every outcome
    is audited. The hash is verified outside the write transaction (it takes ~0.1-0.5 s and
    the DB file is shared), and the lock is checked again inside it."""
    name = (name or "").strip()
    row = _lookup(store, name) if name else None
    digest = str(row["password_hash"]) if row else _dummy_hash()
    now = utcnow()
    if row and _locked(row, now):
        _refuse(store, name, "signin_refused", f"{name} is locked until {row['locked_until']}")
        raise InputError(_locked_message(row["locked_until"]))
    if not _verify(digest, password) or row is None:
        _record_failure(store, name if row else None, now)
        raise InputError(WRONG_CREDENTIALS)
    if not row["enabled"]:
        _refuse(store, name, "signin_refused", f"{name} is disabled")
        raise InputError(f"The account {name!r} is disabled; ask an admin to enable it.")
    return _record_success(store, name, password, digest, now)


def _lookup(store: Store, name: str) -> dict[str, Any] | None:
    rows = store.query(
        "SELECT name, role, password_hash, enabled, locked_until FROM users WHERE name = ?",
        [name],
    )
    return rows[0] if rows else None


@cache
def _dummy_hash() -> str:
    """Verified when the name is unknown, so a wrong name costs as long as a wrong password
    and the timing does not tell which names exist."""
    return _hasher.hash(secrets.token_urlsafe(16))


def _verify(digest: str, password: str) -> bool:
    try:
        return _hasher.verify(digest, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _locked(row: Mapping[str, Any], now: datetime) -> bool:
    return row["locked_until"] is not None and row["locked_until"] > now


def _locked_message(until: datetime) -> str:
    return (
        f"Too many failed sign-ins: this account is locked until {until:%H:%M} UTC. Try again "
        "then, or ask an admin to reset it with `python -m copilot users set-password NAME`."
    )


def _refuse(store: Store, name: str, action: str, reason: str) -> None:
    with store.transaction() as tx:
        tx.audit(actor=name, action=action, reason=reason)


def _record_failure(store: Store, name: str | None, now: datetime) -> None:
    with store.transaction() as tx:
        if name is None:  # unknown names are audited without echoing what was typed
            tx.audit(actor="unknown", action="signin_failed", reason="unknown user name")
            return
        tx.execute("UPDATE users SET failed_attempts = failed_attempts + 1 WHERE name = ?", [name])
        row = _require(tx, name)
        attempts = int(row["failed_attempts"])
        tx.audit(
            actor=name,
            action="signin_failed",
            reason=f"wrong password for {name} ({attempts} of {MAX_FAILED_ATTEMPTS})",
            detail={"attempts": attempts},
        )
        if attempts >= MAX_FAILED_ATTEMPTS:
            # Counting starts again after the lockout: five more tries, then another lock.
            until = now + LOCKOUT
            tx.execute(
                "UPDATE users SET failed_attempts = 0, locked_until = ? WHERE name = ?",
                [until, name],
            )
            tx.audit(
                actor=name,
                action="account_locked",
                reason=f"{name} locked until {until:%Y-%m-%d %H:%M} UTC after "
                f"{attempts} failed sign-ins",
            )


def _record_success(store: Store, name: str, password: str, digest: str, now: datetime) -> Identity:
    fresh = _hasher.hash(password) if _hasher.check_needs_rehash(digest) else None
    with store.transaction() as tx:
        row = _require(tx, name)
        if _locked(row, now):  # locked by a parallel wrong guess since we read the row
            raise InputError(_locked_message(row["locked_until"]))
        tx.execute(
            "UPDATE users SET failed_attempts = 0, locked_until = NULL,"
            " password_hash = coalesce(?, password_hash) WHERE name = ?",
            [fresh, name],
            redact=False,
        )
        tx.audit(actor=name, action="signin", reason=f"{name} signed in")
    return Identity(name, str(row["role"]))


def record_signout(store: Store, name: str) -> None:
    with store.transaction() as tx:
        tx.audit(actor=name, action="signout", reason=f"{name} signed out")


# --- first start ---------------------------------------------------------------------------


def ensure_initial_admin(store: Store, home: Path, stderr: TextIO | None = None) -> str | None:
    """On the first start with no users, create `admin` with a random password, write it to
    $COPILOT_HOME/initial_admin_password (0600) and print it once. Returns the password when
    this call created the user; None when users already existed."""
    if store.query("SELECT count(*) AS n FROM users")[0]["n"]:
        return None  # the usual case, without paying for a hash
    password = generate_password()
    digest = _hasher.hash(password)
    path = home / INITIAL_PASSWORD_FILE
    with store.transaction() as tx:  # counted again: another process may have just made it
        tx.lock("users")  # replicas starting together create one admin, not a key clash
        if tx.value("SELECT count(*) FROM users"):
            return None
        _insert(tx, INITIAL_ADMIN, "admin", digest)
        tx.audit(actor="system", action="user_added", reason="initial admin created")
        # Written inside the transaction: if the file cannot be written, no admin is created
        # whose password nobody knows.
        write_private(path, password + "\n")
    print(
        f"Ops Copilot: created the user '{INITIAL_ADMIN}' with the password {password}\n"
        f"  (also in {path}, readable only by you). Sign in, then add users with "
        "`python -m copilot users add NAME --role ...` and change this password with "
        f"`python -m copilot --user admin users set-password {INITIAL_ADMIN}`.",
        file=stderr or sys.stderr,
        flush=True,
    )
    return password


def forget_initial_password(home: Path, name: str) -> None:
    """Once the first admin's password is changed, the generated one must not stay on disk."""
    if name == INITIAL_ADMIN:
        (home / INITIAL_PASSWORD_FILE).unlink(missing_ok=True)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600), replacing any older one atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply when the file already existed
    os.replace(tmp, path)


# --- header and OIDC mapping (pure) ---------------------------------------------------------


def parse_role_map(text: str, setting: str = "COPILOT_AUTH_ROLE_MAP") -> dict[str, str]:
    """'ops-admins=admin, ops=requester' -> {'ops-admins': 'admin', 'ops': 'requester'}."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        group, sep, role = item.rpartition("=")
        if not sep or not group.strip() or role.strip() not in ROLES:
            raise InputError(
                f"{setting}: {item!r} is not GROUP=ROLE with ROLE one of {', '.join(ROLES)}; "
                "e.g. ops-admins=admin,ops-leads=approver,ops=requester."
            )
        mapping[group.strip()] = role.strip()
    return mapping


def role_for_groups(
    groups: Iterable[str], role_map: Mapping[str, str], default_role: str = ""
) -> str | None:
    """The highest role any of the groups maps to; `default_role` (or None) when none does."""
    roles = [role_map[g] for g in groups if g in role_map]
    if roles:
        return max(roles, key=ROLES.index)
    return default_role or None


def split_groups(value: str | Iterable[str] | None) -> list[str]:
    """Groups from a header ('a, b' or 'a;b' or 'a b') or a claim (a list or a string)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [g for g in re.split(r"[,;\s]+", value) if g]
    return [str(g) for g in value]


def identity_from_headers(headers: Mapping[str, str], settings: Settings) -> Identity:
    """Header mode: who the single-sign-on proxy says is calling. Trusted only because
    COPILOT_AUTH=header says a proxy is the only way in."""
    lowered = {k.lower(): v for k, v in headers.items()}
    name = (lowered.get(settings.auth_user_header.lower()) or "").strip()
    if not name:
        raise InputError(
            f"No {settings.auth_user_header} header on this request: COPILOT_AUTH=header "
            "expects a single-sign-on proxy in front of the app that sets it."
        )
    groups = split_groups(lowered.get(settings.auth_groups_header.lower()))
    return _mapped(name, groups, settings, f"groups {groups or 'none'}")


def identity_from_claims(claims: Mapping[str, Any], settings: Settings) -> Identity:
    """OIDC mode: the signed-in user's name and role from the ID token's claims."""
    name = str(claims.get(settings.oidc_name_claim) or "").strip()
    if not name:
        raise InputError(
            f"The identity provider sent no {settings.oidc_name_claim!r} claim; set "
            "COPILOT_OIDC_NAME_CLAIM to one it sends (e.g. email or preferred_username)."
        )
    groups = split_groups(claims.get(settings.oidc_role_claim))
    return _mapped(name, groups, settings, f"claim {settings.oidc_role_claim}={groups or 'none'}")


def _mapped(name: str, groups: list[str], settings: Settings, where: str) -> Identity:
    role_map = parse_role_map(settings.auth_role_map)
    role = role_for_groups(groups, role_map, settings.auth_default_role)
    if role is None:
        raise PolicyDenied(
            f"{name} is signed in but has no role here ({where} match nothing in "
            "COPILOT_AUTH_ROLE_MAP); ask an admin to map one of your groups to a role."
        )
    return Identity(name, role)


# --- the CLI's named user ------------------------------------------------------------------


def resolve_cli_user(store: Store, settings: Settings, name: str | None) -> Identity:
    """The CLI acts as `--user NAME` (default COPILOT_USER), which must be a registered,
    enabled user; with COPILOT_AUTH=none any name is accepted as an admin."""
    name = (name or settings.user or "").strip()
    if settings.auth == "none":
        return Identity(name or "operator", "admin")
    found = active_identity(store, name) if name else None
    if found is None:
        raise InputError(
            f"{name or 'No user'!r} is not a registered, enabled user. Pass --user NAME (or "
            "set COPILOT_USER) with a registered user, or have an admin register it: "
            f"`python -m copilot --user admin users add {name or 'NAME'} --role requester`."
        )
    return found


def role_lookup(store: Store, settings: Settings) -> Callable[[str], str]:
    """For the run engine (`RunContext.role_of`): the role a name acts in. With
    COPILOT_AUTH=none everyone is the admin; otherwise a registered, enabled user's role, or ""
    (no role, so the policy denies) for anyone else. Pages and the CLI pass the signed-in
    role explicitly; this answers for names that arrive without one."""
    if settings.auth == "none":
        return lambda _name: "admin"

    def role_of(name: str) -> str:
        found = active_identity(store, name)
        return found.role if found else ""

    return role_of


def require(identity: Identity, role: str, doing: str) -> None:
    if not identity.can(role):
        raise PolicyDenied(
            f"{identity.name} is a {identity.role}; {doing} needs the {role} role or above. "
            "Ask an admin to change it, or act as another user."
        )
