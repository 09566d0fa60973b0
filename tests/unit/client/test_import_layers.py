"""The SDK's modules import one way: read top-down, from plain formats to the facade.

Every import between modules of ``clearpost.client`` counts, including those under
``TYPE_CHECKING`` and inside functions: a cycle hidden there is still a cycle a reader
has to untangle."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import clearpost.client

PACKAGE = "clearpost.client"
ROOT = Path(clearpost.client.__file__).parent


def imports_of(path: Path, root: Path) -> set[str]:
    """The client modules ``path`` imports (``__init__`` excluded: it re-exports)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith(PACKAGE + "."):
                module = name.removeprefix(PACKAGE + ".").split(".")[0]
                if (root / f"{module}.py").exists():
                    found.add(module)
    return found


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    return {
        p.stem: imports_of(p, root) - {p.stem}
        for p in sorted(root.glob("*.py"))
        if p.stem != "__init__"
    }


def test_the_client_modules_import_one_way() -> None:
    deps = graph()
    assert len(deps) > 10 and deps["client"], "the import graph was not read"
    try:
        order = list(graphlib.TopologicalSorter(deps).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"clearpost.client has an import cycle: {' -> '.join(exc.args[1])}")
    assert order[-1] == "client", "the Client facade is the top of the SDK"


def test_the_check_sees_a_cycle(tmp_path: Path) -> None:
    """The check itself: two modules importing each other (one only for typing) fail."""
    (tmp_path / "a.py").write_text("from clearpost.client.b import x\n")
    (tmp_path / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from clearpost.client import a\n"
    )
    deps = graph(tmp_path)
    assert deps == {"a": {"b"}, "b": {"a"}}
    with pytest.raises(graphlib.CycleError):
        list(graphlib.TopologicalSorter(deps).static_order())
