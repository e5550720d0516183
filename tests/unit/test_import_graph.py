"""The CLI's modules import nothing that imports them back: no cycle runs through `gamemetrics.cli`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import gamemetrics

ROOT = Path(gamemetrics.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in ROOT.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The package's modules `name` imports anywhere in its text (in functions too: a late import
    closes a cycle as surely as one at the top)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {imported for imported in found if imported in MODULES and imported != name}


def cycle_through(start: str) -> list[str] | None:
    """A chain of imports from `start` back to `start`, if one exists."""
    stack, seen = [(start, [start])], set()
    while stack:
        name, path = stack.pop()
        for imported in imports_of(name):
            if imported == start:
                return [*path, start]
            if imported not in seen:
                seen.add(imported)
                stack.append((imported, [*path, imported]))
    return None


CLI_MODULES = sorted(name for name in MODULES if name == "gamemetrics.cli" or name.startswith("gamemetrics.cli."))


def test_the_cli_is_a_package_of_several_modules() -> None:
    assert {"gamemetrics.cli", "gamemetrics.cli.admin", "gamemetrics.cli.platform"} <= set(CLI_MODULES)


@pytest.mark.parametrize("name", CLI_MODULES)
def test_no_cli_module_is_imported_back(name: str) -> None:
    assert cycle_through(name) is None, " -> ".join(cycle_through(name) or [])


def test_the_graph_sees_late_imports() -> None:
    """The check above would miss the cycle it guards against if it ignored imports inside functions."""
    assert "gamemetrics.platform" in imports_of("gamemetrics.cli.platform")


@pytest.mark.parametrize("name", [name for name in CLI_MODULES if name != "gamemetrics.cli.__main__"])
def test_each_cli_module_imports_first_in_a_fresh_interpreter(name: str) -> None:
    run = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_python_dash_m_runs_the_cli() -> None:
    run = subprocess.run([sys.executable, "-m", "gamemetrics.cli", "admin", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "create-write-key" in run.stdout and "issue-token" in run.stdout
