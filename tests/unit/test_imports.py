"""Every module of the package imports on its own, first: an import cycle that works in one
order only (``storage.sql.keydir`` and ``storage.sql.tlog`` had one, hidden because the app
happened to import them the right way round) fails here.

One fresh interpreter loads the third-party libraries (by importing the CLI and the app,
then forgetting the package's own modules), then forks a child per module that imports
that module alone (a fresh interpreter per module took a minute)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import clearpost

NOT_IMPORTABLE = {
    "clearpost.__main__",  # runs the CLI
    "clearpost.storage.migrations.env",  # alembic's script, run by alembic with its context
}

SCRIPT = """
import importlib, os, sys
importlib.import_module("clearpost.cli.main")  # every third-party library the package uses,
importlib.import_module("clearpost.server.http.app")  # loaded once before the forks;
for loaded in [m for m in sys.modules if m == "clearpost" or m.startswith("clearpost.")]:
    del sys.modules[loaded]  # the package's own modules are imported anew in each child
failed = []
for name in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
        except BaseException as exc:
            os.write(write, f"{type(exc).__name__}: {exc}".encode())
            os._exit(1)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        why = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(f"{name}: {why or status}")
print("\\n".join(failed))
"""


@pytest.mark.slow  # about 7 s: a fork and an import per module
def test_every_module_imports_on_its_own() -> None:
    names = sorted(
        m.name
        for m in pkgutil.walk_packages(clearpost.__path__, "clearpost.")
        if m.name not in NOT_IMPORTABLE
    )
    assert len(names) > 100
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *names], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout
