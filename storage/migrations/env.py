"""Alembic environment: runs against the connection handed over by ``migrate()``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import tongban.storage.deadline_tables  # noqa: F401 - registers the deadline tables
from tongban.storage.sql import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    engine = engine_from_config(
        context.config.get_section(context.config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
