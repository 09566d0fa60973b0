"""Start and stop real ``clearpost serve`` processes for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

FAST_ENV = {
    "CLEARPOST_ARGON2_TIME_COST": "1",
    "CLEARPOST_ARGON2_MEMORY_KIB": "8192",
    "CLEARPOST_LOGIN_RATE_PER_MINUTE": "0",
    "CLEARPOST_TOKEN_RATE_PER_SECOND": "0",
    "CLEARPOST_KEYDIR_LOG_SECONDS": "0",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    data_dir: Path, database: str, extra_env: dict[str, str] | None = None
) -> ServerProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = data_dir / f"server-{port}.log"
    env = {**os.environ, **FAST_ENV, **(extra_env or {})}
    cmd = [
        sys.executable,
        "-m",
        "clearpost",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--database",
        database,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return ServerProcess(url, proc, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
