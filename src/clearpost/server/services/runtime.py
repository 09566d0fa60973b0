"""Starting and stopping one server process's services (the composition root).

Start: open the database, apply migrations, bind the server name (the first start records
it; a later start with another one is refused), load (or create) the log key and check it is
the key this database's log is signed with, build the services, log the scope catalogue,
then start the background work — the log sequencer, the report scheduler, the pushing of
checkpoints to witnesses (when ``log_witness_urls`` names any) and, on PostgreSQL, the
listener that carries wake-ups and device changes between processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from clearpost.core.clock import Clock
from clearpost.core.errors import ClearpostError
from clearpost.core.tlog import CosignatureVerifier
from clearpost.server.config import Settings
from clearpost.server.services.container import Services, build_services
from clearpost.server.services.logkey import load_or_create
from clearpost.server.services.witnesspush import WitnessPusher, WitnessTarget, parse_targets
from clearpost.storage.db import Database
from clearpost.storage.listener import StreamListener
from clearpost.storage.migrations import upgrade
from clearpost.storage.sql.deployment import DeploymentStore
from clearpost.storage.sql.tlog import LogStore

log = logging.getLogger("clearpost.server")

STOP_SECONDS = 10


@contextlib.asynccontextmanager
async def running(settings: Settings, clock: Clock | None = None) -> AsyncIterator[Services]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database_url())
    try:
        await upgrade(db)
        on_record_name = await DeploymentStore(db).bind_server_name(settings.server_name)
        if on_record_name != settings.server_name:
            raise ClearpostError(
                f"this database belongs to server name {on_record_name!r}, but setting "
                f"'server_name' is {settings.server_name!r}; a server name is permanent: set "
                f"server_name = {on_record_name!r} (or start a new database for the new name)",
                code="server_name_mismatch",
            )
        signer = load_or_create(settings.log_key_path(), settings.log_origin)
        on_record = await LogStore(db).bind_key(signer.vkey)
        if on_record != signer.vkey:
            raise ClearpostError(
                f"this database's log is signed by {on_record}, but "
                f"{settings.log_key_path()} holds {signer.vkey}; "
                "give every server process the same log key file",
                code="log_key_mismatch",
            )
        services = build_services(settings, db, signer, clock)
        push_to = parse_witness_targets(settings)
        await services.partners.publish_catalogue()  # the scope catalogue is logged before use
        await services.keydir.start()  # the VRF key, and the tree rebuilt from stored leaves
    except BaseException:
        await db.close()
        raise
    tasks = [
        asyncio.create_task(services.log.run_sequencer(), name="clearpost-sequencer"),
        asyncio.create_task(services.reports.run_scheduler(), name="clearpost-report-scheduler"),
    ]
    if push_to:  # C2SP tlog-witness: push checkpoints to witnesses that have a URL
        pusher = WitnessPusher(services.log, push_to)
        tasks.append(asyncio.create_task(pusher.run(), name="clearpost-witness-push"))
    listener = None
    try:
        if db.dialect.is_postgres:
            listener = StreamListener(
                settings.database_url(), services.notifier.publish, services.accounts.forget
            )
            await listener.start()
        yield services
    finally:
        await _stop(tasks)
        if listener is not None:
            await listener.stop()
        await db.close()


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the background work and wait for it, at most ``STOP_SECONDS``: a task that
    does not stop is named in the log and left behind, so shutting down never hangs."""
    for task in tasks:
        task.cancel()
    done, stuck = await asyncio.wait(tasks, timeout=STOP_SECONDS)
    for task in done:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s had stopped with an error", task.get_name(), exc_info=exc)
    for task in stuck:
        log.error(
            "%s did not stop within %d s of being cancelled; shutting down without it",
            task.get_name(),
            STOP_SECONDS,
        )


def parse_witness_targets(settings: Settings) -> list[WitnessTarget]:
    """The witnesses to push checkpoints to (``log_witness_urls``); a bad entry stops the
    server at start, naming it."""
    witnesses = [CosignatureVerifier.from_vkey(v) for v in settings.witness_vkeys()]
    try:
        return parse_targets(settings.log_witness_urls, witnesses)
    except ValueError as exc:
        raise ClearpostError(str(exc), code="bad_setting") from exc
