"""Applies the Alembic migrations that ship inside the package."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlalchemy_url(database_url: str) -> str:
    scheme, _, rest = database_url.partition("://")
    if scheme in {"postgres", "postgresql"}:
        return f"postgresql+asyncpg://{rest}"
    return database_url


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would choke on a '%' in a password.
    config.set_main_option("sqlalchemy.url", _sqlalchemy_url(database_url).replace("%", "%%"))
    return config


async def _current_revision(database_url: str) -> str | None:
    import asyncpg

    connection = await asyncpg.connect(database_url)
    try:
        exists = await connection.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
        if not exists:
            return None
        value = await connection.fetchval("SELECT version_num FROM alembic_version")
        return str(value) if value is not None else None
    finally:
        await connection.close()


def pending_revisions(database_url: str) -> list[str]:
    """Revisions that `upgrade` would apply, oldest first."""
    script = ScriptDirectory.from_config(alembic_config(database_url))
    current = asyncio.run(_current_revision(database_url))
    revisions = [rev.revision for rev in script.walk_revisions("base", "heads")]
    revisions.reverse()
    if current is None:
        return revisions
    return revisions[revisions.index(current) + 1 :]


def upgrade(database_url: str) -> list[str]:
    """Brings the schema to the newest revision; returns what it applied."""
    todo = pending_revisions(database_url)
    if todo:
        command.upgrade(alembic_config(database_url), "head")
    return todo
