"""Alembic environment, run programmatically by :mod:`server.migrate` (no alembic.ini).

The caller passes a live connection in ``config.attributes["connection"]``.
"""
from __future__ import annotations

from alembic import context

from server.db import metadata
from server.partitions import include_name

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI by hand
    from server.db import make_engine, resolve_db_url

    engine = make_engine(resolve_db_url(config.get_main_option("sqlalchemy.url")))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                          include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, include_name=include_name,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
