"""Deterministic, targeted edits for the common runbook actions, driven by the task text.

"raise the memory limit of checkout to 1Gi", "scale payments to 6 replicas", "raise the
maxReplicas of search to 30", "set the checkout payments client timeout to 5s", "disable the
new-search flag". The service comes
from the task and from the services the repository has (`infra/k8s/<service>/`), never from
a runbook's example path. Edits change one line (or one JSON value) so the diff shows exactly
what was asked; when the file or the field is missing the result says so (`EditNote`).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from typing import Protocol

from copilot.names import find_service


class Files(Protocol):
    """Where files are read from: the live GitHub repository or the sandbox repository."""

    def list_dir(self, path: str) -> list[str]: ...

    def read_text(self, path: str) -> str | None: ...


@dataclass(frozen=True)
class Intent:
    kind: str  # memory_limit, memory_request, cpu_limit, cpu_request, replicas, timeout, flag
    service: str | None
    value: str | None  # as the task said it: "1Gi", "6", "5s", "off"
    flag: str | None = None
    raise_: bool = True  # "raise", "scale up" without a value: +50 %


@dataclass(frozen=True)
class Edit:
    path: str
    before: str
    after: str
    summary: str

    @property
    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"a/{self.path}",
                tofile=f"b/{self.path}",
            )
        )


@dataclass(frozen=True)
class EditNote:
    """Why no edit was made; the step reports it instead of inventing a path."""

    note: str


K8S_DIR = "infra/k8s"
FLAG_DIR = "flags"
CONFIG_DIR = "config"
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*(gi|mi|gb|mb|g|m)\b", re.IGNORECASE)
_DURATION = re.compile(
    r"(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?)\b", re.IGNORECASE
)


def parse_intent(task: str, services: list[str]) -> Intent | None:
    """What the task asks to change, or None when it asks for none of the known edits."""
    text = task.lower()
    service = find_service(text, services)
    if re.search(r"\bflag\b|kill[- ]switch", text):
        enable = bool(re.search(r"\b(enable|turn on|switch on|re-enable)\b", text))
        return Intent("flag", service, "on" if enable else "off", flag=_flag_name(text))
    lower = bool(re.search(r"\b(lower|reduce|decrease|shrink|scale down)\b", text))
    if re.search(r"\bmemory\b|\bmem\b|oom", text):
        kind = "memory_request" if _only_requests(text) else "memory_limit"
        return Intent(kind, service, _after_to(text, _MEMORY), raise_=not lower)
    if re.search(r"\bcpu\b", text) and re.search(r"\blimits?\b|\brequests?\b|\braise\b", text):
        kind = "cpu_request" if _only_requests(text) else "cpu_limit"
        value = _after_to(text, re.compile(r"(\d+(?:\.\d+)?)\s*(m\b|cores?|cpus?)?"))
        return Intent(kind, service, value, raise_=not lower)
    bound = re.search(r"\b(max|min)(?:imum)?[ -]?replicas\b", text)
    if bound:  # the HPA's bounds: "raise maxReplicas of search to 30"
        number = re.search(r"\bto\s+(\d+)\b", text)
        kind = f"hpa_{bound.group(1)}"
        return Intent(kind, service, number.group(1) if number else None, raise_=not lower)
    if re.search(r"\bscale\b|\breplicas?\b", text):
        number = re.search(r"(\d+)\s+(?:replicas|pods|instances)", text) or re.search(
            r"\bto\s+(\d+)\b", text
        )
        return Intent("replicas", service, number.group(1) if number else None, raise_=not lower)
    if "timeout" in text or "time out" in text:
        return Intent("timeout", service, _after_to(text, _DURATION), raise_=not lower)
    return None


def _flag_name(text: str) -> str | None:
    for pattern in (
        r"\bflags?\s+[`'\"]?([a-z0-9][\w.-]*[a-z0-9])",
        r"[`'\"]?([a-z0-9][\w.-]*[a-z0-9])[`'\"]?\s+(?:feature\s+)?(?:flag|kill[- ]switch)",
    ):
        match = re.search(pattern, text)
        if match and match.group(1) not in {"the", "a", "feature", "this", "that"}:
            return match.group(1)
    return None


def _only_requests(text: str) -> bool:
    return bool(re.search(r"\brequests?\b", text)) and not re.search(r"\blimits?\b", text)


def _after_to(text: str, pattern: re.Pattern[str]) -> str | None:
    """The quantity after 'to' ("raise ... to 1Gi"), else the first quantity in the task."""
    match = re.search(r"\bto\s+" + pattern.pattern, text, re.IGNORECASE)
    match = match or re.search(r"\b" + pattern.pattern, text, re.IGNORECASE)
    return match.group(0).removeprefix("to").strip() if match else None


# Finding the file -----------------------------------------------------------------------
def plan_edit(task: str, files: Files) -> Edit | EditNote:
    services = [s for s in files.list_dir(K8S_DIR) if "." not in s]
    intent = parse_intent(task, services)
    if intent is None:
        return EditNote(
            "The task asks for none of the changes made offline (memory or CPU limit, "
            "replicas, timeout, feature flag); say which file and value to change."
        )
    if intent.kind == "flag":
        return _edit_flag(intent, files)
    if intent.service is None:
        known = ", ".join(services) or "none"
        return EditNote(
            f"The task names no service this repository has (known: {known}); "
            "name the service to change."
        )
    if intent.kind == "timeout":
        return _edit_timeout(intent, task, files)
    manifest = "hpa.yaml" if intent.kind.startswith("hpa_") else "deployment.yaml"
    path = f"{K8S_DIR}/{intent.service}/{manifest}"
    before = files.read_text(path)
    if before is None:
        return EditNote(f"{path} does not exist, so there is no manifest to change.")
    edit = _edit_manifest(intent, before)
    return (
        Edit(path, before, edit[0], edit[1])
        if isinstance(edit, tuple)
        else EditNote(f"{path}: {edit}")
    )


def _edit_manifest(intent: Intent, text: str) -> tuple[str, str] | str:
    if intent.kind == "replicas":
        return _replace_count(intent, text, "replicas")
    if intent.kind.startswith("hpa_"):
        return _replace_count(intent, text, f"{intent.kind[4:]}Replicas")
    resource, block = intent.kind.split("_")
    block += "s"  # limits, requests
    lines = text.splitlines(keepends=True)
    index = _field_in_block(lines, block, resource)
    if index is None:
        return f"no resources.{block}.{resource} field to change"
    indent, current = re.match(r"^(\s*)\S+:\s*(\S+)", lines[index]).groups()  # type: ignore[union-attr]
    new = _new_quantity(resource, current, intent)
    if isinstance(new, EditNote):
        return new.note
    if new == current:
        return f"resources.{block}.{resource} is already {current}"
    lines[index] = f"{indent}{resource}: {new}\n"
    return "".join(lines), f"{intent.service}: resources.{block}.{resource} {current} -> {new}"


def _field_in_block(lines: list[str], block: str, name: str) -> int | None:
    """Line index of `name:` inside the first `block:` mapping (indentation-aware)."""
    for i, line in enumerate(lines):
        head = re.match(rf"^(\s*){block}:\s*$", line)
        if not head:
            continue
        depth = len(head.group(1))
        for j in range(i + 1, len(lines)):
            inner = re.match(r"^(\s*)(\S+):", lines[j])
            if not inner or len(inner.group(1)) <= depth:
                break
            if inner.group(2) == name:
                return j
    return None


def _replace_count(intent: Intent, text: str, name: str) -> tuple[str, str] | str:
    """spec.replicas, spec.minReplicas or spec.maxReplicas: one integer line."""
    match = re.search(rf"(?m)^(\s*){name}:\s*(\d+)\s*$", text)
    if not match:
        return f"no spec.{name} field to change"
    current = int(match.group(2))
    if intent.value:
        new = int(intent.value)
    else:
        new = math.ceil(current * 1.5) if intent.raise_ else max(1, current // 2)
    if new == current:
        return f"spec.{name} is already {current}"
    after = text[: match.start()] + f"{match.group(1)}{name}: {new}" + text[match.end(2) :]
    return after, f"{intent.service}: spec.{name} {current} -> {new}"


# Quantities -----------------------------------------------------------------------------
def _new_quantity(resource: str, current: str, intent: Intent) -> str | EditNote:
    if resource == "memory":
        now = _mebibytes(current)
        if intent.value:
            wanted = _mebibytes(intent.value)
        else:
            wanted = _round_up(now * (1.5 if intent.raise_ else 0.5), 64)
        return _format_memory(wanted) if wanted else EditNote(f"cannot read {current!r}")
    now_m = _millicores(current)
    wanted_m = (
        _millicores(intent.value) if intent.value else now_m * (1.5 if intent.raise_ else 0.5)
    )
    return _format_cpu(wanted_m)


def _mebibytes(value: str) -> float:
    match = _MEMORY.search(value)
    if not match:
        return 0.0
    number, unit = float(match.group(1)), match.group(2).lower()
    return number * (1024 if unit in ("gi", "g", "gb") else 1)


def _format_memory(mib: float) -> str:
    return f"{int(mib // 1024)}Gi" if mib % 1024 == 0 else f"{int(mib)}Mi"


def _round_up(value: float, step: int) -> float:
    return float(math.ceil(value / step) * step)


def _millicores(value: str) -> float:
    match = re.match(r"\s*(\d+(?:\.\d+)?)\s*(m?)", value)
    if not match:
        return 0.0
    number = float(match.group(1))
    return number if match.group(2) == "m" else number * 1000


def _format_cpu(millicores: float) -> str:
    value = math.ceil(millicores)
    return str(value // 1000) if value % 1000 == 0 else f"{value}m"


# Timeouts in TOML / INI / YAML config ----------------------------------------------------
def _edit_timeout(intent: Intent, task: str, files: Files) -> Edit | EditNote:
    candidates = [f"{CONFIG_DIR}/{intent.service}.{ext}" for ext in ("toml", "ini", "yaml", "yml")]
    for path in candidates:
        before = files.read_text(path)
        if before is None:
            continue
        if not intent.value:
            return EditNote(f"{path}: say the new timeout, e.g. 'to 5s'.")
        changed = _replace_timeout(before, task, intent.value)
        if isinstance(changed, str):
            return EditNote(f"{path}: {changed}")
        after, field, old, new = changed
        return Edit(path, before, after, f"{intent.service}: {field} {old} -> {new}")
    return EditNote(f"No config file for {intent.service} ({', '.join(candidates)}).")


def _replace_timeout(text: str, task: str, value: str) -> tuple[str, str, str, str] | str:
    lines = text.splitlines(keepends=True)
    section, found = "", []
    for i, line in enumerate(lines):
        head = re.match(r"^\s*\[([^\]]+)\]", line)
        section = head.group(1) if head else section
        field = re.match(r"^(\s*)([\w.-]*timeout[\w.-]*)(\s*[=:]\s*)(\S+?)\s*$", line)
        if field:
            found.append((i, section, field))
    if not found:
        return "no timeout setting to change"
    words = set(re.findall(r"[a-z]+", task.lower()))
    # The setting whose section and name share most words with the task ("payments client").
    i, section, field = max(found, key=lambda f: len(words & _parts(f[1] + "_" + f[2].group(2))))
    old = field.group(4)
    new = _format_duration(field.group(2), old, _seconds(value))
    name = f"{section}.{field.group(2)}" if section else field.group(2)
    if new == old:
        return f"{name} is already {old}"
    lines[i] = f"{field.group(1)}{field.group(2)}{field.group(3)}{new}\n"
    return "".join(lines), name, old, new


def _parts(name: str) -> set[str]:
    return set(re.findall(r"[a-z]+", name.lower())) - {"timeout", "ms", "s"}


def _seconds(value: str) -> float:
    match = _DURATION.search(value)
    if not match:
        return float(re.sub(r"[^\d.]", "", value) or 0)
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit.startswith("ms") or unit.startswith("milli"):
        return number / 1000
    return number * 60 if unit.startswith("m") else number


def _format_duration(key: str, old: str, seconds: float) -> str:
    """The new value in the unit the setting already uses (timeout_ms, "30s", bare seconds)."""
    quoted = old[0] if old[:1] in "\"'" else ""
    bare = old.strip("\"'")
    if key.endswith("_ms") or bare.endswith("ms"):
        number = f"{round(seconds * 1000)}"
        return f"{quoted}{number}ms{quoted}" if bare.endswith("ms") else number
    number = f"{seconds:g}"
    return f"{quoted}{number}s{quoted}" if bare.endswith("s") else number


# Feature flags in YAML / JSON -------------------------------------------------------------
def _edit_flag(intent: Intent, files: Files) -> Edit | EditNote:
    if not intent.flag:
        return EditNote(
            "The task names no flag; say which one, e.g. 'disable the new-search flag'."
        )
    enabled = intent.value == "on"
    names = sorted(n for n in files.list_dir(FLAG_DIR) if n.endswith((".yaml", ".yml", ".json")))
    for name in names:
        path = f"{FLAG_DIR}/{name}"
        before = files.read_text(path) or ""
        result = (_flip_json if name.endswith(".json") else _flip_yaml)(
            before, intent.flag, intent.service, enabled
        )
        if result is None:
            continue
        if isinstance(result, str):
            return EditNote(f"{path}: {result}")
        after, flag = result
        state = "on" if enabled else "off"
        return Edit(path, before, after, f"flag {flag} turned {state}")
    return EditNote(
        f"No flag named {intent.flag!r} in {FLAG_DIR}/ ({', '.join(names) or 'empty'})."
    )


def _pick_flag(names: list[str], wanted: str, service: str | None) -> str | None:
    exact = [n for n in names if n == wanted]
    suffix = [n for n in names if n.endswith("." + wanted)]
    if service:  # "disable checkout's new-search flag" picks checkout.new-search
        suffix = [n for n in suffix if n.startswith(service + ".")] or suffix
    found = exact or suffix
    return found[0] if found else None


def _flip_yaml(
    text: str, wanted: str, service: str | None, enabled: bool
) -> tuple[str, str] | str | None:
    lines = text.splitlines(keepends=True)
    heads = {
        m.group(2): i
        for i, line in enumerate(lines)
        if (m := re.match(r"^(\s*)['\"]?([\w.-]+)['\"]?:\s*$", line))
    }
    flag = _pick_flag(list(heads), wanted, service)
    if flag is None:
        return None
    depth = len(lines[heads[flag]]) - len(lines[heads[flag]].lstrip())
    for j in range(heads[flag] + 1, len(lines)):
        inner = re.match(r"^(\s*)enabled:\s*(\S+)", lines[j])
        indent = len(lines[j]) - len(lines[j].lstrip())
        if lines[j].strip() and indent <= depth:
            break
        if inner:
            if (inner.group(2).lower() == "true") == enabled:
                return f"flag {flag} is already {'on' if enabled else 'off'}"
            lines[j] = f"{inner.group(1)}enabled: {str(enabled).lower()}\n"
            return "".join(lines), flag
    return f"flag {flag} has no `enabled` field"


def _flip_json(
    text: str, wanted: str, service: str | None, enabled: bool
) -> tuple[str, str] | str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    table = data.get("flags", data) if isinstance(data, dict) else {}
    flag = _pick_flag(list(table), wanted, service)
    if flag is None:
        return None
    if bool(table[flag].get("enabled")) == enabled:
        return f"flag {flag} is already {'on' if enabled else 'off'}"
    table[flag]["enabled"] = enabled
    return json.dumps(data, indent=2) + "\n", flag
