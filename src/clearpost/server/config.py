"""Server configuration: defaults < TOML file < environment (``CLEARPOST_*``) < flags.

Every setting is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

from clearpost.core.errors import InvalidInput
from clearpost.core.ids import MAX_SERVER_NAME, is_server_name
from clearpost.core.keydir_labels import MAX_HEARTBEAT_SECONDS, MAX_LOG_SECONDS

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
    server_name: str = "clearpost.localhost"
    """The Matrix server name in every user id (``@alice:<server_name>``) and room id. Fixed
    when the deployment is created: stored in the database on first start, and a later start
    with another value is refused."""
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
    keydir_heartbeat_seconds: int = 300
    """The key directory publishes an epoch at least this often, changes or not, so a
    client knows how fresh a proof must be (it refuses one older than twice this)."""
    keydir_log_seconds: int = 60
    """Log entries about someone are counted in their ``log:`` label at most this often
    (0: at every epoch): each count is a new version, kept in every process's memory."""
    report_key_file: Path | None = None
    """The Ed25519 key that signs partner reports; default ``<data_dir>/report.key``,
    generated on first start. Every server process of one database needs the same file."""
    report_max_items_per_user: int = 5
    """Contribution bound (items per user) for agreements logged before Clearpost 0.2, which
    do not state it; newer agreements carry ``max_items_per_user`` themselves."""
    report_max_recipients_per_share: int = 10
    """Contribution bound (recipients per share) for agreements logged before Clearpost 0.2;
    newer agreements carry ``max_recipients_per_share`` themselves."""
    report_grace_seconds: int = 600
    """How long after a report period ends the scheduler waits before releasing it."""
    report_check_seconds: float = 60.0
    """How often the report scheduler looks for closed periods."""
    trusted_proxies: str = ""
    """Comma-separated addresses or networks (CIDR) of reverse proxies whose
    ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed; empty believes none."""
    max_header_bytes: int = 16 * 1024
    """A request line and headers larger than this get 431 and the connection is closed."""
    max_header_count: int = 100
    """A request with more header fields than this gets 431."""
    header_timeout_seconds: float = 10.0
    """Time a request's line and headers may take to arrive (also: from connect to the first
    request); then 408 and the connection is closed."""
    body_timeout_seconds: float = 30.0
    """Time a request body may take to arrive after its headers; then 408 and close."""
    keepalive_timeout_seconds: int = 5
    """An idle keep-alive connection is closed after this many seconds."""
    max_connections: int = 1000
    """Open connections (and requests in progress) above this get 503."""

    metrics_port: int = 0
    """Port of the Prometheus metrics endpoint (``/metrics``); 0 turns metrics off."""
    metrics_host: str = "127.0.0.1"
    """Address the metrics endpoint listens on; keep it private (see docs/operations.md)."""

    registration: str = "open"
    """Who may open an account: ``open`` (anyone), ``invite`` (``clearpost admin invites
    create``) or ``closed``."""
    access_log: bool = False
    """Log one line per request: client address, method, route template, status, time."""
    log_format: str = "text"
    """``text`` (readable lines) or ``json`` (one JSON object per line)."""

    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def log_key_path(self) -> Path:
        return self.log_key_file or self.data_dir / "log.key"

    def report_key_path(self) -> Path:
        return self.report_key_file or self.data_dir / "report.key"

    def proxy_networks(self) -> list[IPv4Network | IPv6Network]:
        """The trusted proxies as networks (a bare address is a /32 or /128)."""
        return [ip_network(p.strip()) for p in self.trusted_proxies.split(",") if p.strip()]

    def witness_vkeys(self) -> list[str]:
        return [v.strip() for v in self.log_witnesses.split(",") if v.strip()]

    def database_url(self) -> str:
        if self.database:
            return self.database
        return f"sqlite+aiosqlite:///{(self.data_dir / 'clearpost.db').resolve()}"


_BOOLEANS = {word: True for word in ("1", "true", "yes", "on")} | {
    word: False for word in ("0", "false", "no", "off")
}
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
_POSITIVE = {
    "max_body_bytes",
    "max_message_bytes",
    "max_group_members",
    "argon2_time_cost",
    "argon2_memory_kib",
    "report_check_seconds",
    "max_header_bytes",
    "max_header_count",
    "header_timeout_seconds",
    "body_timeout_seconds",
    "keepalive_timeout_seconds",
    "max_connections",
}
_KIND_WORDS = {
    int: "a whole number",
    float: "a number",
    str: "a string",
    Path: "a path (string)",
    bool: "true or false",
}


def _kind(name: str) -> type:
    text = str({f.name: f.type for f in fields(Settings)}[name])
    if text == "bool":
        return bool
    for kind in (Path, float, int):
        if kind.__name__ in text:
            return kind
    return str


def _optional(name: str) -> bool:
    return "None" in str({f.name: f.type for f in fields(Settings)}[name])


def _coerce(name: str, raw: Any, *, typed: bool) -> Any:
    """One setting's value. ``typed`` values come from TOML and must already have the
    setting's type (``port = "80"`` is refused, not guessed at); environment variables and
    flags are text and are parsed."""
    kind = _kind(name)
    wrong = InvalidInput(f"setting {name!r} must be {_KIND_WORDS[kind]}, not {raw!r}", field=name)
    if raw in ("", None) and _optional(name):
        return None
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if not typed and word in _BOOLEANS:
            return _BOOLEANS[word]
        raise wrong
    if typed:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise wrong
        if kind is int and not isinstance(raw, int):
            raise wrong
        if kind is float and not isinstance(raw, (int, float)):
            raise wrong
        if kind in (str, Path) and not isinstance(raw, str):
            raise wrong
    try:
        if kind is Path:
            return Path(str(raw))
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise wrong from exc


def _check(settings: Settings) -> None:
    """Ranges a type cannot express; each refusal names its setting."""
    for name in _POSITIVE:
        if getattr(settings, name) <= 0:
            raise InvalidInput(f"setting {name!r} must be above 0", field=name)
    for name in ("login_rate_per_minute", "token_rate_per_second", "click_rate_per_minute"):
        if getattr(settings, name) < 0:
            raise InvalidInput(f"setting {name!r} must be 0 (off) or above", field=name)
    if not 0 <= settings.keydir_log_seconds <= MAX_LOG_SECONDS:
        raise InvalidInput(
            "setting 'keydir_log_seconds' must be 0 (at every epoch) to "
            f"{MAX_LOG_SECONDS} (clients refuse a longer interval)",
            field="keydir_log_seconds",
        )
    if not 0 <= settings.keydir_heartbeat_seconds <= MAX_HEARTBEAT_SECONDS:
        raise InvalidInput(
            f"setting 'keydir_heartbeat_seconds' must be 0 (an epoch at every step) to "
            f"{MAX_HEARTBEAT_SECONDS} (clients refuse a longer heartbeat)",
            field="keydir_heartbeat_seconds",
        )
    for name in ("port", "metrics_port"):
        if not 0 <= getattr(settings, name) <= 65535:
            value = getattr(settings, name)
            raise InvalidInput(f"setting {name!r} must be 0 to 65535, not {value}", field=name)
    if settings.log_level.lower() not in _LOG_LEVELS:
        raise InvalidInput(
            f"setting 'log_level' must be one of {', '.join(_LOG_LEVELS)}, "
            f"not {settings.log_level!r}",
            field="log_level",
        )
    choices = {"registration": ("open", "invite", "closed"), "log_format": ("text", "json")}
    for name, allowed in choices.items():
        if getattr(settings, name) not in allowed:
            raise InvalidInput(
                f"setting {name!r} must be one of {', '.join(allowed)}, "
                f"not {getattr(settings, name)!r}",
                field=name,
            )
    if not is_server_name(settings.server_name):
        raise InvalidInput(
            f"setting 'server_name' must be a host name or IP literal with an optional :port "
            f"(at most {MAX_SERVER_NAME} characters), not {settings.server_name[:80]!r}",
            field="server_name",
        )
    try:
        settings.proxy_networks()
    except ValueError as exc:
        raise InvalidInput(f"setting 'trusted_proxies': {exc}", field="trusted_proxies") from exc


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
        if not isinstance(section, dict):
            raise InvalidInput(f"in {path}: [server] must be a table")
        unknown = set(section) - names
        if unknown:
            raise InvalidInput(f"unknown settings in {path}: {', '.join(sorted(unknown))}")
        for k, v in section.items():
            try:
                values[k] = _coerce(k, v, typed=True)
            except InvalidInput as exc:
                raise InvalidInput(f"in {path}: {exc.message}", field=k) from exc
    for name in names:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env is not None:
            try:
                values[name] = _coerce(name, env, typed=False)
            except InvalidInput as exc:
                variable = ENV_PREFIX + name.upper()
                raise InvalidInput(f"in ${variable}: {exc.message}", field=name) from exc
    values.update({k: _coerce(k, v, typed=False) for k, v in flags.items() if v is not None})
    settings = replace(Settings(), **values)
    _check(settings)
    return settings
