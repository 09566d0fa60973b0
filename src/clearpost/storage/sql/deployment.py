"""What is fixed when a deployment is created: its server name."""

from __future__ import annotations

from sqlalchemy import select, update

from clearpost.storage.db import Database
from clearpost.storage.schema import deployment


class DeploymentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def bind_server_name(self, server_name: str) -> str:
        """Record the server name on first start; return the one on record."""
        async with self.db.write() as conn:
            await conn.execute(
                update(deployment)
                .where(deployment.c.id == 1, deployment.c.server_name.is_(None))
                .values(server_name=server_name)
            )
            return str((await conn.execute(select(deployment.c.server_name))).scalar_one())
