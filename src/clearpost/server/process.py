"""One ``clearpost serve`` process: listen, start the services, serve HTTP, stop.

The order is what makes failures plain and quick:

1. Take the listening socket first. An address in use is reported before any database or
   key file is touched, in one line (uvicorn used to start the services, fail to bind, and
   could then hang while stopping them, deaf to SIGTERM).
2. Start the services (database, migrations, log key, background work) here, not in an
   ASGI lifespan, so that an unreachable or misconfigured database is one line naming the
   setting or the server, not uvicorn's traceback.
3. Serve HTTP with uvicorn on that socket, with the bounds of ``server.http.protocol``,
   ``timeout_keep_alive``, ``limit_concurrency``, and forwarded headers believed only
   from ``trusted_proxies``.
4. On SIGTERM or SIGINT, uvicorn stops accepting and finishes requests (5 s at most), then
   the services stop (10 s at most). A second signal during that ends the process at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn

from clearpost.core.errors import ClearpostError
from clearpost.server.config import Settings

log = logging.getLogger("clearpost.server")

STOP_SERVICES_SECONDS = 10.0
_SETTING_ERRORS = {"server_name_mismatch"}
"""Start-up refusals that a setting must fix (exit 2)."""


class StartupError(Exception):
    """The server cannot start; ``message`` is one line for the operator."""

    def __init__(self, message: str, *, configuration: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.configuration = configuration
        """True when a setting is at fault (exit 2), False when something outside is (exit 1)."""


def listen(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port``, or raise ``StartupError`` saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            reason = "the address is already in use (is another server running?)"
        elif exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
            reason = "no such address on this machine (setting 'host')"
        elif exc.errno == errno.EACCES:
            reason = "permission denied (ports below 1024 need privileges)"
        else:
            reason = exc.strerror or str(exc)
        raise StartupError(f"cannot listen on {where}: {reason}") from exc


def shown_url(url: str) -> str:
    """A database URL without its password, for messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _database_failure(exc: BaseException, settings: Settings) -> StartupError:
    """One line for a failure to open or migrate the database."""
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    url = shown_url(settings.database_url())
    if isinstance(exc, ArgumentError | NoSuchModuleError | ModuleNotFoundError):
        return StartupError(
            f"setting 'database' is not a usable URL ({url}): {_first_line(exc)}; "
            "expected sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host:5432/db",
            configuration=True,
        )
    root = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    while root.__cause__ is not None:  # asyncpg's own error under SQLAlchemy's adapters
        root = root.__cause__
    if isinstance(root, ConnectionRefusedError):
        reason = "connection refused (is the database server running?)"
    elif isinstance(root, socket.gaierror):
        reason = "unknown host"
    elif isinstance(root, TimeoutError):
        reason = "timed out"
    else:
        reason = _first_line(root) or type(root).__name__
    return StartupError(f"cannot use the database {url}: {reason}")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class _Server(uvicorn.Server):
    """uvicorn's server, but a caught signal is not raised again when it stops serving:
    the services still have to stop (uvicorn re-raises it to exit by the default action).
    And when it starts to shut down, ``on_shutdown`` runs first (long polls answer at once
    rather than be cut off when the grace period ends)."""

    def __init__(self, config: uvicorn.Config, on_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.on_shutdown()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def uvicorn_config(settings: Settings, app: object) -> uvicorn.Config:
    """uvicorn's settings, from ours."""
    from clearpost.server.http.protocol import protocol_for

    trusted = [str(n) for n in settings.proxy_networks()]
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        loop="uvloop",
        http=protocol_for(settings),
        ws="websockets-sansio",
        lifespan="off",  # the services are started by ``serve`` itself
        log_level=settings.log_level,
        log_config=None,  # clearpost.server.logs set up every logger (text or JSON)
        access_log=False,  # Clearpost's own access log names routes, not paths
        timeout_graceful_shutdown=5,
        timeout_keep_alive=settings.keepalive_timeout_seconds,
        limit_concurrency=settings.max_connections,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,
        server_header=False,
    )


async def serve(settings: Settings, sock: socket.socket) -> None:
    """Start the services, serve HTTP on ``sock`` until a signal, stop the services."""
    from clearpost.server.http.app import create_app, observe
    from clearpost.server.services.runtime import running

    services_cm = running(settings)
    try:
        services = await services_cm.__aenter__()
    except ClearpostError as exc:
        raise StartupError(exc.message, configuration=exc.code in _SETTING_ERRORS) from exc
    except (TimeoutError, OSError, ImportError) as exc:
        raise _database_failure(exc, settings) from exc
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError) or type(exc).__module__.startswith("asyncpg"):
            raise _database_failure(exc, settings) from exc
        raise
    stop_observing = None
    try:
        app = create_app(settings)
        app.state.services = services
        try:
            stop_observing = observe(app, settings, services)
        except OSError as exc:
            where = f"{settings.metrics_host}:{settings.metrics_port}"
            raise StartupError(
                f"cannot serve metrics on {where} (setting 'metrics_port'): {exc.strerror or exc}"
            ) from exc
        server = _Server(uvicorn_config(settings, app), on_shutdown=services.sync.drain)
        await server.serve(sockets=[sock])
    finally:
        if stop_observing is not None:
            stop_observing()
        try:
            async with asyncio.timeout(STOP_SERVICES_SECONDS):
                await services_cm.__aexit__(None, None, None)
        except TimeoutError:
            log.error("the services did not stop within %g s", STOP_SERVICES_SECONDS)
