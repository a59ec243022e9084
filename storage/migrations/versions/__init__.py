"""One Alembic revision of the SQL metadata schema per module, numbered in order."""
