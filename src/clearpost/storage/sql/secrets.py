"""Server-wide random secrets (e.g. the pairwise-pseudonym key), shared by every process."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from clearpost.storage.db import Database
from clearpost.storage.schema import server_secrets


class SecretStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, bytes] = {}

    async def get(self, name: str) -> bytes:
        """The secret called ``name``: 32 random bytes, created once on first use."""
        if name in self._cache:
            return self._cache[name]
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(server_secrets.c.value).where(server_secrets.c.name == name)
                )
            ).first()
        if row is None:
            try:
                async with self.db.write() as conn:
                    await conn.execute(
                        server_secrets.insert().values(name=name, value=secrets.token_bytes(32))
                    )
            except IntegrityError:
                pass  # another process created it first
            return await self.get(name)
        self._cache[name] = bytes(row[0])
        return self._cache[name]
