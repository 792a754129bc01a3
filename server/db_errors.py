"""What to tell a person whose database URL cannot be used: one line, naming the URL
(password hidden), what went wrong and what to do."""
from __future__ import annotations

from pathlib import Path

from server.db import DB_ENV


class DatabaseUnusable(Exception):
    """The configured database cannot be used; the message says why and what to do."""


def display_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<not a database URL>"


def sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError:
        return None
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def check_sqlite_folder(url: str) -> None:
    """SQLite creates the file but not its folder; say so instead of 'unable to open database file'."""
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise DatabaseUnusable(f"database {display_url(url)}: the folder {path.parent} does not exist; "
                               f"create it, or pass another --db")


def explain(exc: BaseException, url: str) -> str:
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    shown = display_url(url)
    fix = f"check --db or ${DB_ENV}"
    if isinstance(exc, DatabaseUnusable):
        return str(exc)
    if isinstance(exc, (ArgumentError, NoSuchModuleError)):
        # An unparsable URL is not echoed when it may hold a password.
        named = shown if not shown.startswith("<") else (url if "@" not in url else "the database URL")
        return (f"{named} is not a usable database URL; expected e.g. "
                f"sqlite:///./auditagent-collector.db or postgresql+psycopg://user:pw@host/db ({fix})")
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        detail = " ".join(str(exc.orig).split())
        if "connection" in detail.lower() or "connect" in detail.lower():
            return f"cannot connect to the database {shown}: {detail[:300]} (is it running? {fix})"
        return f"database {shown}: {detail[:300]} ({fix}; `auditagent-collector db upgrade` migrates it)"
    return f"database {shown}: {' '.join(str(exc).split())[:300]} ({fix})"
