"""Which ``clearpost audit verify`` command lines fork tile helpers before the command
line is parsed (``tilehelper.start_early``), and that the command takes only those."""

from __future__ import annotations

import sys

import pytest

from clearpost.audit import tilehelper

URL = "http://127.0.0.1:9"  # nothing listens: a helper finds no checkpoint and reports nothing

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux only")


@pytest.mark.parametrize(
    "args",
    [
        ["--server", URL, "--proofs"],
        ["--help"],
        ["--server", URL, "-h"],
        ["--server", URL, "--processes", "1"],
        ["--server", URL, "--processes", "two"],
        ["--server", "ftp://127.0.0.1:9"],
        ["--state", "audit.json"],
    ],
)
def test_no_helper_for_other_command_lines(args: list[str]) -> None:
    tilehelper.start_early(args)
    assert tilehelper.take_early(URL, 2) is None
    assert tilehelper.take_early(URL, 1) is None


def test_helpers_for_a_tile_audit_are_taken_by_the_same_command_only() -> None:
    tilehelper.start_early(["--state", "a.json", f"--server={URL}/", "--processes", "3"])
    helper = tilehelper.take_early(URL, 3)
    assert helper is not None and len(helper.pids) == 2
    helper.close()
    assert helper.pids == []
    tilehelper.start_early(["--server", URL, "--processes=2"])
    assert tilehelper.take_early(URL, 3) is None  # another count: closed, not taken
    assert tilehelper.take_early(URL, 2) is None
    tilehelper.start_early(["--server", URL, "--processes=2"])
    tilehelper.close_early()
    assert tilehelper.take_early(URL, 2) is None


async def test_a_helper_that_does_not_finish_is_ended_and_reports_nothing() -> None:
    import asyncio

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    helper = tilehelper.TileHelper.start(f"http://127.0.0.1:{port}", b"", 2)
    assert helper is not None
    try:
        assert (await helper.results(grace=0.5)).tiles == {}
        assert helper.pids == []  # ended and reaped
    finally:
        helper.close()
        server.close()
