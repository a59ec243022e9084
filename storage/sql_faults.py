"""When the metadata database cannot be reached: one error for every connection-level failure.

SQLAlchemy reports a refused connection, a server that went away mid-query and an
administrator's shutdown of the server as ``OperationalError``, ``InterfaceError`` or
``DisconnectionError`` wrapping whatever the driver raised. :func:`translate_connection_errors`
hooks the engine so that all of them surface as :class:`MetadataUnavailable`, one error
with a stable ``code`` and ``retryable = True``, whatever the driver; the node maps it to
a transient status in one place. Errors about the statement itself (a constraint, a
syntax error) are left as they are.
"""

from __future__ import annotations

from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

__all__ = ["MetadataUnavailable", "translate_connection_errors"]


class MetadataUnavailable(Exception):
    """The metadata database could not be reached or dropped the connection; try later."""

    code = "database-unavailable"
    retryable = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _is_connection_failure(context: ExceptionContext, dialect: str) -> bool:
    if context.is_pre_ping:
        return False  # the pool's liveness check: it reconnects by itself, or fails the connect
    error = context.sqlalchemy_exception
    if context.is_disconnect or isinstance(error, DisconnectionError):
        return True
    # SQLite has no connection to lose: its OperationalError is about the file or a lock.
    return dialect != "sqlite" and isinstance(error, OperationalError | InterfaceError)


def translate_connection_errors(engine: Engine) -> None:
    """Make connection-level failures on ``engine`` raise :class:`MetadataUnavailable`.

    The pool still does its own clean-up first (a dropped connection is invalidated), so the
    next call after the database is back gets a fresh connection.
    """
    dialect = engine.dialect.name

    def on_error(context: ExceptionContext) -> MetadataUnavailable | None:
        if not _is_connection_failure(context, dialect):
            return None
        reason = str(context.original_exception).strip().splitlines()
        detail = reason[0] if reason else type(context.original_exception).__name__
        return MetadataUnavailable(f"the metadata database is unreachable: {detail}")

    event.listen(engine, "handle_error", on_error, retval=True)
