"""Server configuration: defaults < TOML file < environment (``CLEARPOST_*``) < flags.

Every setting is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from clearpost.core.errors import InvalidInput

ENV_PREFIX = "CLEARPOST_"


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8448
    data_dir: Path = field(default_factory=lambda: Path("data"))
    database: str | None = None
    """SQLAlchemy URL; default is ``sqlite+aiosqlite:///<data_dir>/clearpost.db``."""
    max_body_bytes: int = 1 << 20
    max_message_bytes: int = 64 * 1024
    max_group_members: int = 256
    sync_timeout_max_ms: int = 60_000
    login_rate_per_minute: float = 30.0
    """Login and registration attempts per client IP per minute (0 disables)."""
    login_burst: int = 10
    token_rate_per_second: float = 200.0
    """Requests per access token per second (0 disables)."""
    token_burst: int = 400
    click_rate_per_minute: float = 120.0
    """Click-link follows per client IP per minute (0 disables)."""
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    """argon2id cost (RFC 9106 low-memory profile by default). Existing hashes keep their own."""
    log_level: str = "info"
    public_url: str | None = None
    """The server's public base URL (OAuth issuer, click links); default http://host:port."""
    log_origin: str = "clearpost.localhost/log"
    """The transparency log's origin line (its name in checkpoints)."""
    log_key_file: Path | None = None
    """The log's signing key (C2SP signed-note skey); default ``<data_dir>/log.key``,
    generated on first start. Every server process of one database needs the same file."""
    log_witnesses: str = ""
    """Comma-separated witness verifier keys (vkeys); only their cosignatures are kept."""
    log_witness_urls: str = ""
    """Comma-separated ``<witness name>=<url>``: witnesses (each also in ``log_witnesses``)
    that the log pushes new checkpoints to by C2SP tlog-witness ``add-checkpoint``."""
    report_key_file: Path | None = None
    """The Ed25519 key that signs partner reports; default ``<data_dir>/report.key``,
    generated on first start. Every server process of one database needs the same file."""
    report_max_items_per_user: int = 5
    """Contribution bound: items (URLs) one user counts toward in one report period."""
    report_max_recipients_per_share: int = 10
    """Contribution bound: recipients counted per share."""
    report_grace_seconds: int = 600
    """How long after a report period ends the scheduler waits before releasing it."""
    report_check_seconds: float = 60.0
    """How often the report scheduler looks for closed periods."""

    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def log_key_path(self) -> Path:
        return self.log_key_file or self.data_dir / "log.key"

    def report_key_path(self) -> Path:
        return self.report_key_file or self.data_dir / "report.key"

    def witness_vkeys(self) -> list[str]:
        return [v.strip() for v in self.log_witnesses.split(",") if v.strip()]

    def database_url(self) -> str:
        if self.database:
            return self.database
        return f"sqlite+aiosqlite:///{(self.data_dir / 'clearpost.db').resolve()}"


def _coerce(name: str, raw: Any) -> Any:
    kinds = {f.name: f.type for f in fields(Settings)}
    kind = str(kinds[name])
    try:
        if "Path" in kind:
            return None if raw in ("", None) else Path(str(raw))
        if "int" in kind:
            return int(raw)
        if "float" in kind:
            return float(raw)
        if raw in ("", None) and "None" in kind:
            return None
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"setting {name!r} has an invalid value {raw!r}") from exc


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Merge the layers. ``flags`` with value None are ignored (the flag was not given)."""
    names = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    path = config_file or (
        Path(os.environ[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in os.environ else None
    )
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInput(f"cannot read config file {path}: {exc}") from exc
        section = data.get("server", data)
        unknown = set(section) - names
        if unknown:
            raise InvalidInput(f"unknown settings in {path}: {', '.join(sorted(unknown))}")
        values.update({k: _coerce(k, v) for k, v in section.items()})
    for name in names:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env is not None:
            values[name] = _coerce(name, env)
    values.update({k: _coerce(k, v) for k, v in flags.items() if v is not None})
    return replace(Settings(), **values)
