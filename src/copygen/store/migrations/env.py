"""Alembic's entry point: runs the migrations on the URL Database.migrate passes in
``config.attributes["url"]`` (never through the ini file: a password may hold '%')."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from copygen.store.database import engine_options
from copygen.store.tables import Base


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()


async def migrate(url: str) -> None:
    engine = create_async_engine(url, **engine_options(url))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(migrate(context.config.attributes["url"]))
