"""Which database and Redis the bench uses, and getting them ready.

`BENCH_DATABASE_URL` wins; else a PostgreSQL `DATABASE_URL` lends its server (the bench creates and
uses its own `deepsight_bench` database there, never the project's); else a SQLite file under
`bench/results/`. Redis: `BENCH_REDIS_URL`, else `REDIS_URL`, else none (in-process channels).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BENCH_DB_NAME = "deepsight_bench"


def database_url(results: Path) -> str:
    if os.environ.get("BENCH_DATABASE_URL"):
        return os.environ["BENCH_DATABASE_URL"]
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://", "pgsql://")):
        return urlunsplit(urlsplit(url)._replace(path=f"/{BENCH_DB_NAME}"))
    return f"sqlite:///{results / 'bench.sqlite3'}"


def redis_url() -> str:
    if "BENCH_REDIS_URL" in os.environ:
        return os.environ["BENCH_REDIS_URL"]
    return os.environ.get("REDIS_URL", "")


def configure(results: Path) -> dict[str, str]:
    """Point this process (and every process it starts) at the bench database and Redis."""
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": database_url(results),
        "REDIS_URL": redis_url(),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
    }
    os.environ.update(env)
    os.environ.pop("DATABASE_POOL_MAX_SIZE", None)  # the orchestrator and writers hold one connection each
    return env


def prepare() -> None:
    """Create the PostgreSQL database if needed, then migrate (quietly)."""
    import django
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.postgresql":
        import psycopg

        params = {k: v for k, v in (("host", database.get("HOST")), ("port", database.get("PORT"))) if v}
        with psycopg.connect(
            dbname="postgres",
            user=database.get("USER") or None,
            password=database.get("PASSWORD") or None,
            autocommit=True,
            **params,
        ) as admin:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database["NAME"]]).fetchone()
            if not exists:
                admin.execute(f'CREATE DATABASE "{database["NAME"]}"')
    else:
        Path(database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def describe() -> dict[str, str]:
    from django.conf import settings
    from django.db import connection

    database = settings.DATABASES["default"]
    engine = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
        else:
            cursor.execute("SELECT sqlite_version()")
        version = cursor.fetchone()[0]
    return {
        "engine": f"{engine} {version}",
        "name": str(database["NAME"]),
        "redis": "yes (stream events mirrored to Redis)" if os.environ.get("REDIS_URL") else "no (in-process channels)",
    }
