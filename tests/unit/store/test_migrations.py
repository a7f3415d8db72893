"""The store's migrations (Alembic runs them by path, so they are checked here as files and by
their result): one chain of revisions, oldest first, that builds exactly the tables
store/tables.py declares."""

from __future__ import annotations

import ast
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

import copygen.store.migrations as migrations
from copygen.store.database import MIGRATIONS, Database
from copygen.store.tables import Base

VERSIONS = Path(migrations.__file__).parent / "versions"


def _revision(path: Path) -> tuple[str, str | None]:
    found: dict[str, str | None] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                    found[target.id] = node.value.value
    return str(found["revision"]), found["down_revision"]


def test_the_revisions_are_one_chain_oldest_first_named_by_number() -> None:
    files = sorted(p for p in VERSIONS.glob("*.py") if p.name != "__init__.py")
    assert files
    previous = None
    for path in files:
        revision, down = _revision(path)
        assert path.name.startswith(f"{revision}_"), path.name
        assert down == previous, f"{path.name} revises {down}, not {previous}"
        previous = revision
    assert VERSIONS.parent == MIGRATIONS  # what Database.migrate runs


async def test_the_migrations_build_exactly_the_declared_tables(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'copygen.db'}")
    await db.migrate()

    def differences(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    async with db.engine.connect() as connection:
        found = await connection.run_sync(differences)
    await db.close()
    assert found == []
