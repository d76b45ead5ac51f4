"""Embedded PostgreSQL and Redis for a machine that has neither.

``postline dev`` starts both under ``./.postline/`` on free ports when no
``DATABASE_URL`` / ``REDIS_URL`` is configured, and stops them on exit::

    with EmbeddedPostgres(root / "postgres") as pg, EmbeddedRedis(root / "redis") as rd:
        run(database_url=pg.url, redis_url=rd.url)

Servers run in their own session (Ctrl-C reaches only the launcher, which
stops them in order) and, on Linux, receive a stop signal if the launcher
dies. A server left running by a killed launcher is stopped on the next start.
Importing this package registers nothing and starts nothing.
"""

from postline.embedded.ports import free_port
from postline.embedded.postgres import EmbeddedPostgres
from postline.embedded.process import EmbeddedServerError
from postline.embedded.redis import EmbeddedRedis
from postline.embedded.server import EmbeddedServer

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServer",
    "EmbeddedServerError",
    "free_port",
]
