"""Alembic migrations of the SQL metadata schema, applied by :func:`tongban.storage.sql.migrate`."""
