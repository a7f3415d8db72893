"""The database connection: one async SQLAlchemy engine, its migrations, and the one place
that turns database failures into ``StoreUnavailable`` (a 503, never a 500).

SQLite (the default, a file under COPYGEN_DATA_DIR) runs in WAL mode with synchronous=NORMAL:
a committed write survives the process being killed (not a power cut; use PostgreSQL where
that matters, and for more than one replica: a SQLite file is one machine's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from copygen.config import Settings
from copygen.errors import NotFound, StoreUnavailable

log = logging.getLogger("copygen.store")

MIGRATIONS = Path(__file__).parent / "migrations"
#: Async drivers for the URL schemes users write.
DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
}
CONNECT_TIMEOUT_S = 5
QUIET_LOGGERS = ("aiosqlite", "sqlalchemy.engine", "sqlalchemy.pool", "asyncpg")
#: How long a SQLite writer waits for another (WAL allows one writer at a time).
SQLITE_BUSY_MS = 5000


def database_url(settings: Settings) -> str:
    """The async SQLAlchemy URL: COPYGEN_DATABASE_URL with its driver filled in, else a
    SQLite file in COPYGEN_DATA_DIR."""
    if settings.database_url is None:
        return f"sqlite+aiosqlite:///{settings.data_dir / 'copygen.db'}"
    url = settings.database_url.get_secret_value()
    scheme, sep, rest = url.partition("://")
    return f"{DRIVERS.get(scheme, scheme)}{sep}{rest}"


class Database:
    """The engine and its sessions. ``migrate`` brings the schema to the newest revision."""

    def __init__(self, url: str) -> None:
        # Their debug lines carry statements' parameters (brand text, feedback): never logged.
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        self.url = url
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            path = url.partition(":///")[2]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.engine: AsyncEngine = create_async_engine(url, **engine_options(url))
        if self.sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(database_url(settings))

    @property
    def kind(self) -> str:
        return "sqlite" if self.sqlite else "postgresql"

    async def migrate(self) -> None:
        """Run Alembic's upgrade to head (its env.py runs its own event loop, so a thread)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["url"] = self.url
        try:
            await asyncio.to_thread(command.upgrade, config, "head")
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailable("the database could not be migrated") from exc

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction, committed at the end; a database failure becomes
        StoreUnavailable (and is logged by type only: no user data in logs)."""
        try:
            async with self._sessions() as session, session.begin():
                yield session
        except (SQLAlchemyError, OSError) as exc:
            log.warning("database error: %s", type(exc).__name__)
            raise StoreUnavailable("the database is unavailable; retry shortly") from exc

    async def close(self) -> None:
        await self.engine.dispose()


def engine_options(url: str) -> dict[str, Any]:
    """PostgreSQL: connections checked before use (a restarted server leaves dead ones in the
    pool) and a connect timeout, so a database that is down answers 503 in seconds."""
    if url.startswith("sqlite"):
        return {}
    return {"pool_pre_ping": True, "pool_size": 10, "connect_args": {"timeout": CONNECT_TIMEOUT_S}}


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.close()


class Tenanted(Protocol):
    tenant: Any


Owned = TypeVar("Owned", bound=Tenanted)


async def owned(
    session: AsyncSession, table: type[Owned], key: object, tenant: str, what: str, field: str
) -> Owned:
    """Row ``key`` of ``table`` when it belongs to ``tenant``; NotFound otherwise, the same
    answer whether it does not exist or is another tenant's (tenant isolation, one place)."""
    row = await session.get(table, key)
    if row is None or row.tenant != tenant:
        raise NotFound(f"no such {what}", field=field)
    return row
