"""``clearpost serve``: kept apart from the other commands so that starting the server does
not import them (the client SDK, the demo, OpenDP, matplotlib): see ``entry.py``.

Exit codes: 0 stopped by SIGTERM or SIGINT, 1 cannot start (address in use, database
unreachable, wrong log key), 2 configuration (a bad setting or database URL), each with
one ``error: ...`` line on stderr.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Optional

import typer

from clearpost.cli.errors import EXIT_CONFIG, EXIT_FAILED, fail
from clearpost.cli.options import ConfigOpt, DatabaseOpt, DataDirOpt, settings_from


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to listen on (default 8448).")] = None,  # noqa: UP045
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run the server. Migrations are applied on start."""
    import uvloop

    from clearpost.server import process
    from clearpost.server.logs import configure as configure_logs
    from clearpost.server.memory import release_large_blocks

    release_large_blocks()
    settings = settings_from(config, host=host, port=port, database=database, data_dir=data_dir)
    configure_logs(settings.log_level, settings.log_format)
    try:
        sock = process.listen(settings.host, settings.port)
        host_port = sock.getsockname()[:2]
        banner = (
            f"Clearpost on http://{settings.host}:{host_port[1]}  "
            f"database: {process.shown_url(settings.database_url())}"
        )
        if settings.log_format == "json":
            logging.getLogger("clearpost").info(banner)  # every line of output is JSON
        else:
            typer.echo(banner, err=True)
        with sock, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(process.serve(settings, sock))
    except process.StartupError as exc:
        raise fail(exc.message, EXIT_CONFIG if exc.configuration else EXIT_FAILED) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
