"""``clearpost serve``: kept apart from the other commands so that starting the server does
not import them (the client SDK, the demo, OpenDP, matplotlib): see ``entry.py``."""

from __future__ import annotations

import logging
from typing import Annotated, Optional

import typer
from rich.console import Console

from clearpost.cli.options import ConfigOpt, DatabaseOpt, DataDirOpt, settings_from

console = Console(stderr=True)


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
    import uvicorn

    from clearpost.server.http.app import create_app
    from clearpost.server.logs import configure as configure_logs
    from clearpost.server.memory import release_large_blocks

    release_large_blocks()
    settings = settings_from(config, host=host, port=port, database=database, data_dir=data_dir)
    configure_logs(settings.log_level, settings.log_format)
    url = settings.database_url()
    shown = url.split("@")[-1] if "@" in url else url
    banner = f"Clearpost on http://{settings.host}:{settings.port}  database: {shown}"
    if settings.log_format == "json":
        logging.getLogger("clearpost").info(banner)  # every line of output is JSON
    else:
        console.print(banner, markup=False, highlight=False, soft_wrap=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level,
        access_log=False,  # Clearpost's own access log names routes, not paths
        log_config=None,  # clearpost.server.logs set up every logger
        ws="websockets-sansio",
        timeout_graceful_shutdown=5,
    )
