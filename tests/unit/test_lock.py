"""uv.lock is what `make` installs: it must be the resolution of pyproject.toml, with hashes.

`uv sync --locked` (make's install step) refuses a stale lock too; this says why at once, in the
unit layer, naming each requirement that differs (`make lock` rewrites the lock).
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
Key = tuple[str, tuple[str, ...], str, str]


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# uv.lock is a large TOML file: read once for all the tests here (none changes what it got).
@functools.cache
def _lock() -> dict[str, Any]:
    return tomllib.loads((ROOT / "uv.lock").read_text())


def _declared() -> set[Key]:
    project = _pyproject()["project"]
    found = set()
    groups = [("", project["dependencies"]), *project["optional-dependencies"].items()]
    for extra, requirements in groups:
        for text in requirements:
            req = Requirement(text)
            marker = f"extra == '{extra}'" if extra else ""
            found.add(_key(req.name, sorted(req.extras), str(req.specifier), marker))
    return found


def _key(name: str, extras: list[str], specifier: str, marker: str) -> Key:
    ordered = ",".join(sorted(specifier.split(","))) if specifier else ""
    return (canonicalize_name(name), tuple(extras), ordered, marker)


def _locked_project() -> dict[str, Any]:
    return next(p for p in _lock()["package"] if p["name"] == "runwire")


def test_the_lock_was_made_from_this_pyproject() -> None:
    locked = {
        _key(r["name"], sorted(r.get("extras", [])), r.get("specifier", ""), r.get("marker", ""))
        for r in _locked_project()["metadata"]["requires-dist"]
    }
    declared = _declared()
    assert declared - locked == set(), "in pyproject.toml, not in uv.lock: run `make lock`"
    assert locked - declared == set(), "in uv.lock, not in pyproject.toml: run `make lock`"
    assert _lock()["requires-python"] == _pyproject()["project"]["requires-python"]


def test_every_locked_package_has_a_hash_and_meets_its_floor() -> None:
    floors = {
        canonicalize_name(req.name): req.specifier
        for text in _pyproject()["project"]["dependencies"]
        for req in [Requirement(text)]
    }
    for package in _lock()["package"]:
        if package["source"].get("editable"):
            continue  # runwire itself
        files = package.get("wheels", []) + ([package["sdist"]] if "sdist" in package else [])
        assert files, f"{package['name']} has no file in the lock"
        for file in files:
            assert file["hash"].startswith("sha256:"), package["name"]
        floor = floors.get(canonicalize_name(package["name"]))
        if floor is not None:
            assert Version(package["version"]) in floor, (package["name"], package["version"])
