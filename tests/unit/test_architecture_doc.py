"""docs/architecture.md names only what exists: every ``Class.member`` and ``module.function``
reference in it resolves in the runwire package.

What is checked, and how:

- **Where names are found.** Every inline code span (text between backticks) outside fenced blocks,
  and every dotted word inside fenced blocks (the message-flow diagram, the layer list). A call's
  arguments are dropped first (``Store.open(url, migrate=…)`` is ``Store.open``); a span that is
  not then a dotted name of identifiers (``docs/protocol.md``, ``[tool.importlinter]``) is prose.
- **File names are not checked**: a name ending in ``.py``, ``.md``, ``.json``, ``.key`` or
  ``.toml`` is a file, not an attribute (``app.py``, ``pricing.json``).
- **A name whose first part is CamelCase** (``RunExecutor.start``, ``_QueueOutlet.write``: a
  leading underscore does not count) names a class (or function)
  defined at the top level of a runwire module, found by reading the source. There is no outside
  exception: a ``Foo.bar`` whose ``Foo`` runwire does not define fails, which is how a renamed or
  removed class (``Connection._read_loop``) is caught. When several runwire modules define the
  name (``RunState``), the member must exist on one of them.
- **A name whose first part is lowercase** is a module path when that part is ``runwire`` or one
  of runwire's own top-level modules or packages (``app.build_bus``, ``domain.run_status.RunState``,
  ``runwire.bus.memory``): each part must import as a module or be an attribute of what came
  before. Any other lowercase root is outside runwire and not checked: another library
  (``asyncio.timeout``), a variable in a sketch (``journal.emit``), a table's column
  (``run_events.last_seq``).
- **A member of a class** exists when the class (or a base) has it as an attribute, as a
  dataclass or pydantic field, as an annotation, or assigns it in its own source as
  ``self.<member>`` (an instance attribute, like ``RunExecutor._active``). Parts after an instance
  attribute are not checked (nothing holds them until an instance exists).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "src" / "runwire"

FILE_SUFFIXES = (".py", ".md", ".json", ".key", ".toml")
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
IN_FENCE = re.compile(r"(?<![\w./])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def references(text: str) -> list[str]:
    """The dotted names of ``text`` (markdown), by the rules of the module docstring."""
    found: list[str] = []
    prose: list[str] = []
    fenced: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            continue
        (fenced if inside else prose).append(line)
    for span in re.findall(r"`([^`\n]+)`", "\n".join(prose)):
        name = span.split("(", 1)[0].strip()
        if DOTTED.fullmatch(name):
            found.append(name)
    found += IN_FENCE.findall("\n".join(fenced))
    return [name for name in found if not name.endswith(FILE_SUFFIXES)]


# A top-level class or function is a line that starts with its keyword: read so, the package's
# definitions are the very ones its AST gives (the same mapping, checked when this was written),
# in a fifteenth of the time (ast.parse of every module was 0.2 s, most of this file's time). A
# docstring line that happened to start with "class " would add a module that does not define the
# name, and looking it up there would fail loudly, not pass. Read once for both tests.
TOP_LEVEL = re.compile(r"^(?:async def|def|class)\s+(\w+)", re.MULTILINE)


@functools.cache
def top_level_definitions() -> dict[str, list[str]]:
    """Each name a runwire module defines at its top level (class or function) and the modules
    that define it, read from the source (nothing imported)."""
    defined: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for name in TOP_LEVEL.findall(path.read_text(encoding="utf-8")):
            defined.setdefault(name, []).append(module)
    return defined


def own_modules() -> set[str]:
    """runwire's top-level modules and packages: the lowercase roots that are checked."""
    return {
        p.stem if p.suffix == ".py" else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }


def has_member(cls: type, member: str) -> bool:
    """``member`` exists on instances of ``cls`` (the rules of the module docstring)."""
    if hasattr(cls, member):
        return True
    for klass in cls.__mro__:
        if member in getattr(klass, "__annotations__", {}):
            return True
        if dataclasses.is_dataclass(klass) and member in {
            f.name for f in dataclasses.fields(klass)
        }:
            return True
        if member in getattr(klass, "model_fields", {}):
            return True
        if not klass.__module__.startswith("runwire"):
            continue
        source = inspect.getsource(klass)
        if re.search(rf"\bself\.{re.escape(member)}\s*(?::[^=\n]+)?=(?!=)", source):
            return True
    return False


def follow(start: Any, parts: list[str]) -> str | None:
    """Walk ``parts`` from ``start``; None when every part exists, else what is missing."""
    current = start
    for index, part in enumerate(parts):
        if isinstance(current, ModuleType):
            try:
                current = importlib.import_module(f"{current.__name__}.{part}")
                continue
            except ModuleNotFoundError:
                if not hasattr(current, part):
                    return f"{current.__name__} has no {part}"
                current = getattr(current, part)
                continue
        if isinstance(current, type) and not hasattr(current, part):
            if has_member(current, part):
                return None  # an instance attribute: nothing further to walk
            return f"{current.__qualname__} has no {part}"
        if not hasattr(current, part):
            return f"{'.'.join(parts[:index])} has no {part}"
        current = getattr(current, part)
    return None


def problem(name: str, defined: dict[str, list[str]], modules: set[str]) -> str | None:
    """Why ``name`` does not resolve in runwire, or None when it does (or is not checked)."""
    root, *rest = name.split(".")
    if root.lstrip("_")[:1].isupper():
        if root not in defined:
            return f"runwire defines no {root}"
        misses = []
        for module in defined[root]:
            miss = follow(getattr(importlib.import_module(module), root), rest)
            if miss is None:
                return None
            misses.append(miss)
        return "; ".join(misses)
    if root == "runwire":
        return follow(importlib.import_module("runwire"), rest)
    if root in modules:
        return follow(importlib.import_module("runwire"), [root, *rest])
    return None


def test_the_rules_catch_what_they_are_for() -> None:
    defined, modules = top_level_definitions(), own_modules()
    text = (
        "`Connection._read_loop`, `RunExecutor.nothing(x)`, `app.state.services`, `runs.nope`\n"
        "```\nRunJournal.absent ─▶ journal.emit\n```\n"
        "`RunExecutor._active`, `RunExecutor.start`, `Settings.host`, `domain.run_status.RunState`,"
        " `asyncio.timeout`, `app.py`, `docs/protocol.md`, `Accepted.duplicate`"
    )
    found = references(text)
    assert found == [
        "Connection._read_loop",
        "RunExecutor.nothing",
        "app.state.services",
        "runs.nope",
        "RunExecutor._active",
        "RunExecutor.start",
        "Settings.host",
        "domain.run_status.RunState",
        "asyncio.timeout",
        "Accepted.duplicate",
        "RunJournal.absent",
        "journal.emit",
    ]
    failing = [name for name in found if problem(name, defined, modules)]
    assert failing == [
        "Connection._read_loop",
        "RunExecutor.nothing",
        "app.state.services",
        "runs.nope",
        "RunJournal.absent",
    ]


def test_every_name_in_the_architecture_doc_exists() -> None:
    defined, modules = top_level_definitions(), own_modules()
    names = references(DOC.read_text(encoding="utf-8"))
    assert len(names) > 100  # the doc is read, not skipped
    wrong = {name: why for name in names if (why := problem(name, defined, modules))}
    if wrong:
        pytest.fail(
            "docs/architecture.md names what does not exist:\n"
            + "\n".join(f"  {name}: {why}" for name, why in sorted(wrong.items()))
        )
