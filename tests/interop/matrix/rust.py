"""A Matrix device run by matrix-sdk-crypto (Rust, as WebAssembly in Node) for the tests.

``driver.mjs`` holds one ``OlmMachine`` and speaks to a real ``clearpost serve``; this class
starts it (one long-lived Node process per device) and calls its commands over JSON lines,
so a scenario reads as Python next to the SDK's devices.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "driver.mjs"
PACKAGE = HERE / "node_modules" / "@matrix-org" / "matrix-sdk-crypto-wasm"


def node_or_skip() -> str:
    """The ``node`` binary, with the pinned package installed; skips locally, fails in CI."""
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node (Node 20) is not installed"
    elif not (PACKAGE / "package.json").is_file():
        missing = f"{PACKAGE} is missing: run `npm ci` in {HERE}"
    if missing is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{missing} (.ci/run installs it under CI=true)")
        pytest.skip(missing)
    assert node is not None
    return node


def text(body: str) -> dict[str, Any]:
    """An ``m.text`` message content."""
    return {"msgtype": "m.text", "body": body}


class DriverError(Exception):
    pass


class RustDevice:
    """One matrix-sdk-crypto device; ``await RustDevice.start(...)``, then ``login``."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc, self.log_path = proc, log_path
        self._next = 0
        self.user_id = self.device_id = self.curve25519 = self.ed25519 = ""

    @classmethod
    async def start(cls, base_url: str, log_path: Path) -> RustDevice:
        node = node_or_skip()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                node,
                str(DRIVER),
                base_url,
                cwd=HERE,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                limit=64 * 1024 * 1024,
            )
        return cls(proc, log_path)

    async def call(self, cmd: str, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._next += 1
        line = json.dumps({"id": self._next, "cmd": cmd, **args}) + "\n"
        self.proc.stdin.write(line.encode())
        await self.proc.stdin.drain()
        raw = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not raw:
            raise DriverError(f"the driver exited; its log:\n{self.log()[-4000:]}")
        reply = json.loads(raw)
        assert reply["id"] == self._next
        if not reply["ok"]:
            raise DriverError(f"{cmd}: {reply['error']}")
        return reply["result"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- commands -------------------------------------------------------------------------

    async def login(self, username: str, password: str, device_name: str) -> None:
        me = await self.call("login", username=username, password=password, device_name=device_name)
        self.user_id, self.device_id = me["user_id"], me["device_id"]
        self.curve25519, self.ed25519 = me["curve25519"], me["ed25519"]

    async def sync(self) -> dict[str, Any]:
        """One ``/v1/sync`` round: to-device into the machine, messages decrypted."""
        result: dict[str, Any] = await self.call("sync")
        return result

    async def messages(self) -> list[dict[str, Any]]:
        """Sync and return the room messages it brought from other devices (sync also
        echoes this device's own sends), decrypted where possible."""
        got = (await self.sync())["messages"]
        return [
            m for m in got if (m["sender"], m["sender_device"]) != (self.user_id, self.device_id)
        ]

    async def history(self, conversation_id: str) -> list[dict[str, Any]]:
        return list(await self.call("history", conversation_id=conversation_id))

    async def send(
        self, conversation_id: str, body: str | dict[str, Any], strategy: str = "all"
    ) -> dict[str, Any]:
        """Send a text, or any ``m.room.message`` content given as a dict."""
        content = text(body) if isinstance(body, str) else body
        result: dict[str, Any] = await self.call(
            "send", conversation_id=conversation_id, content=content, strategy=strategy
        )
        return result

    async def create_conversation(self, kind: str, members: list[str]) -> str:
        conv = await self.call("create_conversation", kind=kind, members=members)
        return str(conv["conversation_id"])

    async def set_trust(self, user_id: str, device_id: str, trust: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "set_trust", user_id=user_id, device_id=device_id, trust=trust
        )
        return result

    async def state(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("state")
        return result

    async def logout(self) -> None:
        await self.call("logout")

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def bodies(messages: list[dict[str, Any]]) -> list[str]:
    """The plaintext bodies of the messages that decrypted."""
    return [m["content"]["body"] for m in messages if m["ok"]]
