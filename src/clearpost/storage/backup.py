"""Backups of an embedded (SQLite) deployment: a consistent copy taken while serving.

A backup is a directory holding the database file, the key files a deployment cannot
work without (the log's signing key, the report signing key) and ``manifest.json`` with
each file's SHA-256. The copy is made with SQLite's online backup API in one step, so it
is one read transaction: a server keeps writing meanwhile (WAL), and the copy is exactly
the database as of one commit. PostgreSQL deployments back up their database with
``pg_dump`` (docs/operations.md); the same directory then carries their key files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from clearpost.core.errors import Conflict, InvalidInput

MANIFEST = "manifest.json"
DATABASE_FILE = "clearpost.db"
KIND = "clearpost-backup"
VERSION = 1


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup holds, as its manifest says."""

    path: Path
    files: dict[str, str]
    """File name -> SHA-256 (hex) of its bytes."""
    database: str
    """``sqlite`` (the database file is in the backup) or ``postgresql`` (keys only)."""
    schema_revision: str | None
    log_size: int | None
    """Entries in the log when the copy was taken (None for a keys-only backup)."""
    created_at_ms: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _private_copy(src: Path, dst: Path) -> None:
    """Copy a secret file so that only its owner can read the copy, at any moment."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, src.open("rb") as f:
        shutil.copyfileobj(f, out)


def _new_dir(path: Path) -> None:
    if path.exists() and any(path.iterdir()):
        raise Conflict(f"{path} exists and is not empty; give a new directory", code="exists")
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def copy_sqlite(db_file: Path, dest: Path) -> tuple[str | None, int]:
    """Copy a live SQLite database into ``dest`` in one read transaction; check the copy.

    Returns the copy's schema revision and log size.
    """
    if not db_file.is_file():
        raise InvalidInput(f"no database at {db_file}", code="no_database")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    source = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(dest)
    try:
        # pages=-1: the whole file in one step. With smaller steps, SQLite restarts the copy
        # whenever another connection writes, which on a busy server may be forever.
        source.backup(target, pages=-1)
        target.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        (verdict,) = target.execute("PRAGMA integrity_check").fetchone()
        if verdict != "ok":
            raise InvalidInput(f"the copy failed SQLite's integrity check: {verdict}")
        return _revision(target), _log_size(target)
    finally:
        target.close()
        source.close()


def _revision(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def _log_size(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT next_index FROM tlog_state WHERE id = 1").fetchone()
    except sqlite3.Error:
        return 0
    return 0 if row is None else int(row[0])


def make_backup(
    dest: Path, *, sqlite_file: Path | None, key_files: dict[str, Path], now_ms: int | None = None
) -> BackupInfo:
    """Write a backup directory: the database (SQLite only) and the named key files.

    ``key_files`` maps the name a file gets in the backup to where it is now; every one must
    exist (a deployment without its log key cannot sign its log again).
    """
    for name, path in key_files.items():
        if not path.is_file():
            raise InvalidInput(f"the {name} file {path} does not exist", code="missing_key_file")
    _new_dir(dest)
    files: dict[str, str] = {}
    revision: str | None = None
    log_size: int | None = None
    if sqlite_file is not None:
        revision, log_size = copy_sqlite(sqlite_file, dest / DATABASE_FILE)
        files[DATABASE_FILE] = _sha256(dest / DATABASE_FILE)
    for name, path in key_files.items():
        _private_copy(path, dest / name)
        files[name] = _sha256(dest / name)
    info = BackupInfo(
        path=dest,
        files=files,
        database="sqlite" if sqlite_file is not None else "postgresql",
        schema_revision=revision,
        log_size=log_size,
        created_at_ms=now_ms if now_ms is not None else int(time.time() * 1000),
    )
    manifest = {
        "kind": KIND,
        "version": VERSION,
        "database": info.database,
        "schema_revision": revision,
        "log_size": log_size,
        "created_at_ms": info.created_at_ms,
        "files": files,
    }
    (dest / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return info


def read_backup(path: Path) -> BackupInfo:
    """Open a backup and check every file against its manifest."""
    try:
        manifest = orjson.loads((path / MANIFEST).read_bytes())
    except OSError as exc:
        raise InvalidInput(
            f"{path} is not a Clearpost backup (no readable {MANIFEST})", code="not_a_backup"
        ) from exc
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            f"{path} is not a Clearpost backup ({MANIFEST} is not JSON)", code="not_a_backup"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise InvalidInput(f"{path} is not a Clearpost backup", code="not_a_backup")
    if manifest.get("version") != VERSION:
        raise InvalidInput(
            f"backup format {manifest.get('version')!r} is not supported by this version "
            f"(it reads format {VERSION})",
            code="backup_version",
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise InvalidInput("the backup's manifest has no file list", code="not_a_backup")
    for name, digest in files.items():
        if "/" in name or name.startswith("."):
            raise InvalidInput(f"the manifest names an unsafe file {name!r}", code="not_a_backup")
        if not (path / name).is_file():
            raise InvalidInput(f"the backup lacks {name}", code="backup_damaged")
        if _sha256(path / name) != digest:
            raise InvalidInput(f"{name} does not match its checksum", code="backup_damaged")
    return BackupInfo(
        path=path,
        files=dict(files),
        database=str(manifest.get("database")),
        schema_revision=manifest.get("schema_revision"),
        log_size=manifest.get("log_size"),
        created_at_ms=int(manifest.get("created_at_ms", 0)),
    )


def restore_backup(
    info: BackupInfo, *, sqlite_file: Path | None, key_files: dict[str, Path]
) -> None:
    """Put a checked backup's files in place. Refuses to overwrite anything."""
    targets: list[tuple[Path, Path]] = []
    if info.database == "sqlite":
        if sqlite_file is None:
            raise InvalidInput(
                "this backup holds a SQLite database; restore it into a data dir without "
                "--database, or load it into PostgreSQL yourself",
                code="wrong_database",
            )
        targets.append((info.path / DATABASE_FILE, sqlite_file))
    for name, dst in key_files.items():
        if name in info.files:
            targets.append((info.path / name, dst))
    for _, dst in targets:
        for existing in (dst, dst.with_name(dst.name + "-wal")):
            if existing.exists():
                raise Conflict(
                    f"{existing} already exists; restore into a new data dir", code="exists"
                )
    for src, dst in targets:
        dst.parent.mkdir(parents=True, exist_ok=True)
        _private_copy(src, dst)
